// libFuzzer target: the whole native verification (native/core/verify.cc) of a fuzzed report
// against one fixed, genuine chain: parse, SIGNING_KEY vs signer kind, ARK -> ASK -> VCEK (cached
// after the first input, as in the daemon), then the ECDSA P-384 report signature.
//
// The chain comes from $TAS_FUZZ_VECTOR, a directory with ark.pem, ask.pem, vcek.der (or vcek.pem)
// and report.bin (e.g. test/fixtures/snp-vectors/virtee-milan-v2), and $TAS_FUZZ_PRODUCT (default
// Milan). Without them the target refuses to start: fuzzing only the parser here would report
// executions that never reach the signature check.
//
// Invariant checked on every input: a report that verifies must carry exactly the signed bytes
// (0x000..0x29F) of the genuine report. Anything else verifying would be a forgery under AMD's key.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "../core/errors.h"
#include "../core/verify.h"
#include "common.h"

namespace {
tas::Bytes g_report;
tas::VerifyInput g_in;
tas::ChainCache g_cache;
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* dir = std::getenv("TAS_FUZZ_VECTOR");
  if (dir == nullptr) {
    std::fprintf(stderr, "fuzz_verify: set TAS_FUZZ_VECTOR to a vector directory (ark.pem, ask.pem, vcek.der|vcek.pem, report.bin)\n");
    std::abort();
  }
  const std::string d(dir);
  const char* product = std::getenv("TAS_FUZZ_PRODUCT");
  g_in.chain.anchors = {tas_fuzz::ReadFile(d + "/ark.pem")};
  g_in.chain.intermediate = tas_fuzz::ReadFile(d + "/ask.pem");
  g_in.chain.leaf = tas_fuzz::ReadFile(d + "/vcek.der");
  if (g_in.chain.leaf.empty()) g_in.chain.leaf = tas_fuzz::ReadFile(d + "/vcek.pem");
  g_in.chain.product = product != nullptr ? product : "Milan";
  g_in.chain.kind = tas::VekKind::kVcek;
  g_in.chain.at = 1767225600;  // 2026-01-01, inside every vector's validity window
  g_report = tas_fuzz::ReadFile(d + "/report.bin");
  // The genuine report must verify, or every fuzzed input would stop at the chain and the target
  // would silently test nothing past it.
  g_in.report = g_report;
  try {
    (void)tas::Verify(g_in, &g_cache);
  } catch (const tas::SnpError& e) {
    std::fprintf(stderr, "fuzz_verify: the genuine vector in %s does not verify: %s\n", dir, e.what());
    std::abort();
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  g_in.report.assign(data, data + size);  // reuse the buffers of the fixed chain: no copy per input
  try {
    (void)tas::Verify(g_in, &g_cache);
  } catch (const tas::SnpError&) {
    return 0;
  }
  if (size != g_report.size() || std::memcmp(data, g_report.data(), tas::kReportSignedSize) != 0) __builtin_trap();
  return 0;
}
