// dvfs native block codec (see codec.h). Byte-compatible with TypeScriptBlockCodec.
//
// Speed notes:
//  * The per-block IV is HMAC-SHA1(key, keyIV || LE64(seed)). The HMAC inner state with key^ipad absorbed
//    and the outer state with key^opad absorbed are computed once. The inner message (24 bytes) and the outer
//    one (the 20-byte inner digest) each fit in one padded SHA-1 block, so a block IV costs exactly two
//    SHA1_Transform calls on prebuilt blocks; the outer half of each MAC_64 is done the same way.
//  * The CBC contexts are keyed once per Engine and never re-initialised. CBC chains: the context encrypts
//    (P1 ^ chain) for the first cipher block of a call, where `chain` is the last ciphertext block it saw. To
//    start a file block with its own IV we XOR (IV ^ chain) into the first 16 plaintext bytes before the call
//    (encrypt), or into the first 16 output bytes after it (decrypt). This lets a whole run of full blocks be
//    decrypted by one EVP call (OpenSSL's interleaved AES-NI CBC decryption) and saves an init per block.
#include "codec.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

namespace dvfs {

namespace {

constexpr size_t kScratchBytes = 64 * 1024;
constexpr size_t kMaxFreeEngines = 8;

bool IsZero(const uint8_t* p, size_t n) {
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    uint64_t acc = 0;
    for (int k = 0; k < 8; k++) {
      uint64_t w;
      std::memcpy(&w, p + i + 8 * k, 8);
      acc |= w;
    }
    if (acc != 0) return false;
  }
  for (; i < n; i++) {
    if (p[i] != 0) return false;
  }
  return true;
}

// Running XOR prefix: b[i+1] ^= b[i].
void Shuffle(uint8_t* b, size_t n) {
  for (size_t i = 0; i + 1 < n; i++) b[i + 1] ^= b[i];
}

void Unshuffle(uint8_t* b, size_t n) {
  for (size_t i = n; i > 1; i--) b[i - 1] ^= b[i - 2];
}

// Reverses the bytes of each 64-byte chunk (the last chunk may be shorter).
void Flip(uint8_t* b, size_t n) {
  for (size_t start = 0; start < n; start += 64) {
    std::reverse(b + start, b + std::min(start + 64, n));
  }
}

// The 20-byte digest held in a SHA_CTX's chaining state after whole blocks were processed.
void StateDigest(const SHA_CTX& c, uint8_t md[20]) {
  const SHA_LONG h[5] = {c.h0, c.h1, c.h2, c.h3, c.h4};
  for (int i = 0; i < 5; i++) {
    md[4 * i] = uint8_t(h[i] >> 24);
    md[4 * i + 1] = uint8_t(h[i] >> 16);
    md[4 * i + 2] = uint8_t(h[i] >> 8);
    md[4 * i + 3] = uint8_t(h[i]);
  }
}

void Xor16(uint8_t* dst, const uint8_t* a, const uint8_t* b) {
  for (int j = 0; j < 16; j++) dst[j] ^= a[j] ^ b[j];
}

const char* CipherName(size_t keyLen, bool cbc) {
  switch (keyLen) {
    case 16: return cbc ? "AES-128-CBC" : "AES-128-CFB";
    case 24: return cbc ? "AES-192-CBC" : "AES-192-CFB";
    case 32: return cbc ? "AES-256-CBC" : "AES-256-CFB";
    default: return nullptr;
  }
}

}  // namespace

