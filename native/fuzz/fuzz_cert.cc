// libFuzzer target: certificate parsing, AMD KDS extension decoding (native/core/cert.cc) and,
// when $TAS_FUZZ_ROOTS is set, chain verification of the input as a leaf under genuine roots.
#include <cstddef>
#include <cstdint>

#include "../core/chain.h"
#include "../core/errors.h"
#include "common.h"

namespace {
tas::Bytes g_ark, g_ask;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_ark = tas_fuzz::RootFile("ark.pem");
  g_ask = tas_fuzz::RootFile("ask.pem");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  bool vek_ok = false;
  try {
    tas::X509Ptr cert = tas::ParseCert(data, size);
    try {
      (void)tas::GetCertInfo(cert.get());
    } catch (const tas::SnpError&) {
    }
    try {
      tas::VekInfo v = tas::ParseVek(cert.get());
      if (v.hw_id.has_value() == v.csp_id.has_value()) __builtin_trap();  // exactly one of them
      if (v.hw_id && v.hw_id->size() != 64 && v.hw_id->size() != 8) __builtin_trap();
      vek_ok = true;
    } catch (const tas::SnpError&) {
    }
    try {
      const X509_ALGOR* alg = nullptr;
      const ASN1_BIT_STRING* sig = nullptr;
      X509_get0_signature(&sig, &alg, cert.get());
      tas::CheckPssParams(alg, tas::kErrCertPss, "fuzz");
    } catch (const tas::SnpError&) {
    }
  } catch (const tas::SnpError&) {
  }
  // Chain verification costs RSA-4096 operations: only for inputs that already decode as a VCEK/VLEK.
  if (vek_ok && !g_ark.empty() && !g_ask.empty()) {
    tas::ChainInput in;
    in.anchors = {g_ark};
    in.intermediate = g_ask;
    in.leaf.assign(data, data + size);
    in.product = "Milan";
    in.at = 1767225600;  // 2026-01-01
    try {
      (void)tas::VerifyChain(in, nullptr);
    } catch (const tas::SnpError&) {
    }
  }
  return 0;
}
