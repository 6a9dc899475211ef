// libFuzzer target: TDX quote parsing (native/core/tdx_quote.cc) and, when $TAS_FUZZ_TDX_DIR names
// a genuine vector directory (quote collateral + Intel root), the whole native verification of the
// input as a quote (PEM chain split, PCK chain, SGX extension, CRLs, signatures) at
// $TAS_FUZZ_TDX_AT (seconds). Invariants of a parsed quote are asserted.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "../core/errors.h"
#include "../core/tdx_quote.h"
#include "../core/tdx_verify.h"
#include "common.h"

namespace {
tas::TdxVerifyInput* g_in = nullptr;

bool Within(const tas::QuoteSpan& s, size_t n) { return s.offset <= n && s.length <= n - s.offset; }
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* dir = std::getenv("TAS_FUZZ_TDX_DIR");
  const char* at = std::getenv("TAS_FUZZ_TDX_AT");
  if (dir == nullptr || at == nullptr) return 0;
  std::string d(dir);
  g_in = new tas::TdxVerifyInput();
  g_in->anchors.push_back(tas_fuzz::ReadFile(d + "/root.der"));
  g_in->root_crl = tas_fuzz::ReadFile(d + "/root_ca_crl.der");
  g_in->pck_crl = tas_fuzz::ReadFile(d + "/pck_crl.der");
  g_in->tcb_info = {tas_fuzz::ReadFile(d + "/tcb_info.body"), tas_fuzz::ReadFile(d + "/tcb_info.sig"), tas_fuzz::ReadFile(d + "/tcb_info_issuer_chain.pem")};
  g_in->qe_identity = {tas_fuzz::ReadFile(d + "/qe_identity.body"), tas_fuzz::ReadFile(d + "/qe_identity.sig"),
                       tas_fuzz::ReadFile(d + "/qe_identity_issuer_chain.pem")};
  g_in->at = std::atoll(at);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    tas::TdxQuote q = tas::ParseTdxQuote(data, size);
    if (q.version != 4 && q.version != 5) __builtin_trap();
    if (!((q.body_type == 2 && q.body_size == 584 && !q.body.is_td15) || (q.body_type == 3 && q.body_size == 648 && q.body.is_td15))) __builtin_trap();
    const size_t want_signed = q.version == 4 ? 632 : (q.body_type == 2 ? 638 : 702);
    if (q.signed_region.length != want_signed || q.signed_region.offset != 0) __builtin_trap();
    for (const auto& s : {q.header, q.body_span, q.signed_region, q.signature_data, q.qe_report_span, q.qe_report_signature_span, q.qe_auth_data, q.pck_chain, q.trailing_span}) {
      if (!Within(s, size)) __builtin_trap();
    }
    if (q.trailing_span.offset + q.trailing_span.length != size) __builtin_trap();
    if (std::any_of(data + q.trailing_span.offset, data + size, [](uint8_t b) { return b != 0; })) __builtin_trap();
    if (q.pck_chain.offset + q.pck_chain.length != q.signature_data.offset + q.signature_data.length) __builtin_trap();
    if (g_in != nullptr) {
      g_in->quote.assign(data, data + size);
      try {
        (void)tas::VerifyTdxQuote(*g_in, nullptr);
      } catch (const tas::SnpError&) {
      }
    }
  } catch (const tas::SnpError&) {
  }
  return 0;
}