Codec* Codec::Create(const uint8_t* key, size_t keyLen, const uint8_t* iv, size_t ivLen, int major,
                     const Layout& layout, std::string* err) {
  const char* cbcName = CipherName(keyLen, true);
  const char* cfbName = CipherName(keyLen, false);
  if (cbcName == nullptr || cfbName == nullptr) {
    *err = "AES key must be 16, 24 or 32 bytes, got " + std::to_string(keyLen);
    return nullptr;
  }
  if (ivLen != 16) {
    *err = "AES key IV must be 16 bytes, got " + std::to_string(ivLen);
    return nullptr;
  }
  const uint32_t B = layout.blockSize;
  if (B < 16 || B % 16 != 0 || B > (1u << 24)) {
    *err = "block size must be a positive multiple of 16 (at most 16 MiB), got " + std::to_string(B);
    return nullptr;
  }
  const uint64_t h = uint64_t(layout.macBytes) + layout.randBytes;
  if (h >= B) {
    *err = "block header (" + std::to_string(h) + " bytes) leaves no room for data in a " + std::to_string(B) +
           "-byte block";
    return nullptr;
  }

  Codec* c = new (std::nothrow) Codec();
  if (c == nullptr) {
    *err = "out of memory";
    return nullptr;
  }
  c->layout_ = layout;
  c->B_ = B;
  c->h_ = uint32_t(h);
  c->D_ = B - uint32_t(h);
  c->major_ = major;
  c->keyLen_ = keyLen;
  std::memcpy(c->key_, key, keyLen);
  std::memcpy(c->keyIv_, iv, 16);

  // HMAC-SHA1 keyed states (the key is at most 32 bytes, below SHA-1's 64-byte block: no pre-hashing).
  uint8_t pad[64];
  std::memset(pad, 0, sizeof pad);
  std::memcpy(pad, key, keyLen);
  for (uint8_t& b : pad) b ^= 0x36;
  SHA1_Init(&c->macInner_);
  SHA1_Update(&c->macInner_, pad, sizeof pad);
  // ipad block (64 bytes) + key IV (16) + seed (8) = 88 bytes = 704 bits.
  std::memcpy(c->ivBlock_, c->keyIv_, 16);
  c->ivBlock_[24] = 0x80;
  c->ivBlock_[62] = uint8_t(704 >> 8);
  c->ivBlock_[63] = uint8_t(704 & 0xff);
  for (uint8_t& b : pad) b ^= 0x36 ^ 0x5c;
  SHA1_Init(&c->outer_);
  SHA1_Update(&c->outer_, pad, sizeof pad);
  OPENSSL_cleanse(pad, sizeof pad);

  c->cbc_ = EVP_CIPHER_fetch(nullptr, cbcName, nullptr);
  c->cfb_ = EVP_CIPHER_fetch(nullptr, cfbName, nullptr);
  if (c->cbc_ == nullptr || c->cfb_ == nullptr) {
    *err = std::string("OpenSSL does not provide ") + (c->cbc_ == nullptr ? cbcName : cfbName);
    delete c;
    return nullptr;
  }
  // Build one engine now so that a broken OpenSSL shows up at construction, not in the middle of a write.
  Engine* e = c->NewEngine(err);
  if (e == nullptr) {
    delete c;
    return nullptr;
  }
  c->Release(e);
  return c;
}

Codec::~Codec() {
  for (Engine* e : free_) FreeEngine(e);
  free_.clear();
  EVP_CIPHER_free(cbc_);
  EVP_CIPHER_free(cfb_);
  OPENSSL_cleanse(key_, sizeof key_);
  OPENSSL_cleanse(keyIv_, sizeof keyIv_);
  OPENSSL_cleanse(&macInner_, sizeof macInner_);
  OPENSSL_cleanse(ivBlock_, sizeof ivBlock_);
  OPENSSL_cleanse(&outer_, sizeof outer_);
}

size_t Codec::DecodedLength(size_t rawLen) const {
  const size_t full = rawLen / B_;
  const size_t tail = rawLen % B_;
  return full * D_ + (tail > h_ ? tail - h_ : 0);
}

Engine* Codec::NewEngine(std::string* err) const {
  Engine* e = new (std::nothrow) Engine();
  if (e == nullptr) {
    *err = "out of memory";
    return nullptr;
  }
  static const uint8_t zero[16] = {0};
  e->cbcEnc = EVP_CIPHER_CTX_new();
  e->cbcDec = EVP_CIPHER_CTX_new();
  e->cfb = EVP_CIPHER_CTX_new();
  e->scratchBlocks = std::max<size_t>(1, kScratchBytes / B_);
  e->scratchBytes = e->scratchBlocks * B_;
  e->scratch = static_cast<uint8_t*>(std::malloc(e->scratchBytes));
  if (e->cbcEnc == nullptr || e->cbcDec == nullptr || e->cfb == nullptr || e->scratch == nullptr ||
      EVP_EncryptInit_ex(e->cbcEnc, cbc_, nullptr, key_, zero) != 1 ||
      EVP_CIPHER_CTX_set_padding(e->cbcEnc, 0) != 1 ||
      EVP_DecryptInit_ex(e->cbcDec, cbc_, nullptr, key_, zero) != 1 ||
      EVP_CIPHER_CTX_set_padding(e->cbcDec, 0) != 1) {
    *err = "could not set up the OpenSSL cipher contexts";
    FreeEngine(e);
    return nullptr;
  }
  return e;
}

void Codec::FreeEngine(Engine* e) {
  if (e == nullptr) return;
  EVP_CIPHER_CTX_free(e->cbcEnc);
  EVP_CIPHER_CTX_free(e->cbcDec);
  EVP_CIPHER_CTX_free(e->cfb);
  if (e->scratch != nullptr) {
    OPENSSL_cleanse(e->scratch, e->scratchBytes);
    std::free(e->scratch);
  }
  delete e;
}

Engine* Codec::Acquire(std::string* err) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!free_.empty()) {
      Engine* e = free_.back();
      free_.pop_back();
      return e;
    }
  }
  return NewEngine(err);
}

