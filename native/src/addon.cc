// Node-API glue for the dvfs native block codec (plain C API, no node-addon-api).
//
// exports.abiVersion: number          bumped when the JS-visible contract changes
// exports.openssl: string             the OpenSSL this addon runs on (Node's own)
// new exports.Codec(family, key, iv, major, blockSize, macBytes, randBytes, allowHoles, splitThreshold?)
//   .encode(plain, firstBlock, fileIV, rand) -> Buffer
//   .decode(raw, firstBlock, fileIV) -> { plain, badBlock }
//   .encodeAsync(...) / .decodeAsync(...) -> Promise of the same, computed on the libuv thread pool.
//
// Async calls do not copy their inputs: they hold references to the input buffers (and to the codec) until
// the promise settles, like fs.write does, so callers must not modify those buffers meanwhile.
#include <node_api.h>

#include "fsops.h"
#include <openssl/crypto.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <new>
#include <string>

#include "codec.h"

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace {

using dvfs::Codec;
using dvfs::Engine;

constexpr int32_t kAbiVersion = 1;
// Async batches with at least this much work are split across two thread-pool work items. Work is the input
// size, halved for decoding without MACs (CBC decryption runs about three times faster than the rest).
// Measured on a 2-core AES-NI/SHA-NI VM: one libuv round trip costs ~30 us, so splitting only pays from a
// few hundred KiB on. 0 disables splitting.
constexpr double kDefaultSplitThreshold = 256 * 1024;
constexpr double kMaxSafeInteger = 9007199254740991.0;

// The JS object owns one reference to the codec and every async job another, so the codec outlives its
// thread-pool work whatever order finalizers run in.
struct Wrapper {
  std::shared_ptr<Codec> codec;
  size_t splitThreshold = 0;
};

void ThrowStatus(napi_env env, const char* what) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) return;
  const napi_extended_error_info* info = nullptr;
  napi_get_last_error_info(env, &info);
  std::string msg = std::string("dvfs native: ") + what;
  if (info != nullptr && info->error_message != nullptr) msg += std::string(": ") + info->error_message;
  napi_throw_error(env, "ERR_DVFS_NATIVE", msg.c_str());
}

#define CHECK_NAPI(env, call, what)   \
  do {                                \
    if ((call) != napi_ok) {          \
      ThrowStatus((env), (what));     \
      return nullptr;                 \
    }                                 \
  } while (0)

bool TypeError(napi_env env, const std::string& msg) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg.c_str());
  return false;
}

bool RangeError(napi_env env, const std::string& msg) {
  napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg.c_str());
  return false;
}

napi_valuetype TypeOf(napi_env env, napi_value v) {
  napi_valuetype t = napi_undefined;
  napi_typeof(env, v, &t);
  return t;
}

bool IsNullish(napi_env env, napi_value v) {
  const napi_valuetype t = TypeOf(env, v);
  return t == napi_null || t == napi_undefined;
}

// A Uint8Array (Buffer included).
bool GetBytes(napi_env env, napi_value v, const char* name, const uint8_t** data, size_t* len) {
  bool isTyped = false;
  if (napi_is_typedarray(env, v, &isTyped) != napi_ok || !isTyped) {
    return TypeError(env, std::string(name) + " must be a Buffer or Uint8Array");
  }
  napi_typedarray_type type;
  void* ptr = nullptr;
  size_t length = 0;
  if (napi_get_typedarray_info(env, v, &type, &length, &ptr, nullptr, nullptr) != napi_ok ||
      type != napi_uint8_array) {
    return TypeError(env, std::string(name) + " must be a Buffer or Uint8Array");
  }
  *data = static_cast<const uint8_t*>(ptr);
  *len = length;
  return true;
}

bool GetNumber(napi_env env, napi_value v, const char* name, double* out) {
  if (TypeOf(env, v) != napi_number || napi_get_value_double(env, v, out) != napi_ok) {
    return TypeError(env, std::string(name) + " must be a number");
  }
  return true;
}

bool GetUint32(napi_env env, napi_value v, const char* name, uint32_t* out) {
  double d = 0;
  if (!GetNumber(env, v, name, &d)) return false;
  if (!(d >= 0 && d <= 4294967295.0) || std::floor(d) != d) {
    return RangeError(env, std::string(name) + " must be an integer in 0..2^32-1");
  }
  *out = uint32_t(d);
  return true;
}

