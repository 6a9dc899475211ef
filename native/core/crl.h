// AMD KDS CRL checks (SNP.md §2.4): DER or PEM X509_CRL signed by the ARK with RSASSA-PSS,
// freshness window with a skew, and serial lookups. The caller supplies the time.
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

// ParseCrl accepts DER or one PEM "X509 CRL" block. Throws SNP_ERR_CRL_PARSE.
X509CrlPtr ParseCrl(const uint8_t* data, size_t len);

// CheckCrl verifies the CRL signature with the ARK key (PSS parameters asserted), that its issuer
// is the ARK, that thisUpdate <= at+skew and at-skew < nextUpdate, and looks up the serials.
// Throws SNP_ERR_CRL_SIGNATURE, SNP_ERR_CRL_STALE or SNP_ERR_ARGUMENT.
CrlResult CheckCrl(const X509_CRL* crl, const X509* ark, int64_t at, int64_t skew, const std::vector<std::string>& serials_hex);

// InspectCrl reads times and entry count without a signature check (fuzzing, diagnostics).
size_t InspectCrl(const X509_CRL* crl);

}  // namespace tas