void Codec::Release(Engine* e) {
  if (e == nullptr) return;
  if (e->broken) {
    FreeEngine(e);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (free_.size() < kMaxFreeEngines) {
      free_.push_back(e);
      return;
    }
  }
  FreeEngine(e);
}

void Codec::IvFor(uint64_t seed, uint8_t iv[16]) const {
  if (major_ >= 3) {
    uint8_t block[64];
    std::memcpy(block, ivBlock_, sizeof block);
    for (int i = 0; i < 8; i++) block[16 + i] = uint8_t(seed >> (8 * i));
    SHA_CTX c = macInner_;
    SHA1_Transform(&c, block);
    uint8_t md[SHA_DIGEST_LENGTH];
    StateDigest(c, md);
    OuterDigest(md);
    std::memcpy(iv, md, 16);
    return;
  }
  // Cipher interface major < 3: the low 32 bits of the seed, spread over the key IV.
  const uint32_t s = uint32_t(seed);
  const uint32_t v1 = 0x060a4011u * s;
  const uint32_t v2 = 0x0221040du * (s ^ 0xd3fea11cu);
  auto b = [](uint32_t x, int n) -> uint8_t { return uint8_t(x >> n); };
  const uint8_t low[8] = {b(v1, 24), b(v2, 16), b(v1, 8), b(v2, 0), b(v2, 24), b(v1, 16), b(v2, 8), b(v1, 0)};
  const uint8_t high[8] = {b(v1, 0), b(v2, 8), b(v1, 16), b(v2, 24), b(v1, 24), b(v2, 16), b(v1, 8), b(v2, 0)};
  for (int i = 0; i < 8; i++) {
    iv[i] = keyIv_[i] ^ low[i];
    iv[8 + i] = keyIv_[8 + i] ^ high[i];
  }
}

// The HMAC outer hash, in place: SHA-1(key^opad || md), one padded block after the precomputed state.
void Codec::OuterDigest(uint8_t md[20]) const {
  uint8_t block[64];
  std::memcpy(block, md, 20);
  block[20] = 0x80;
  std::memset(block + 21, 0, 64 - 21 - 2);
  block[62] = uint8_t(672 >> 8);  // (64 + 20) bytes = 672 bits
  block[63] = uint8_t(672 & 0xff);
  SHA_CTX c = outer_;
  SHA1_Transform(&c, block);
  StateDigest(c, md);
}

// MAC_64: HMAC-SHA1 folded to 8 bytes over the first 19 digest bytes, read big-endian.
uint64_t Codec::Mac64(const uint8_t* data, size_t len) const {
  uint8_t md[SHA_DIGEST_LENGTH];
  SHA_CTX c = macInner_;
  SHA1_Update(&c, data, len);
  SHA1_Final(md, &c);
  OuterDigest(md);
  uint8_t fold[8] = {0};
  for (int i = 0; i < SHA_DIGEST_LENGTH - 1; i++) fold[i % 8] ^= md[i];
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = (v << 8) | fold[i];
  return v;
}

// The header: the MAC over everything after it, least significant byte first (zeros past 8 bytes).
void Codec::WriteMac(uint8_t* block, size_t len) const {
  const uint32_t mb = layout_.macBytes;
  const uint64_t v = Mac64(block + mb, len - mb);
  for (uint32_t j = 0; j < mb; j++) block[j] = j < 8 ? uint8_t(v >> (8 * j)) : 0;
}

bool Codec::MacMatches(const uint8_t* block, size_t len) const {
  const uint32_t mb = layout_.macBytes;
  const uint64_t v = Mac64(block + mb, len - mb);
  for (uint32_t j = 0; j < mb; j++) {
    if (block[j] != (j < 8 ? uint8_t(v >> (8 * j)) : 0)) return false;
  }
  return true;
}

bool Codec::Cfb(Engine* e, uint8_t* buf, size_t len, uint64_t seed, bool encrypt, std::string* err) const {
  if (len == 0) return true;
  uint8_t iv[16];
  IvFor(seed, iv);
  int outl = 0;
  if (EVP_CipherInit_ex(e->cfb, cfb_, nullptr, key_, iv, encrypt ? 1 : 0) != 1 ||
      EVP_CipherUpdate(e->cfb, buf, &outl, buf, int(len)) != 1 || size_t(outl) != len) {
    *err = "OpenSSL CFB operation failed";
    return false;
  }
  return true;
}

bool Codec::StreamEncode(Engine* e, uint8_t* buf, size_t len, uint64_t seed, std::string* err) const {
  Shuffle(buf, len);
  if (!Cfb(e, buf, len, seed, true, err)) return false;
  Flip(buf, len);
  Shuffle(buf, len);
  return Cfb(e, buf, len, seed + 1, true, err);
}