// A block index: a safe integer, reduced mod 2^64 as BigInt.asUintN(64, BigInt(x)) does.
bool GetBlockIndex(napi_env env, napi_value v, uint64_t* out) {
  double d = 0;
  if (!GetNumber(env, v, "firstBlock", &d)) return false;
  if (!(std::fabs(d) <= kMaxSafeInteger) || std::floor(d) != d) {
    return RangeError(env, "firstBlock must be a safe integer");
  }
  *out = uint64_t(int64_t(d));
  return true;
}

// The file IV: a BigInt, reduced mod 2^64 (only its low 64 bits reach the seed).
bool GetFileIV(napi_env env, napi_value v, uint64_t* out) {
  bool lossless = false;
  if (TypeOf(env, v) != napi_bigint || napi_get_value_bigint_uint64(env, v, out, &lossless) != napi_ok) {
    return TypeError(env, "fileIV must be a bigint");
  }
  return true;
}

Wrapper* Unwrap(napi_env env, napi_value self) {
  void* ptr = nullptr;
  if (napi_unwrap(env, self, &ptr) != napi_ok || ptr == nullptr) {
    TypeError(env, "not a dvfs native Codec");
    return nullptr;
  }
  return static_cast<Wrapper*>(ptr);
}

void FinalizeWrapper(napi_env, void* data, void*) {
  delete static_cast<Wrapper*>(data);
}

// new Codec(family, key, iv, major, blockSize, macBytes, randBytes, allowHoles, splitThreshold?)
napi_value CodecNew(napi_env env, napi_callback_info info) {
  napi_value target = nullptr;
  CHECK_NAPI(env, napi_get_new_target(env, info, &target), "new.target");
  if (target == nullptr) {
    TypeError(env, "Codec must be called with new");
    return nullptr;
  }
  size_t argc = 9;
  napi_value argv[9];
  napi_value self = nullptr;
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, &self, nullptr), "arguments");
  if (argc < 8) {
    TypeError(env, "Codec(family, key, iv, major, blockSize, macBytes, randBytes, allowHoles[, splitThreshold])");
    return nullptr;
  }
  char family[32];
  size_t familyLen = 0;
  if (TypeOf(env, argv[0]) != napi_string ||
      napi_get_value_string_utf8(env, argv[0], family, sizeof family, &familyLen) != napi_ok) {
    TypeError(env, "family must be a string");
    return nullptr;
  }
  if (std::strcmp(family, "aes") != 0) {
    napi_throw_error(env, "ERR_DVFS_UNSUPPORTED",
                     (std::string("unsupported cipher family '") + family + "' (native codec: aes only)").c_str());
    return nullptr;
  }
  const uint8_t* key = nullptr;
  const uint8_t* iv = nullptr;
  size_t keyLen = 0, ivLen = 0;
  double major = 0;
  dvfs::Layout layout{};
  bool allowHoles = false;
  if (!GetBytes(env, argv[1], "key", &key, &keyLen) || !GetBytes(env, argv[2], "iv", &iv, &ivLen) ||
      !GetNumber(env, argv[3], "major", &major) || !GetUint32(env, argv[4], "blockSize", &layout.blockSize) ||
      !GetUint32(env, argv[5], "macBytes", &layout.macBytes) ||
      !GetUint32(env, argv[6], "randBytes", &layout.randBytes)) {
    return nullptr;
  }
  if (std::floor(major) != major || std::fabs(major) > 1e6) {
    RangeError(env, "major must be an integer");
    return nullptr;
  }
  if (TypeOf(env, argv[7]) != napi_boolean || napi_get_value_bool(env, argv[7], &allowHoles) != napi_ok) {
    TypeError(env, "allowHoles must be a boolean");
    return nullptr;
  }
  layout.allowHoles = allowHoles;
  double split = kDefaultSplitThreshold;
  if (argc >= 9 && !IsNullish(env, argv[8])) {
    if (!GetNumber(env, argv[8], "splitThreshold", &split)) return nullptr;
    if (!(split >= 0)) {
      RangeError(env, "splitThreshold must be >= 0");
      return nullptr;
    }
  }

  std::string err;
  Codec* codec = Codec::Create(key, keyLen, iv, ivLen, int(major), layout, &err);
  if (codec == nullptr) {
    napi_throw_error(env, "ERR_DVFS_UNSUPPORTED", ("dvfs native: " + err).c_str());
    return nullptr;
  }
  Wrapper* w = new (std::nothrow) Wrapper();
  if (w == nullptr) {
    delete codec;
    napi_throw_error(env, "ERR_DVFS_NATIVE", "out of memory");
    return nullptr;
  }
  w->codec.reset(codec);
  w->splitThreshold = split >= 1e18 ? SIZE_MAX : size_t(split);
  if (napi_wrap(env, self, w, FinalizeWrapper, nullptr, nullptr) != napi_ok) {
    delete w;
    ThrowStatus(env, "wrap");
    return nullptr;
  }
  return self;
}

