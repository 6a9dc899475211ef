#!/usr/bin/env bash
# Runs the native test suite against the ASan+UBSan build. node itself is not instrumented, so the
# ASan runtime is preloaded; leak checking is off (node keeps allocations alive until exit).
# Usage: native/tools/test-asan.sh [test files...] (default: test/native without fuzz/sanitizer suites)
set -euo pipefail
cd "$(dirname "$0")/../.."
bash native/tools/build-asan.sh >/dev/null  # failures print the build log tail on stderr
libasan=$(g++ -print-file-name=libasan.so)
[ -f "$libasan" ] || { echo "libasan.so not found (install g++)" >&2; exit 1; }
if [ $# -eq 0 ]; then
  set -- $(ls test/native/*.test.ts | grep -v -e fuzz.test.ts -e sanitizers.test.ts)
fi
export TAS_ASAN_PROBE=1
export TAS_NATIVE_ADDON="$PWD/build-asan/build/Release/tas_native.node"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:detect_stack_use_after_return=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
exec env LD_PRELOAD="$libasan" node --import tsx test/run.ts "$@"