bool Codec::StreamDecode(Engine* e, uint8_t* buf, size_t len, uint64_t seed, std::string* err) const {
  if (!Cfb(e, buf, len, seed + 1, false, err)) return false;
  Unshuffle(buf, len);
  Flip(buf, len);
  if (!Cfb(e, buf, len, seed, false, err)) return false;
  Unshuffle(buf, len);
  return true;
}

bool Codec::EncodeRange(Engine* e, const uint8_t* plain, size_t plainLen, const uint8_t* rand, uint8_t* out,
                        uint64_t firstBlock, uint64_t fileIV, size_t i0, size_t i1, std::string* err) const {
  const size_t B = B_, D = D_, h = h_, mb = layout_.macBytes, rb = layout_.randBytes;
  uint8_t iv[16];
  for (size_t i = i0; i < i1; i++) {
    const size_t off = i * D;
    const size_t dlen = std::min(D, plainLen - off);
    uint8_t* blk = out + i * B;
    const size_t blen = h + dlen;
    if (rb > 0 && rand != nullptr) std::memcpy(blk + mb, rand + i * rb, rb);
    std::memcpy(blk + h, plain + off, dlen);
    if (mb > 0) WriteMac(blk, blen);
    const uint64_t seed = (firstBlock + i) ^ fileIV;
    if (blen == B) {
      IvFor(seed, iv);
      Xor16(blk, iv, e->encChain);
      int outl = 0;
      if (EVP_EncryptUpdate(e->cbcEnc, blk, &outl, blk, int(B)) != 1 || size_t(outl) != B) {
        *err = "OpenSSL CBC encryption failed";
        e->broken = true;
        return false;
      }
      std::memcpy(e->encChain, blk + B - 16, 16);
    } else if (!StreamEncode(e, blk, blen, seed, err)) {
      return false;
    }
  }
  return true;
}

bool Codec::DecodeRange(Engine* e, const uint8_t* raw, size_t rawLen, uint8_t* out, uint64_t firstBlock,
                        uint64_t fileIV, size_t i0, size_t i1, int64_t* bad, std::string* err) const {
  const size_t B = B_, D = D_, h = h_, mb = layout_.macBytes;
  const bool holes = layout_.allowHoles;
  const size_t full = rawLen / B;
  const size_t tail = rawLen % B;
  const size_t fullEnd = std::min(i1, full);
  const bool direct = h == 0;  // no headers: plain and raw have the same layout, decrypt straight into out
  int64_t firstBad = -1;
  uint8_t iv[16];
  uint8_t chain0[16];

  for (size_t c = i0; c < fullEnd; c += e->scratchBlocks) {
    const size_t n = std::min(e->scratchBlocks, fullEnd - c);
    const uint8_t* src = raw + c * B;
    uint8_t* dst = direct ? out + c * B : e->scratch;
    std::memcpy(chain0, e->decChain, 16);
    int outl = 0;
    if (EVP_DecryptUpdate(e->cbcDec, dst, &outl, src, int(n * B)) != 1 || size_t(outl) != n * B) {
      *err = "OpenSSL CBC decryption failed";
      e->broken = true;
      return false;
    }
    std::memcpy(e->decChain, src + n * B - 16, 16);
    for (size_t k = 0; k < n; k++) {
      const size_t i = c + k;
      const uint8_t* in = src + k * B;
      uint8_t* blk = dst + k * B;
      const bool hole = holes && IsZero(in, B);
      if (hole) {
        std::memset(blk, 0, B);  // a hole: zeros, never decrypted
      } else {
        IvFor((firstBlock + i) ^ fileIV, iv);
        Xor16(blk, iv, k == 0 ? chain0 : in - 16);
        if (mb > 0 && firstBad < 0 && !(holes && IsZero(blk, B)) && !MacMatches(blk, B)) firstBad = int64_t(i);
      }
      if (!direct) std::memcpy(out + i * D, blk + h, D);
    }
  }

  if (tail > 0 && i0 <= full && full < i1) {
    if (tail <= h) {
      if (firstBad < 0) firstBad = int64_t(full);
    } else {
      uint8_t* blk = e->scratch;
      std::memcpy(blk, raw + full * B, tail);
      if (!StreamDecode(e, blk, tail, (firstBlock + full) ^ fileIV, err)) return false;
      if (mb > 0 && firstBad < 0 && !(holes && IsZero(blk, tail)) && !MacMatches(blk, tail)) {
        firstBad = int64_t(full);
      }
      std::memcpy(out + full * D, blk + h, tail - h);
    }
  }
  *bad = firstBad;
  return true;
}

}  // namespace dvfs