// ---- arguments shared by the sync and async methods ----

struct EncodeArgs {
  napi_value self = nullptr, plainV = nullptr, randV = nullptr;
  const uint8_t* plain = nullptr;
  size_t plainLen = 0;
  const uint8_t* rand = nullptr;
  size_t blocks = 0;
  uint64_t firstBlock = 0, fileIV = 0;
  size_t outLen = 0;
};

struct DecodeArgs {
  napi_value self = nullptr, rawV = nullptr;
  const uint8_t* raw = nullptr;
  size_t rawLen = 0;
  size_t blocks = 0;
  uint64_t firstBlock = 0, fileIV = 0;
  size_t outLen = 0;
};

Wrapper* ParseEncode(napi_env env, napi_callback_info info, EncodeArgs* a) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, &a->self, nullptr) != napi_ok) {
    ThrowStatus(env, "arguments");
    return nullptr;
  }
  Wrapper* w = Unwrap(env, a->self);
  if (w == nullptr) return nullptr;
  if (argc < 3) {
    TypeError(env, "encode(plain, firstBlock, fileIV, rand)");
    return nullptr;
  }
  a->plainV = argv[0];
  if (!GetBytes(env, argv[0], "plain", &a->plain, &a->plainLen) || !GetBlockIndex(env, argv[1], &a->firstBlock) ||
      !GetFileIV(env, argv[2], &a->fileIV)) {
    return nullptr;
  }
  const Codec* c = w->codec.get();
  a->blocks = c->EncodeBlocks(a->plainLen);
  a->outLen = c->EncodedLength(a->plainLen);
  a->randV = nullptr;
  const size_t need = a->blocks * c->RandBytes();
  if (argc >= 4 && !IsNullish(env, argv[3])) {
    size_t randLen = 0;
    if (!GetBytes(env, argv[3], "rand", &a->rand, &randLen)) return nullptr;
    if (need > 0 && randLen < need) {
      RangeError(env, "rand holds " + std::to_string(randLen) + " bytes, " + std::to_string(need) + " needed");
      return nullptr;
    }
    a->randV = argv[3];
  } else if (need > 0) {
    TypeError(env, "rand must hold " + std::to_string(need) + " random bytes (randBytes per block)");
    return nullptr;
  }
  return w;
}

Wrapper* ParseDecode(napi_env env, napi_callback_info info, DecodeArgs* a) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, &a->self, nullptr) != napi_ok) {
    ThrowStatus(env, "arguments");
    return nullptr;
  }
  Wrapper* w = Unwrap(env, a->self);
  if (w == nullptr) return nullptr;
  if (argc < 3) {
    TypeError(env, "decode(raw, firstBlock, fileIV)");
    return nullptr;
  }
  a->rawV = argv[0];
  if (!GetBytes(env, argv[0], "raw", &a->raw, &a->rawLen) || !GetBlockIndex(env, argv[1], &a->firstBlock) ||
      !GetFileIV(env, argv[2], &a->fileIV)) {
    return nullptr;
  }
  a->blocks = w->codec->DecodeBlocks(a->rawLen);
  a->outLen = w->codec->DecodedLength(a->rawLen);
  return w;
}

