// X.509 parsing for AMD certificates (AMD 57230; SNP.md §2.1, §2.2): DER or PEM input, AMD KDS
// extensions decoded as real DER, VCEK/VLEK shape checks. Bytes and crypto only.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "ossl.h"

namespace tas {

enum class VekKind { kVcek = 0, kVlek = 1 };

constexpr size_t kMaxCertSize = 64 * 1024;

// ParseCert accepts one DER certificate or one PEM "CERTIFICATE" block. Trailing garbage after
// the DER is rejected. Throws SNP_ERR_CERT_PARSE.
X509Ptr ParseCert(const uint8_t* data, size_t len);

// LooksLikePem tells PEM from DER input (leading white space allowed).
bool LooksLikePem(const uint8_t* p, size_t n);

// CertDer re-encodes the parsed certificate (the canonical DER that digests are taken over).
Bytes CertDer(const X509* cert);

struct CertInfo {
  std::string subject_cn, issuer_cn, serial_hex;
  int64_t not_before = 0, not_after = 0;  // seconds since the epoch
  Sha256 sha256{}, spki_sha256{};
  Bytes der;
};

// GetCertInfo extracts what callers show/cache on; throws SNP_ERR_CERT_PARSE on odd fields.
CertInfo GetCertInfo(const X509* cert);

struct Spl {
  int bl = 0, tee = 0, snp = 0, ucode = 0;
  std::optional<int> spl4, spl5, spl6, spl7, fmc;
};

struct VekInfo {
  VekKind kind = VekKind::kVcek;
  int struct_version = 0;
  std::string product_name;
  Spl spl;
  std::optional<Bytes> hw_id;          // VCEK only: 64 bytes (Milan/Genoa) or 8 (Turin)
  std::optional<std::string> csp_id;   // VLEK only
  CertInfo cert;
};

// ParseVek decodes the 1.3.6.1.4.1.3704.1.* extensions and checks the leaf shape: X.509 v3,
// serial 0, id-ecPublicKey on secp384r1, subject CN SEV-VCEK/SEV-VLEK consistent with the
// extensions. Throws SNP_ERR_EXT, SNP_ERR_CERT_SHAPE or SNP_ERR_SIGNER_KIND.
VekInfo ParseVek(const X509* cert);

// RequireP384 checks that a public key is EC on secp384r1 (SNP_ERR_CERT_SHAPE otherwise).
void RequireP384(const EVP_PKEY* key);

// Asn1TimeToEpoch converts an ASN1_TIME to seconds since the epoch (SNP_ERR_CERT_PARSE on junk).
int64_t Asn1TimeToEpoch(const ASN1_TIME* t, const char* code);

// CheckPssParams asserts RSASSA-PSS with SHA-384, MGF1-SHA-384, salt 48, trailer 1.
// Throws `code` (SNP_ERR_CERT_PSS / SNP_ERR_CRL_SIGNATURE) naming `what`.
void CheckPssParams(const X509_ALGOR* alg, const char* code, const std::string& what);

}  // namespace tas
