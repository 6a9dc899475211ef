// Stable error codes of the SEV-SNP core. The string values are part of the TypeScript contract
// (src/native/codes.ts documents each one); never rename a code, only add new ones.
#pragma once
#include <exception>
#include <string>
#include <utility>

namespace tas {

// SnpError carries a stable code (e.g. "SNP_ERR_MBZ") and a human detail for the log. The core
// throws it; the N-API glue and the fuzzers catch it. Nothing else is ever thrown on bad input.
class SnpError : public std::exception {
 public:
  SnpError(const char* code, std::string detail) : code_(code), detail_(std::move(detail)) {}
  const char* what() const noexcept override { return detail_.c_str(); }
  const std::string& code() const noexcept { return code_; }
  const std::string& detail() const noexcept { return detail_; }

 private:
  std::string code_;
  std::string detail_;
};

[[noreturn]] inline void Fail(const char* code, std::string detail) { throw SnpError(code, std::move(detail)); }

// Codes (keep in sync with src/native/codes.ts).
constexpr const char* kErrArgument = "SNP_ERR_ARGUMENT";
constexpr const char* kErrReportSize = "SNP_ERR_REPORT_SIZE";
constexpr const char* kErrReportVersion = "SNP_ERR_REPORT_VERSION";
constexpr const char* kErrSignatureAlgo = "SNP_ERR_SIGNATURE_ALGO";
constexpr const char* kErrMbz = "SNP_ERR_MBZ";
constexpr const char* kErrPolicyBit17 = "SNP_ERR_POLICY_BIT17";
constexpr const char* kErrPolicyReserved = "SNP_ERR_POLICY_RESERVED";
constexpr const char* kErrSigningKey = "SNP_ERR_SIGNING_KEY";
constexpr const char* kErrReportSignature = "SNP_ERR_REPORT_SIGNATURE";
constexpr const char* kErrCertParse = "SNP_ERR_CERT_PARSE";
constexpr const char* kErrCertShape = "SNP_ERR_CERT_SHAPE";
constexpr const char* kErrChain = "SNP_ERR_CHAIN";
constexpr const char* kErrCertExpired = "SNP_ERR_CERT_EXPIRED";
constexpr const char* kErrCertPss = "SNP_ERR_CERT_PSS";
constexpr const char* kErrCertDn = "SNP_ERR_CERT_DN";
constexpr const char* kErrExt = "SNP_ERR_EXT";
constexpr const char* kErrSignerKind = "SNP_ERR_SIGNER_KIND";
constexpr const char* kErrCrlParse = "SNP_ERR_CRL_PARSE";
constexpr const char* kErrCrlSignature = "SNP_ERR_CRL_SIGNATURE";
constexpr const char* kErrCrlStale = "SNP_ERR_CRL_STALE";
constexpr const char* kErrRevoked = "SNP_ERR_REVOKED";
constexpr const char* kErrInternal = "SNP_ERR_INTERNAL";

}  // namespace tas
