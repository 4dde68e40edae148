// dvfs native block codec: the EncFS MAC block headers and the per-block CBC / stream encryption, for runs
// of consecutive file blocks. The contract is the one of TypeScriptBlockCodec (daemon/encfs/block-codec.ts);
// this file knows nothing about Node-API.
#ifndef DVFS_NATIVE_CODEC_H_
#define DVFS_NATIVE_CODEC_H_

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace dvfs {

struct Layout {
  uint32_t blockSize;  // B: cipher-level block, header included
  uint32_t macBytes;
  uint32_t randBytes;
  bool allowHoles;
};

// Per-thread working state: keyed cipher contexts and scratch memory. An Engine is used by one thread at a
// time; the Codec hands them out from a free list.
struct Engine {
  EVP_CIPHER_CTX* cbcEnc = nullptr;
  EVP_CIPHER_CTX* cbcDec = nullptr;
  EVP_CIPHER_CTX* cfb = nullptr;
  // The CBC chaining value each context will use next (we never re-initialise them; see codec.cc).
  uint8_t encChain[16] = {0};
  uint8_t decChain[16] = {0};
  uint8_t* scratch = nullptr;  // scratchBlocks * B bytes
  size_t scratchBlocks = 0;
  size_t scratchBytes = 0;
  // Set when an OpenSSL call failed: the CBC chaining values can no longer be trusted; Release frees it.
  bool broken = false;
};

class Codec {
 public:
  // Returns nullptr and sets *err when the parameters are unsupported.
  static Codec* Create(const uint8_t* key, size_t keyLen, const uint8_t* iv, size_t ivLen, int major,
                       const Layout& layout, std::string* err);
  ~Codec();
  Codec(const Codec&) = delete;
  Codec& operator=(const Codec&) = delete;

  uint32_t B() const { return B_; }
  uint32_t H() const { return h_; }
  uint32_t D() const { return D_; }
  uint32_t RandBytes() const { return layout_.randBytes; }
  uint32_t MacBytes() const { return layout_.macBytes; }

  // Number of blocks an encode of plainLen user bytes produces, and the raw length.
  size_t EncodeBlocks(size_t plainLen) const { return (plainLen + D_ - 1) / D_; }
  size_t EncodedLength(size_t plainLen) const { return plainLen + EncodeBlocks(plainLen) * h_; }
  // Number of (possibly partial) blocks in rawLen bytes, and the user length a decode returns.
  size_t DecodeBlocks(size_t rawLen) const { return (rawLen + B_ - 1) / B_; }
  size_t DecodedLength(size_t rawLen) const;

  // Encodes blocks [i0, i1) of a batch whose user data is plain[0, plainLen). out holds EncodedLength bytes.
  // rand is nullptr or holds randBytes bytes per block of the whole batch.
  bool EncodeRange(Engine* e, const uint8_t* plain, size_t plainLen, const uint8_t* rand, uint8_t* out,
                   uint64_t firstBlock, uint64_t fileIV, size_t i0, size_t i1, std::string* err) const;
  // Decodes blocks [i0, i1) of raw[0, rawLen) into out (DecodedLength bytes). *bad receives the first block
  // (batch-relative) in the range whose MAC failed or that is too short to hold a header, or -1.
  bool DecodeRange(Engine* e, const uint8_t* raw, size_t rawLen, uint8_t* out, uint64_t firstBlock,
                   uint64_t fileIV, size_t i0, size_t i1, int64_t* bad, std::string* err) const;

  Engine* Acquire(std::string* err);
  void Release(Engine* e);

 private:
  Codec() = default;
  void IvFor(uint64_t seed, uint8_t iv[16]) const;
  void OuterDigest(uint8_t md[20]) const;
  uint64_t Mac64(const uint8_t* data, size_t len) const;
  bool MacMatches(const uint8_t* block, size_t len) const;
  void WriteMac(uint8_t* block, size_t len) const;
  bool Cfb(Engine* e, uint8_t* buf, size_t len, uint64_t seed, bool encrypt, std::string* err) const;
  bool StreamEncode(Engine* e, uint8_t* buf, size_t len, uint64_t seed, std::string* err) const;
  bool StreamDecode(Engine* e, uint8_t* buf, size_t len, uint64_t seed, std::string* err) const;
  Engine* NewEngine(std::string* err) const;
  static void FreeEngine(Engine* e);

  Layout layout_{};
  uint32_t B_ = 0, h_ = 0, D_ = 0;
  int major_ = 3;
  size_t keyLen_ = 0;
  uint8_t key_[32] = {0};
  uint8_t keyIv_[16] = {0};
  // HMAC-SHA1 keyed states: inner (key ^ ipad absorbed), inner with the key object's IV bytes absorbed too
  // (for the seed → IV derivation), and outer (key ^ opad absorbed).
  SHA_CTX macInner_{};
  SHA_CTX outer_{};
  // The one padded SHA-1 block that follows key^ipad when deriving an IV: key IV bytes (16), LE64 seed (8),
  // 0x80, zeros, the bit length (88 bytes) big-endian. Only the seed bytes change.
  uint8_t ivBlock_[64] = {0};
  EVP_CIPHER* cbc_ = nullptr;
  EVP_CIPHER* cfb_ = nullptr;

  std::mutex mu_;
  std::vector<Engine*> free_;
};

}  // namespace dvfs

#endif  // DVFS_NATIVE_CODEC_H_
