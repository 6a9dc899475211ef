// libFuzzer target: ATTESTATION_REPORT parsing (native/core/report.cc).
#include <cstddef>
#include <cstdint>

#include "../core/errors.h"
#include "../core/report.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    tas::Report r = tas::ParseReport(data, size);
    // A parsed report must satisfy the invariants the TypeScript layer relies on.
    if (r.version < 2 || r.version > 5 || r.signature_algo != 1) __builtin_trap();
    if (r.has_cpuid != (r.version >= 3) || r.has_mit_vectors != (r.version >= 5)) __builtin_trap();
    if ((r.policy & (1ULL << 17)) == 0 || (r.policy >> 26) != 0) __builtin_trap();
  } catch (const tas::SnpError&) {
  }
  return 0;
}