napi_value NewBuffer(napi_env env, size_t len, uint8_t** data) {
  napi_value buf = nullptr;
  void* ptr = nullptr;
  if (napi_create_buffer(env, len, &ptr, &buf) != napi_ok) {
    ThrowStatus(env, "could not allocate the output buffer");
    return nullptr;
  }
  *data = static_cast<uint8_t*>(ptr);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  // A big output is written once, front to back: with transparent huge pages in "madvise" mode, ask for them
  // so that the first touch costs one fault per 2 MiB instead of one per 4 KiB. Only a hint.
  constexpr uintptr_t kHuge = uintptr_t(2) << 20;
  if (len >= 4 * kHuge) {
    const uintptr_t start = (reinterpret_cast<uintptr_t>(ptr) + kHuge - 1) & ~(kHuge - 1);
    const uintptr_t end = (reinterpret_cast<uintptr_t>(ptr) + len) & ~(kHuge - 1);
    if (end > start) madvise(reinterpret_cast<void*>(start), end - start, MADV_HUGEPAGE);
  }
#endif
  return buf;
}

napi_value DecodeResult(napi_env env, napi_value plain, int64_t bad) {
  napi_value obj = nullptr, badV = nullptr;
  CHECK_NAPI(env, napi_create_object(env, &obj), "result object");
  CHECK_NAPI(env, napi_create_int64(env, bad, &badV), "badBlock");
  CHECK_NAPI(env, napi_set_named_property(env, obj, "plain", plain), "plain");
  CHECK_NAPI(env, napi_set_named_property(env, obj, "badBlock", badV), "badBlock");
  return obj;
}

// ---- sync ----

napi_value Encode(napi_env env, napi_callback_info info) {
  EncodeArgs a;
  Wrapper* w = ParseEncode(env, info, &a);
  if (w == nullptr) return nullptr;
  uint8_t* out = nullptr;
  napi_value buf = NewBuffer(env, a.outLen, &out);
  if (buf == nullptr) return nullptr;
  std::string err;
  Engine* e = w->codec->Acquire(&err);
  bool ok = e != nullptr && w->codec->EncodeRange(e, a.plain, a.plainLen, a.rand, out, a.firstBlock, a.fileIV, 0,
                                                  a.blocks, &err);
  w->codec->Release(e);
  if (!ok) {
    napi_throw_error(env, "ERR_DVFS_NATIVE", ("dvfs native: " + err).c_str());
    return nullptr;
  }
  return buf;
}

napi_value Decode(napi_env env, napi_callback_info info) {
  DecodeArgs a;
  Wrapper* w = ParseDecode(env, info, &a);
  if (w == nullptr) return nullptr;
  uint8_t* out = nullptr;
  napi_value buf = NewBuffer(env, a.outLen, &out);
  if (buf == nullptr) return nullptr;
  std::string err;
  int64_t bad = -1;
  Engine* e = w->codec->Acquire(&err);
  bool ok = e != nullptr && w->codec->DecodeRange(e, a.raw, a.rawLen, out, a.firstBlock, a.fileIV, 0, a.blocks,
                                                  &bad, &err);
  w->codec->Release(e);
  if (!ok) {
    napi_throw_error(env, "ERR_DVFS_NATIVE", ("dvfs native: " + err).c_str());
    return nullptr;
  }
  return DecodeResult(env, buf, bad);
}

// ---- async ----

struct Job;

struct Part {
  Job* job = nullptr;
  size_t i0 = 0, i1 = 0;
  int64_t bad = -1;
  bool ok = false;
  std::string err;
  napi_async_work work = nullptr;
};

struct Job {
  std::shared_ptr<Codec> codec;
  bool decode = false;
  const uint8_t* in = nullptr;
  size_t inLen = 0;
  const uint8_t* rand = nullptr;
  uint8_t* out = nullptr;
  uint64_t firstBlock = 0, fileIV = 0;
  // Kept alive until the promise settles: the codec object and the input buffers (plain or raw, rand), and
  // the output buffer.
  napi_ref refs[3] = {nullptr, nullptr, nullptr};
  napi_ref outRef = nullptr;
  napi_deferred deferred = nullptr;
  Part parts[2];
  int nparts = 0;
  int remaining = 0;
};

void ExecutePart(napi_env, void* data) {
  Part* p = static_cast<Part*>(data);
  Job* j = p->job;
  Engine* e = j->codec->Acquire(&p->err);
  if (e == nullptr) return;
  p->ok = j->decode ? j->codec->DecodeRange(e, j->in, j->inLen, j->out, j->firstBlock, j->fileIV, p->i0, p->i1,
                                            &p->bad, &p->err)
                    : j->codec->EncodeRange(e, j->in, j->inLen, j->rand, j->out, j->firstBlock, j->fileIV, p->i0,
                                            p->i1, &p->err);
  j->codec->Release(e);
}

