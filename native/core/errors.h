// Stable error codes of the native core (SEV-SNP: SNP_ERR_*, Intel TDX: TDX_ERR_*). The string values are part of the TypeScript contract
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

// Intel TDX (DCAP quotes v4/v5 and their PCS collateral). SNP_ERR_INTERNAL stays the one code for
// "a bug or OpenSSL/allocation failure, never bad input" on every TEE.
constexpr const char* kTdxArgument = "TDX_ERR_ARGUMENT";
constexpr const char* kTdxQuoteSize = "TDX_ERR_QUOTE_SIZE";
constexpr const char* kTdxHeader = "TDX_ERR_HEADER";
constexpr const char* kTdxBodyType = "TDX_ERR_BODY_TYPE";
constexpr const char* kTdxSigData = "TDX_ERR_SIG_DATA";
constexpr const char* kTdxCertData = "TDX_ERR_CERT_DATA";
constexpr const char* kTdxTrailing = "TDX_ERR_TRAILING";
constexpr const char* kTdxAttKey = "TDX_ERR_ATTESTATION_KEY";
constexpr const char* kTdxQeReportSignature = "TDX_ERR_QE_REPORT_SIGNATURE";
constexpr const char* kTdxQeReportData = "TDX_ERR_QE_REPORT_DATA";
constexpr const char* kTdxQuoteSignature = "TDX_ERR_QUOTE_SIGNATURE";
constexpr const char* kTdxCertParse = "TDX_ERR_CERT_PARSE";
constexpr const char* kTdxCertShape = "TDX_ERR_CERT_SHAPE";
constexpr const char* kTdxRootNotPinned = "TDX_ERR_ROOT_NOT_PINNED";
constexpr const char* kTdxChain = "TDX_ERR_CHAIN";
constexpr const char* kTdxCertExpired = "TDX_ERR_CERT_EXPIRED";
constexpr const char* kTdxSgxExt = "TDX_ERR_SGX_EXT";
constexpr const char* kTdxCrlParse = "TDX_ERR_CRL_PARSE";
constexpr const char* kTdxCrlSignature = "TDX_ERR_CRL_SIGNATURE";
constexpr const char* kTdxCrlStale = "TDX_ERR_CRL_STALE";
constexpr const char* kTdxRevoked = "TDX_ERR_REVOKED";
constexpr const char* kTdxCollateralChain = "TDX_ERR_COLLATERAL_CHAIN";
constexpr const char* kTdxTcbInfoSignature = "TDX_ERR_TCB_INFO_SIGNATURE";
constexpr const char* kTdxQeIdentitySignature = "TDX_ERR_QE_IDENTITY_SIGNATURE";

// Key wrapping for the VM (wrap.h): the wrapping key is unusable for the reply.
constexpr const char* kWrapKey = "KBM_ERR_WRAPPING_KEY";

}  // namespace tas
