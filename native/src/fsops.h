#pragma once
#include <node_api.h>

// Adds exports.fs = { lgetxattr, lsetxattr, llistxattr, lremovexattr, mkfifo }.
bool RegisterFsOps(napi_env env, napi_value exports);
