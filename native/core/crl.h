// CRL checks shared by every TEE: DER or PEM X509_CRL, issuer name and signature, freshness window
// with a skew, and serial lookups. The caller supplies the time. AMD KDS CRLs (SNP.md §2.4) are
// RSASSA-PSS signed by the ARK; Intel PCS CRLs (TDX.md §3 V3) are ECDSA-with-SHA256 signed by the
// Intel SGX Root CA or a PCK CA.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "ossl.h"

namespace tas {

constexpr size_t kMaxCrlSize = 1024 * 1024;
constexpr int64_t kMaxCrlSkew = 86400;

struct CrlResult {
  int64_t this_update = 0, next_update = 0;
  std::vector<std::string> revoked;  // the requested serials that are listed, lowercase hex
};

// CrlRules names the signature scheme a CRL must use and the codes failures carry.
struct CrlRules {
  enum class Scheme { kRsaPssSha384, kEcdsaSha256 } scheme;
  const char* parse_code;
  const char* signature_code;
  const char* stale_code;
  const char* issuer_what;  // "the ARK", "the Intel SGX Root CA", ...
};
extern const CrlRules kAmdCrlRules;

// ParseCrl accepts DER or one PEM "X509 CRL" block. Throws SNP_ERR_CRL_PARSE (or `code`).
X509CrlPtr ParseCrl(const uint8_t* data, size_t len, const char* code = nullptr);

// CheckCrlWith verifies the CRL's signature algorithm (per `rules`), that its issuer name is the
// issuer's subject (and, for ECDSA CRLs, that an AKI present on both sides matches the issuer's
// SKI), the signature with the issuer key, thisUpdate <= at+skew and at-skew < nextUpdate.
// Returns the window and the CRL's revoked serials that appear in `serials_hex`.
CrlResult CheckCrlWith(const X509_CRL* crl, const X509* issuer, int64_t at, int64_t skew, const std::vector<std::string>& serials_hex,
                       const CrlRules& rules);

// RevokedSerials lists every serial on the CRL, lowercase hex without leading zeros (as
// CertInfo::serial_hex), so a verified CRL can be cached and looked up without OpenSSL.
std::vector<std::string> RevokedSerials(const X509_CRL* crl, const char* code);

// CheckCrl (AMD rules) verifies the CRL signature with the ARK key (PSS parameters asserted), that its issuer
// is the ARK, that thisUpdate <= at+skew and at-skew < nextUpdate, and looks up the serials.
// Throws SNP_ERR_CRL_SIGNATURE, SNP_ERR_CRL_STALE or SNP_ERR_ARGUMENT.
CrlResult CheckCrl(const X509_CRL* crl, const X509* ark, int64_t at, int64_t skew, const std::vector<std::string>& serials_hex);

// InspectCrl reads times and entry count without a signature check (fuzzing, diagnostics).
size_t InspectCrl(const X509_CRL* crl);

}  // namespace tas
