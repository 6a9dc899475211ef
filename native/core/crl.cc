#include "crl.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cctype>
#include <cstring>

#include "cert.h"
#include "errors.h"

namespace tas {
namespace {

bool IsHexSerial(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

}  // namespace

const CrlRules kAmdCrlRules = {CrlRules::Scheme::kRsaPssSha384, kErrCrlParse, kErrCrlSignature, kErrCrlStale, "the ARK"};

X509CrlPtr ParseCrl(const uint8_t* data, size_t len, const char* code) {
  const char* kErrCrlParse = code != nullptr ? code : tas::kErrCrlParse;  // shadows the default on purpose
  if (data == nullptr || len == 0 || len > kMaxCrlSize) Fail(kErrCrlParse, "CRL is " + std::to_string(len) + " bytes (1..1 MiB)");
  X509CrlPtr crl;
  if (LooksLikePem(data, len)) {
    BioPtr bio(BIO_new_mem_buf(data, static_cast<int>(len)));
    if (!bio) Fail(kErrInternal, "BIO_new_mem_buf failed");
    crl.reset(PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr));
  } else {
    const uint8_t* p = data;
    crl.reset(d2i_X509_CRL(nullptr, &p, static_cast<long>(len)));
    if (crl && p != data + len) Fail(kErrCrlParse, "trailing bytes after the DER CRL");
  }
  if (!crl) Fail(kErrCrlParse, "not an X.509 CRL: " + LastOpensslError());
  ERR_clear_error();
  return crl;
}

size_t InspectCrl(const X509_CRL* crl) {
  (void)Asn1TimeToEpoch(X509_CRL_get0_lastUpdate(crl), kErrCrlParse);
  if (X509_CRL_get0_nextUpdate(crl) != nullptr) (void)Asn1TimeToEpoch(X509_CRL_get0_nextUpdate(crl), kErrCrlParse);
  STACK_OF(X509_REVOKED)* revoked = X509_CRL_get_REVOKED(const_cast<X509_CRL*>(crl));
  size_t n = 0;
  for (int i = 0; i < sk_X509_REVOKED_num(revoked); i++) {
    const ASN1_INTEGER* serial = X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(revoked, i));
    if (serial != nullptr) n++;
  }
  return n;
}

CrlResult CheckCrl(const X509_CRL* crl, const X509* ark, int64_t at, int64_t skew, const std::vector<std::string>& serials_hex) {
  return CheckCrlWith(crl, ark, at, skew, serials_hex, kAmdCrlRules);
}

std::vector<std::string> RevokedSerials(const X509_CRL* crl, const char* code) {
  STACK_OF(X509_REVOKED)* revoked = X509_CRL_get_REVOKED(const_cast<X509_CRL*>(crl));
  std::vector<std::string> out;
  for (int i = 0; i < sk_X509_REVOKED_num(revoked); i++) {
    const ASN1_INTEGER* serial = X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(revoked, i));
    BnPtr bn(serial != nullptr ? ASN1_INTEGER_to_BN(serial, nullptr) : nullptr);
    if (!bn) {
      ERR_clear_error();
      Fail(code, "a revoked entry has no readable serial");
    }
    char* hex = BN_bn2hex(bn.get());
    if (hex == nullptr) Fail(kErrInternal, "BN_bn2hex failed");
    std::string s(hex);
    OPENSSL_free(hex);
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    out.push_back(std::move(s));
  }
  return out;
}

