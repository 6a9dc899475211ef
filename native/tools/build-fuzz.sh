#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, -fsanitize=fuzzer,address,undefined) into native/fuzz/out/.
# The parsing core is compiled without Node; OpenSSL headers are Node's own (the same ones the
# addon is built with) and the library is the system libcrypto 3 (same 3.0 ABI).
set -euo pipefail
cd "$(dirname "$0")/../.."
CXX=${CXX_FUZZ:-clang++}
command -v "$CXX" >/dev/null || { echo "$CXX not found: apt-get install clang libclang-rt-14-dev" >&2; exit 1; }
inc=""
for d in "${npm_config_nodedir:-}/include/node" /usr/include/node "$HOME/.cache/node-gyp/$(node -p process.versions.node)/include/node"; do
  if [ -f "$d/openssl/opensslv.h" ]; then inc="$d"; break; fi
done
[ -n "$inc" ] || { echo "node headers with openssl/ not found" >&2; exit 1; }
libcrypto=$(ls /usr/lib/*/libcrypto.so.3 /lib/*/libcrypto.so.3 2>/dev/null | head -1)
[ -n "$libcrypto" ] || { echo "libcrypto.so.3 not found (apt-get install libssl3)" >&2; exit 1; }
mkdir -p native/fuzz/out/obj
flags=(-std=c++17 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
       -Wall -Wextra -Werror -isystem "$inc")
core=(cert chain crl der nvidia ossl report sgx_ext signature spdm tdx_quote tdx_verify verify wrap)
objs=()
for c in "${core[@]}"; do
  o=native/fuzz/out/obj/$c.o
  if [ ! -f "$o" ] || [ native/core/$c.cc -nt "$o" ] || [ -n "$(find native/core -name '*.h' -newer "$o")" ]; then
    "$CXX" "${flags[@]}" -c native/core/$c.cc -o "$o"
  fi
  objs+=("$o")
done
for t in report cert crl verify tdx_quote sgx_ext pcs spdm fwid wrapkey; do
  "$CXX" "${flags[@]}" -fsanitize=fuzzer native/fuzz/fuzz_$t.cc "${objs[@]}" "$libcrypto" -o native/fuzz/out/fuzz_$t
done
echo native/fuzz/out
