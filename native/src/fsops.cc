// Filesystem calls Node does not expose, for the FUSE frontend: extended attributes on ciphertext files
// (l*xattr, never following symlinks) and mkfifo. Each throws a JS Error whose `code` is the errno name.
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/xattr.h>

#include <string>
#include <vector>

#include <node_api.h>

#include "fsops.h"

namespace {

napi_value ThrowErrno(napi_env env, int err, const char* call) {
  const char* name = strerrorname_np(err);
  std::string code = name ? name : "EIO";
  std::string msg = code + ": " + strerror(err) + ", " + call;
  napi_value codeV = nullptr, msgV = nullptr, error = nullptr, errnoV = nullptr;
  napi_create_string_utf8(env, code.c_str(), NAPI_AUTO_LENGTH, &codeV);
  napi_create_string_utf8(env, msg.c_str(), NAPI_AUTO_LENGTH, &msgV);
  napi_create_error(env, codeV, msgV, &error);
  napi_create_int32(env, -err, &errnoV);
  napi_set_named_property(env, error, "errno", errnoV);
  napi_throw(env, error);
  return nullptr;
}

bool GetString(napi_env env, napi_value v, std::string* out) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, nullptr, 0, &len) != napi_ok) {
    napi_throw_type_error(env, nullptr, "expected a string");
    return false;
  }
  out->resize(len + 1);
  napi_get_value_string_utf8(env, v, out->data(), len + 1, &len);
  out->resize(len);
  return true;
}

bool Args(napi_env env, napi_callback_info info, size_t want, napi_value* argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < want) {
    napi_throw_type_error(env, nullptr, "missing arguments");
    return false;
  }
  return true;
}

napi_value GetXattr(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  std::string path, name;
  if (!Args(env, info, 2, argv) || !GetString(env, argv[0], &path) || !GetString(env, argv[1], &name)) return nullptr;
  for (int attempt = 0; attempt < 4; attempt++) {
    ssize_t size = lgetxattr(path.c_str(), name.c_str(), nullptr, 0);
    if (size < 0) {
      if (errno == ENODATA) {
        napi_value nul = nullptr;
        napi_get_null(env, &nul);
        return nul;
      }
      return ThrowErrno(env, errno, "lgetxattr");
    }
    std::vector<char> buf(static_cast<size_t>(size) + 1);
    ssize_t got = lgetxattr(path.c_str(), name.c_str(), buf.data(), buf.size());
    if (got < 0 && errno == ERANGE) continue;  // grew in between
    if (got < 0) return ThrowErrno(env, errno, "lgetxattr");
    napi_value out = nullptr;
    void* data = nullptr;
    napi_create_buffer_copy(env, static_cast<size_t>(got), buf.data(), &data, &out);
    return out;
  }
  return ThrowErrno(env, ERANGE, "lgetxattr");
}

napi_value SetXattr(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  std::string path, name;
  if (!Args(env, info, 4, argv) || !GetString(env, argv[0], &path) || !GetString(env, argv[1], &name)) return nullptr;
  void* data = nullptr;
  size_t len = 0;
  if (napi_get_buffer_info(env, argv[2], &data, &len) != napi_ok) {
    napi_throw_type_error(env, nullptr, "value must be a Buffer");
    return nullptr;
  }
  int32_t flags = 0;
  napi_get_value_int32(env, argv[3], &flags);
  if (lsetxattr(path.c_str(), name.c_str(), data, len, flags) != 0) return ThrowErrno(env, errno, "lsetxattr");
  return nullptr;
}

napi_value ListXattr(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  std::string path;
  if (!Args(env, info, 1, argv) || !GetString(env, argv[0], &path)) return nullptr;
  for (int attempt = 0; attempt < 4; attempt++) {
    ssize_t size = llistxattr(path.c_str(), nullptr, 0);
    if (size < 0) return ThrowErrno(env, errno, "llistxattr");
    std::vector<char> buf(static_cast<size_t>(size) + 1);
    ssize_t got = llistxattr(path.c_str(), buf.data(), buf.size());
    if (got < 0 && errno == ERANGE) continue;
    if (got < 0) return ThrowErrno(env, errno, "llistxattr");
    napi_value arr = nullptr;
    napi_create_array(env, &arr);
    uint32_t n = 0;
    for (ssize_t i = 0; i < got;) {
      size_t l = strnlen(buf.data() + i, static_cast<size_t>(got - i));
      napi_value s = nullptr;
      napi_create_string_utf8(env, buf.data() + i, l, &s);
      napi_set_element(env, arr, n++, s);
      i += static_cast<ssize_t>(l) + 1;
    }
    return arr;
  }
  return ThrowErrno(env, ERANGE, "llistxattr");
}

napi_value RemoveXattr(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  std::string path, name;
  if (!Args(env, info, 2, argv) || !GetString(env, argv[0], &path) || !GetString(env, argv[1], &name)) return nullptr;
  if (lremovexattr(path.c_str(), name.c_str()) != 0) return ThrowErrno(env, errno, "lremovexattr");
  return nullptr;
}

napi_value MkFifo(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  std::string path;
  if (!Args(env, info, 2, argv) || !GetString(env, argv[0], &path)) return nullptr;
  int32_t mode = 0644;
  napi_get_value_int32(env, argv[1], &mode);
  if (mkfifo(path.c_str(), static_cast<mode_t>(mode)) != 0) return ThrowErrno(env, errno, "mkfifo");
  return nullptr;
}

}  // namespace

bool RegisterFsOps(napi_env env, napi_value exports) {
  const napi_property_descriptor fns[] = {
      {"lgetxattr", nullptr, GetXattr, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"lsetxattr", nullptr, SetXattr, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"llistxattr", nullptr, ListXattr, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"lremovexattr", nullptr, RemoveXattr, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"mkfifo", nullptr, MkFifo, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
  };
  napi_value fsops = nullptr;
  if (napi_create_object(env, &fsops) != napi_ok) return false;
  if (napi_define_properties(env, fsops, sizeof fns / sizeof fns[0], fns) != napi_ok) return false;
  return napi_set_named_property(env, exports, "fs", fsops) == napi_ok;
}
