// libFuzzer target: the SGX PCK certificate extension decoder (native/core/sgx_ext.cc, a bounded
// DER walk by OID over native/core/der.cc) and the PEM chain splitter. Invariants asserted.
#include <cstddef>
#include <cstdint>

#include "../core/errors.h"
#include "../core/sgx_ext.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    tas::SgxExtension e = tas::DecodeSgxExtension(data, size, tas::kTdxSgxExt);
    if (e.sgx_type < 0 || e.sgx_type > 2) __builtin_trap();
  } catch (const tas::SnpError&) {
  }
  try {
    std::vector<tas::Bytes> pems = tas::SplitPemChain(data, size, 3, tas::kTdxCertData);
    if (pems.size() != 3) __builtin_trap();
    for (const auto& p : pems) {
      if (p.size() > size) __builtin_trap();
    }
  } catch (const tas::SnpError&) {
  }
  return 0;
}