CrlResult CheckCrlWith(const X509_CRL* crl_c, const X509* issuer, int64_t at, int64_t skew, const std::vector<std::string>& serials_hex,
                       const CrlRules& rules) {
  X509_CRL* crl = const_cast<X509_CRL*>(crl_c);  // OpenSSL 3.0 lookup APIs take non-const
  const char* kErrCrlParse = rules.parse_code;  // the shadowing names keep the checks readable
  const char* kErrCrlSignature = rules.signature_code;
  const char* kErrCrlStale = rules.stale_code;
  const std::string who = rules.issuer_what;
  if (skew < 0 || skew > kMaxCrlSkew) Fail(kErrArgument, "CRL skew must be 0..86400 seconds");
  for (const auto& s : serials_hex) {
    if (!IsHexSerial(s)) Fail(kErrArgument, "serial '" + s.substr(0, 70) + "' is not 1..64 hex digits");
  }
  const ASN1_BIT_STRING* sig = nullptr;
  const X509_ALGOR* alg = nullptr;
  X509_CRL_get0_signature(crl, &sig, &alg);
  if (rules.scheme == CrlRules::Scheme::kRsaPssSha384) {
    CheckPssParams(alg, kErrCrlSignature, "CRL");
  } else {
    const ASN1_OBJECT* oid = nullptr;
    X509_ALGOR_get0(&oid, nullptr, nullptr, alg);
    if (OBJ_obj2nid(oid) != NID_ecdsa_with_SHA256) Fail(kErrCrlSignature, "CRL signature algorithm is not ecdsa-with-SHA256");
  }
  if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(issuer)) != 0) {
    Fail(kErrCrlSignature, "CRL issuer is not " + who);
  }
  if (rules.scheme == CrlRules::Scheme::kEcdsaSha256) {
    // Automata audit finding (TDX.md §7.9): pair the CRL's AKI with the issuer's SKI when both exist.
    AUTHORITY_KEYID* aki = static_cast<AUTHORITY_KEYID*>(X509_CRL_get_ext_d2i(crl, NID_authority_key_identifier, nullptr, nullptr));
    const ASN1_OCTET_STRING* ski = X509_get0_subject_key_id(const_cast<X509*>(issuer));
    bool mismatch = aki != nullptr && aki->keyid != nullptr && ski != nullptr && ASN1_OCTET_STRING_cmp(aki->keyid, ski) != 0;
    AUTHORITY_KEYID_free(aki);
    ERR_clear_error();
    if (mismatch) Fail(kErrCrlSignature, "CRL authority key identifier is not the subject key identifier of " + who);
  }
  EVP_PKEY* issuer_key = X509_get0_pubkey(issuer);
  if (issuer_key == nullptr || X509_CRL_verify(crl, issuer_key) != 1) {
    ERR_clear_error();
    Fail(kErrCrlSignature, "CRL signature does not verify with the key of " + who);
  }
  CrlResult out;
  out.this_update = Asn1TimeToEpoch(X509_CRL_get0_lastUpdate(crl), kErrCrlParse);
  const ASN1_TIME* next = X509_CRL_get0_nextUpdate(crl);
  if (next == nullptr) Fail(kErrCrlStale, "CRL has no nextUpdate");
  out.next_update = Asn1TimeToEpoch(next, kErrCrlParse);
  if (out.this_update > at + skew) Fail(kErrCrlStale, "CRL thisUpdate is in the future");
  if (at - skew >= out.next_update) Fail(kErrCrlStale, "CRL is past its nextUpdate");
  for (const auto& s : serials_hex) {
    BIGNUM* bn = nullptr;
    if (BN_hex2bn(&bn, s.c_str()) != static_cast<int>(s.size())) {
      BN_free(bn);
      Fail(kErrArgument, "serial '" + s + "' does not decode");
    }
    BnPtr guard(bn);
    ASN1_INTEGER* ai = BN_to_ASN1_INTEGER(bn, nullptr);
    if (ai == nullptr) Fail(kErrInternal, "BN_to_ASN1_INTEGER failed");
    X509_REVOKED* rev = nullptr;
    int found = X509_CRL_get0_by_serial(crl, &rev, ai);
    ASN1_INTEGER_free(ai);
    if (found == 1) {
      std::string lower = s;
      for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      out.revoked.push_back(lower);
    }
  }
  ERR_clear_error();
  return out;
}

}  // namespace tas
