// libFuzzer target: CRL parsing (native/core/crl.cc) and, when $TAS_FUZZ_ROOTS is set, the full
// CRL check (PSS parameters, issuer, signature, window, serial lookup) against a genuine ARK.
#include <cstddef>
#include <cstdint>

#include "../core/cert.h"
#include "../core/crl.h"
#include "../core/errors.h"
#include "common.h"

namespace {
tas::X509Ptr g_ark;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  tas::Bytes ark = tas_fuzz::RootFile("ark.pem");
  if (!ark.empty()) g_ark = tas::ParseCert(ark.data(), ark.size());
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    tas::X509CrlPtr crl = tas::ParseCrl(data, size);
    try {
      (void)tas::InspectCrl(crl.get());
    } catch (const tas::SnpError&) {
    }
    if (g_ark) {
      try {
        tas::CrlResult r = tas::CheckCrl(crl.get(), g_ark.get(), 1767225600, 300, {"10001", "0", "ff"});
        if (r.revoked.size() > 3) __builtin_trap();
      } catch (const tas::SnpError&) {
      }
    }
  } catch (const tas::SnpError&) {
  }
  return 0;
}