void DestroyJob(napi_env env, Job* j) {
  for (napi_ref& r : j->refs) {
    if (r != nullptr) napi_delete_reference(env, r);
  }
  if (j->outRef != nullptr) napi_delete_reference(env, j->outRef);
  delete j;
}

void FinishJob(napi_env env, Job* j) {
  std::string err;
  int64_t bad = -1;
  for (int k = 0; k < j->nparts; k++) {
    const Part& p = j->parts[k];
    if (!p.ok && err.empty()) err = p.err.empty() ? "async work failed" : p.err;
    if (bad < 0 && p.bad >= 0) bad = p.bad;  // parts are in block order: the first one with a bad block wins
  }
  napi_value value = nullptr;
  bool resolve = false;
  if (err.empty()) {
    napi_value buf = nullptr;
    if (napi_get_reference_value(env, j->outRef, &buf) == napi_ok && buf != nullptr) {
      if (!j->decode) {
        value = buf;
        resolve = true;
      } else {
        napi_value obj = nullptr, badV = nullptr;
        if (napi_create_object(env, &obj) == napi_ok && napi_create_int64(env, bad, &badV) == napi_ok &&
            napi_set_named_property(env, obj, "plain", buf) == napi_ok &&
            napi_set_named_property(env, obj, "badBlock", badV) == napi_ok) {
          value = obj;
          resolve = true;
        }
      }
    }
    if (!resolve) err = "could not build the result";
  }
  if (!resolve) {
    napi_value msg = nullptr, code = nullptr;
    const std::string text = "dvfs native: " + err;
    napi_create_string_utf8(env, text.c_str(), NAPI_AUTO_LENGTH, &msg);
    napi_create_string_utf8(env, "ERR_DVFS_NATIVE", NAPI_AUTO_LENGTH, &code);
    napi_create_error(env, code, msg, &value);
  }
  if (value != nullptr) {
    if (resolve) {
      napi_resolve_deferred(env, j->deferred, value);
    } else {
      napi_reject_deferred(env, j->deferred, value);
    }
  }
  DestroyJob(env, j);
}

void CompletePart(napi_env env, napi_status status, void* data) {
  Part* p = static_cast<Part*>(data);
  Job* j = p->job;
  if (status != napi_ok) {
    p->ok = false;
    if (p->err.empty()) p->err = status == napi_cancelled ? "async work cancelled" : "async work failed";
  }
  napi_delete_async_work(env, p->work);
  p->work = nullptr;
  if (--j->remaining == 0) FinishJob(env, j);
}

napi_value StartJob(napi_env env, Wrapper* w, Job* j, napi_value self, napi_value in, napi_value rand,
                    napi_value out, size_t blocks) {
  napi_value promise = nullptr;
  const napi_value keep[3] = {self, in, rand};
  for (int k = 0; k < 3; k++) {
    if (keep[k] != nullptr && napi_create_reference(env, keep[k], 1, &j->refs[k]) != napi_ok) {
      DestroyJob(env, j);
      ThrowStatus(env, "reference");
      return nullptr;
    }
  }
  if (napi_create_reference(env, out, 1, &j->outRef) != napi_ok) {
    DestroyJob(env, j);
    ThrowStatus(env, "reference");
    return nullptr;
  }
  const size_t work = j->decode && w->codec->MacBytes() == 0 ? j->inLen / 2 : j->inLen;
  const bool split = w->splitThreshold > 0 && work >= w->splitThreshold && blocks >= 2;
  j->nparts = split ? 2 : 1;
  if (split) {
    const size_t mid = blocks / 2;
    j->parts[0].i0 = 0;
    j->parts[0].i1 = mid;
    j->parts[1].i0 = mid;
    j->parts[1].i1 = blocks;
  } else {
    j->parts[0].i0 = 0;
    j->parts[0].i1 = blocks;
  }
  napi_value name = nullptr;
  if (napi_create_string_utf8(env, j->decode ? "dvfs:decode" : "dvfs:encode", NAPI_AUTO_LENGTH, &name) != napi_ok) {
    DestroyJob(env, j);
    ThrowStatus(env, "resource name");
    return nullptr;
  }
  for (int k = 0; k < j->nparts; k++) {
    Part& p = j->parts[k];
    p.job = j;
    if (napi_create_async_work(env, nullptr, name, ExecutePart, CompletePart, &p, &p.work) != napi_ok) {
      for (int m = 0; m < k; m++) napi_delete_async_work(env, j->parts[m].work);
      DestroyJob(env, j);
      ThrowStatus(env, "async work");
      return nullptr;
    }
  }
  if (napi_create_promise(env, &j->deferred, &promise) != napi_ok) {
    for (int k = 0; k < j->nparts; k++) napi_delete_async_work(env, j->parts[k].work);
    DestroyJob(env, j);
    ThrowStatus(env, "promise");
    return nullptr;
  }
  j->remaining = j->nparts;
  for (int k = 0; k < j->nparts; k++) {
    Part& p = j->parts[k];
    if (napi_queue_async_work(env, p.work) != napi_ok) {
      p.ok = false;
      p.err = "could not queue async work";
      napi_delete_async_work(env, p.work);
      p.work = nullptr;
      if (--j->remaining == 0) {
        FinishJob(env, j);
        break;
      }
    }
  }
  return promise;
}

