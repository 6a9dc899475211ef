// libFuzzer target: the PCS collateral path (native/core/tdx_verify.cc VerifyPcsJson): an input is
// u16 LE body length ‖ body ‖ 64-byte signature ‖ issuer chain (PEM). The body's signature is
// checked over its exact bytes with the TCB Signing chain to the genuine Intel root (loaded from
// $TAS_FUZZ_TDX_DIR/root.der when set, else the chain's own last certificate cannot be pinned and
// every input is refused at the chain) at $TAS_FUZZ_TDX_AT. The input's parity picks the kind (tcbInfo, enclaveIdentity).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "../core/errors.h"
#include "../core/tdx_verify.h"
#include "common.h"

namespace {
std::vector<tas::Bytes> g_anchors;
int64_t g_at = 1750000000;
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* dir = std::getenv("TAS_FUZZ_TDX_DIR");
  const char* at = std::getenv("TAS_FUZZ_TDX_AT");
  if (dir != nullptr) g_anchors.push_back(tas_fuzz::ReadFile(std::string(dir) + "/root.der"));
  if (at != nullptr) g_at = std::atoll(at);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2 || g_anchors.empty()) return 0;
  const size_t body_len = static_cast<size_t>(data[0] | (data[1] << 8));
  if (size < 2 + body_len + 64) return 0;
  tas::PcsSignedJson j;
  j.body.assign(data + 2, data + 2 + body_len);
  j.signature.assign(data + 2 + body_len, data + 2 + body_len + 64);
  j.chain.assign(data + 2 + body_len + 64, data + size);
  // One kind per input (the input's parity), so each execution does one chain verification.
  const auto kind = (size & 1) ? tas::PcsJsonKind::kQeIdentity : tas::PcsJsonKind::kTcbInfo;
  try {
    auto e = tas::VerifyPcsJson(j, kind, g_anchors, nullptr, g_at, nullptr);
    if (!e || e->signer.subject_cn != "Intel SGX TCB Signing") __builtin_trap();
  } catch (const tas::SnpError&) {
  }
  return 0;
}
