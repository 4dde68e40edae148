{
  "targets": [
    {
      "target_name": "dvfs_native",
      "sources": ["src/addon.cc", "src/codec.cc", "src/fsops.cc"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags": ["-O3", "-fvisibility=hidden"],
      "cflags_cc": ["-O3", "-fvisibility=hidden", "-Wno-deprecated-declarations"],
      "xcode_settings": {
        "GCC_OPTIMIZATION_LEVEL": "3",
        "GCC_SYMBOLS_PRIVATE_EXTERN": "YES",
        "WARNING_CFLAGS": ["-Wno-deprecated-declarations"]
      },
      "msvs_settings": {
        "VCCLCompilerTool": { "DisableSpecificWarnings": ["4996"] }
      }
    }
  ]
}
