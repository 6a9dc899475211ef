# tas_native: the SEV-SNP and Intel TDX verification addon (native/). Decision (DESIGN.md): compile against the
# OpenSSL headers node-gyp ships with Node (include/node/openssl comes first on the include path)
# and link NOTHING extra: the symbols resolve at load time to the OpenSSL the running node carries
# (bundled in NodeSource builds, the system libssl3 in distribution builds).
{
  "variables": {
    # TAS_SANITIZE=1 (see native/tools/build-asan.sh) builds the ASan+UBSan variant.
    "tas_sanitize%": "<!(node -p \"process.env.TAS_SANITIZE === '1' ? 1 : 0\")",
  },
  "targets": [
    {
      "target_name": "tas_native",
      "sources": [
        "native/addon.cc",
        "native/core/cert.cc",
        "native/core/chain.cc",
        "native/core/crl.cc",
        "native/core/der.cc",
        "native/core/nvidia.cc",
        "native/core/ossl.cc",
        "native/core/report.cc",
        "native/core/sgx_ext.cc",
        "native/core/signature.cc",
        "native/core/tdx_quote.cc",
        "native/core/tdx_verify.cc",
        "native/core/spdm.cc",
        "native/core/verify.cc",
        "native/core/wrap.cc",
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++20"],
      "cflags": ["-Wall", "-Wextra", "-Werror", "-fvisibility=hidden", "-fexceptions"],
      "cflags_cc": ["-std=c++17", "-fexceptions"],
      # Full RELRO: every symbol bound at load (-z now) and the GOT read-only after it, so a
      # memory-safety bug cannot redirect a lazily bound call (lintian: hardening-no-bindnow).
      "ldflags": ["-Wl,-z,relro", "-Wl,-z,now"],
      "conditions": [
        ["tas_sanitize==1", {
          "cflags": ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"],
          "ldflags": ["-fsanitize=address,undefined"],
        }, {
          "cflags": ["-O2", "-D_FORTIFY_SOURCE=2"],
        }],
      ],
    },
  ],
}