napi_value EncodeAsync(napi_env env, napi_callback_info info) {
  EncodeArgs a;
  Wrapper* w = ParseEncode(env, info, &a);
  if (w == nullptr) return nullptr;
  uint8_t* out = nullptr;
  napi_value buf = NewBuffer(env, a.outLen, &out);
  if (buf == nullptr) return nullptr;
  Job* j = new (std::nothrow) Job();
  if (j == nullptr) {
    napi_throw_error(env, "ERR_DVFS_NATIVE", "out of memory");
    return nullptr;
  }
  j->codec = w->codec;
  j->decode = false;
  j->in = a.plain;
  j->inLen = a.plainLen;
  j->rand = a.rand;
  j->out = out;
  j->firstBlock = a.firstBlock;
  j->fileIV = a.fileIV;
  return StartJob(env, w, j, a.self, a.plainV, a.randV, buf, a.blocks);
}

napi_value DecodeAsync(napi_env env, napi_callback_info info) {
  DecodeArgs a;
  Wrapper* w = ParseDecode(env, info, &a);
  if (w == nullptr) return nullptr;
  uint8_t* out = nullptr;
  napi_value buf = NewBuffer(env, a.outLen, &out);
  if (buf == nullptr) return nullptr;
  Job* j = new (std::nothrow) Job();
  if (j == nullptr) {
    napi_throw_error(env, "ERR_DVFS_NATIVE", "out of memory");
    return nullptr;
  }
  j->codec = w->codec;
  j->decode = true;
  j->in = a.raw;
  j->inLen = a.rawLen;
  j->out = out;
  j->firstBlock = a.firstBlock;
  j->fileIV = a.fileIV;
  return StartJob(env, w, j, a.self, a.rawV, nullptr, buf, a.blocks);
}

napi_value Init(napi_env env, napi_value exports) {
  const napi_property_descriptor methods[] = {
      {"encode", nullptr, Encode, nullptr, nullptr, nullptr, napi_default_method, nullptr},
      {"decode", nullptr, Decode, nullptr, nullptr, nullptr, napi_default_method, nullptr},
      {"encodeAsync", nullptr, EncodeAsync, nullptr, nullptr, nullptr, napi_default_method, nullptr},
      {"decodeAsync", nullptr, DecodeAsync, nullptr, nullptr, nullptr, napi_default_method, nullptr},
  };
  napi_value cls = nullptr, abi = nullptr, ssl = nullptr;
  CHECK_NAPI(env,
             napi_define_class(env, "Codec", NAPI_AUTO_LENGTH, CodecNew, nullptr,
                               sizeof methods / sizeof methods[0], methods, &cls),
             "define Codec");
  CHECK_NAPI(env, napi_create_int32(env, kAbiVersion, &abi), "abiVersion");
  CHECK_NAPI(env, napi_create_string_utf8(env, OpenSSL_version(OPENSSL_VERSION), NAPI_AUTO_LENGTH, &ssl), "openssl");
  CHECK_NAPI(env, napi_set_named_property(env, exports, "Codec", cls), "exports.Codec");
  CHECK_NAPI(env, napi_set_named_property(env, exports, "abiVersion", abi), "exports.abiVersion");
  CHECK_NAPI(env, napi_set_named_property(env, exports, "openssl", ssl), "exports.openssl");
  if (!RegisterFsOps(env, exports)) return nullptr;
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
