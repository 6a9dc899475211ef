#include "cert.h"

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include <cctype>
#include <cstring>
#include <ctime>
#include <map>

#include "errors.h"

namespace tas {
namespace {

std::string NameCn(const X509_NAME* name) {
  int idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (idx < 0) return "";
  const ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
  unsigned char* utf8 = nullptr;
  int n = ASN1_STRING_to_UTF8(&utf8, s);
  if (n < 0) Fail(kErrCertParse, "CN is not a decodable string");
  std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(n));
  OPENSSL_free(utf8);
  return out;
}

std::string SerialHex(const ASN1_INTEGER* serial) {
  BnPtr bn(ASN1_INTEGER_to_BN(serial, nullptr));
  if (!bn) Fail(kErrCertParse, "serial number: " + LastOpensslError());
  char* hex = BN_bn2hex(bn.get());
  if (hex == nullptr) Fail(kErrInternal, "BN_bn2hex failed");
  std::string s(hex);
  OPENSSL_free(hex);
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

int DecodeSpl(const uint8_t* p, size_t n, const char* name) {
  const uint8_t* q = p;
  ASN1_INTEGER* ai = d2i_ASN1_INTEGER(nullptr, &q, static_cast<long>(n));
  if (ai == nullptr || q != p + n) {
    ASN1_INTEGER_free(ai);
    ERR_clear_error();
    Fail(kErrExt, std::string(name) + " is not one DER INTEGER");
  }
  int64_t v = -1;
  int ok = ASN1_INTEGER_get_int64(&v, ai);
  ASN1_INTEGER_free(ai);
  ERR_clear_error();
  if (ok != 1 || v < 0 || v > 255) Fail(kErrExt, std::string(name) + " is out of range 0..255");
  return static_cast<int>(v);
}

std::string DecodeIa5(const uint8_t* p, size_t n, const char* name) {
  const uint8_t* q = p;
  ASN1_IA5STRING* s = d2i_ASN1_IA5STRING(nullptr, &q, static_cast<long>(n));
  if (s == nullptr || q != p + n || ASN1_STRING_type(s) != V_ASN1_IA5STRING) {
    ASN1_STRING_free(s);
    ERR_clear_error();
    Fail(kErrExt, std::string(name) + " is not one DER IA5String");
  }
  std::string out(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), static_cast<size_t>(ASN1_STRING_length(s)));
  ASN1_STRING_free(s);
  if (out.empty() || out.size() > 256) Fail(kErrExt, std::string(name) + " has a bad length");
  for (char c : out) {
    if (c < 0x20 || c > 0x7E) Fail(kErrExt, std::string(name) + " has a non-printable character");
  }
  return out;
}

// DecodeHwId takes the raw hwID octets (64 bytes Milan/Genoa, 8 bytes Turin). It also tolerates
// an OCTET STRING wrapper, recognised by total length only (66/10 bytes with a matching header),
// never by sniffing the first byte: a CHIP_ID may well start with 0x04 or 0x02 (snpguest #38).
Bytes DecodeHwId(const uint8_t* p, size_t n) {
  if (n == 64 || n == 8) return Bytes(p, p + n);
  if ((n == 66 && p[0] == 0x04 && p[1] == 64) || (n == 10 && p[0] == 0x04 && p[1] == 8)) return Bytes(p + 2, p + n);
  Fail(kErrExt, "hwID is " + std::to_string(n) + " bytes, expected 64 or 8");
}

enum class ExtId { kStructVersion, kProductName, kBl, kTee, kSnp, kSpl4, kSpl5, kSpl6, kSpl7, kUcode, kFmc, kHwId, kCspId };

const std::map<std::string, ExtId>& AmdExtensions() {
  static const std::map<std::string, ExtId> m = {
      {"1", ExtId::kStructVersion}, {"2", ExtId::kProductName}, {"3.1", ExtId::kBl},   {"3.2", ExtId::kTee},
      {"3.3", ExtId::kSnp},         {"3.4", ExtId::kSpl4},      {"3.5", ExtId::kSpl5}, {"3.6", ExtId::kSpl6},
      {"3.7", ExtId::kSpl7},        {"3.8", ExtId::kUcode},     {"3.9", ExtId::kFmc},  {"4", ExtId::kHwId},
      {"5", ExtId::kCspId},
  };
  return m;
}

}  // namespace

X509Ptr ParseCert(const uint8_t* data, size_t len) {
  if (data == nullptr || len == 0 || len > kMaxCertSize) {
    Fail(kErrCertParse, "certificate is " + std::to_string(len) + " bytes (1.." + std::to_string(kMaxCertSize) + ")");
  }
  X509Ptr cert;
  if (LooksLikePem(data, len)) {
    BioPtr bio(BIO_new_mem_buf(data, static_cast<int>(len)));
    if (!bio) Fail(kErrInternal, "BIO_new_mem_buf failed");
    cert.reset(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  } else {
    const uint8_t* p = data;
    cert.reset(d2i_X509(nullptr, &p, static_cast<long>(len)));
    if (cert && p != data + len) {
      Fail(kErrCertParse, "trailing bytes after the DER certificate");
    }
  }
  if (!cert) Fail(kErrCertParse, "not an X.509 certificate: " + LastOpensslError());
  ERR_clear_error();
  return cert;
}

Bytes CertDer(const X509* cert) {
  int n = i2d_X509(cert, nullptr);
  if (n <= 0) Fail(kErrCertParse, "cannot re-encode certificate: " + LastOpensslError());
  Bytes der(static_cast<size_t>(n));
  uint8_t* p = der.data();
  if (i2d_X509(cert, &p) != n) Fail(kErrInternal, "i2d_X509 length changed");
  return der;
}

int64_t Asn1TimeToEpoch(const ASN1_TIME* t, const char* code) {
  struct tm tm {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) {
    ERR_clear_error();
    Fail(code, "unreadable ASN.1 time");
  }
  return static_cast<int64_t>(timegm(&tm));
}

CertInfo GetCertInfo(const X509* cert) {
  CertInfo ci;
  ci.subject_cn = NameCn(X509_get_subject_name(cert));
  ci.issuer_cn = NameCn(X509_get_issuer_name(cert));
  ci.serial_hex = SerialHex(X509_get0_serialNumber(cert));
  ci.not_before = Asn1TimeToEpoch(X509_get0_notBefore(cert), kErrCertParse);
  ci.not_after = Asn1TimeToEpoch(X509_get0_notAfter(cert), kErrCertParse);
  ci.der = CertDer(cert);
  ci.sha256 = Sha256Of(ci.der.data(), ci.der.size());
  const X509_PUBKEY* spki = X509_get_X509_PUBKEY(cert);
  unsigned char* spki_der = nullptr;
  int n = i2d_X509_PUBKEY(spki, &spki_der);
  if (n <= 0) Fail(kErrCertParse, "cannot encode SubjectPublicKeyInfo: " + LastOpensslError());
  ci.spki_sha256 = Sha256Of(spki_der, static_cast<size_t>(n));
  OPENSSL_free(spki_der);
  return ci;
}

void RequireP384(const EVP_PKEY* key) {
  if (key == nullptr || EVP_PKEY_get_base_id(key) != EVP_PKEY_EC) Fail(kErrCertShape, "public key is not an EC key");
  char group[64] = {0};
  size_t glen = 0;
  if (EVP_PKEY_get_group_name(key, group, sizeof group, &glen) != 1 || std::strcmp(group, "secp384r1") != 0) {
    ERR_clear_error();
    Fail(kErrCertShape, "EC key is not on secp384r1");
  }
}

void CheckPssParams(const X509_ALGOR* alg, const char* code, const std::string& what) {
  const ASN1_OBJECT* oid = nullptr;
  int ptype = 0;
  const void* pval = nullptr;
  X509_ALGOR_get0(&oid, &ptype, &pval, alg);
  if (OBJ_obj2nid(oid) != NID_rsassaPss) Fail(code, what + ": signature algorithm is not RSASSA-PSS");
  if (ptype != V_ASN1_SEQUENCE || pval == nullptr) Fail(code, what + ": RSASSA-PSS parameters missing");
  const ASN1_STRING* seq = static_cast<const ASN1_STRING*>(pval);
  const uint8_t* p = ASN1_STRING_get0_data(seq);
  const uint8_t* q = p;
  RSA_PSS_PARAMS* pss = d2i_RSA_PSS_PARAMS(nullptr, &q, ASN1_STRING_length(seq));
  std::unique_ptr<RSA_PSS_PARAMS, void (*)(RSA_PSS_PARAMS*)> guard(pss, RSA_PSS_PARAMS_free);
  if (pss == nullptr || q != p + ASN1_STRING_length(seq)) {
    ERR_clear_error();
    Fail(code, what + ": RSASSA-PSS parameters do not decode");
  }
  // Absent fields mean SHA-1 / MGF1-SHA-1 / salt 20 defaults: all of them are wrong for AMD.
  if (pss->hashAlgorithm == nullptr || OBJ_obj2nid(pss->hashAlgorithm->algorithm) != NID_sha384) {
    Fail(code, what + ": PSS hash is not SHA-384");
  }
  if (pss->maskGenAlgorithm == nullptr || OBJ_obj2nid(pss->maskGenAlgorithm->algorithm) != NID_mgf1) {
    Fail(code, what + ": PSS mask generation is not MGF1");
  }
  const ASN1_TYPE* mgf_param = pss->maskGenAlgorithm->parameter;
  if (mgf_param == nullptr || mgf_param->type != V_ASN1_SEQUENCE) Fail(code, what + ": MGF1 hash missing");
  const uint8_t* mp = ASN1_STRING_get0_data(mgf_param->value.sequence);
  const uint8_t* mq = mp;
  X509_ALGOR* mgf_hash = d2i_X509_ALGOR(nullptr, &mq, ASN1_STRING_length(mgf_param->value.sequence));
  bool mgf_ok = mgf_hash != nullptr && mq == mp + ASN1_STRING_length(mgf_param->value.sequence) &&
                OBJ_obj2nid(mgf_hash->algorithm) == NID_sha384;
  X509_ALGOR_free(mgf_hash);
  ERR_clear_error();
  if (!mgf_ok) Fail(code, what + ": MGF1 hash is not SHA-384");
  int64_t salt = -1;
  if (pss->saltLength == nullptr || ASN1_INTEGER_get_int64(&salt, pss->saltLength) != 1 || salt != 48) {
    ERR_clear_error();
    Fail(code, what + ": PSS salt length is not 48");
  }
  if (pss->trailerField != nullptr) {
    int64_t trailer = -1;
    if (ASN1_INTEGER_get_int64(&trailer, pss->trailerField) != 1 || trailer != 1) {
      ERR_clear_error();
      Fail(code, what + ": PSS trailer field is not 1");
    }
  }
}

VekInfo ParseVek(const X509* cert) {
  VekInfo v;
  v.cert = GetCertInfo(cert);
  if (X509_get_version(cert) != X509_VERSION_3) Fail(kErrCertShape, "VCEK/VLEK is not an X.509 v3 certificate");
  int64_t serial = -1;
  if (ASN1_INTEGER_get_int64(&serial, X509_get0_serialNumber(cert)) != 1 || serial != 0) {
    ERR_clear_error();
    Fail(kErrCertShape, "VCEK/VLEK serial number is not 0");
  }
  RequireP384(X509_get0_pubkey(cert));

  const std::string prefix = "1.3.6.1.4.1.3704.";
  const std::string amd = "1.3.6.1.4.1.3704.1.";
  std::map<ExtId, bool> seen;
  std::optional<int> struct_version, bl, tee, snp, ucode;
  std::optional<std::string> product;
  for (int i = 0; i < X509_get_ext_count(cert); i++) {
    X509_EXTENSION* ext = X509_get_ext(cert, i);
    char oid[128] = {0};
    int olen = OBJ_obj2txt(oid, sizeof oid, X509_EXTENSION_get_object(ext), 1);
    if (olen <= 0 || static_cast<size_t>(olen) >= sizeof oid) Fail(kErrExt, "unreadable extension OID");
    std::string s(oid);
    if (s.compare(0, prefix.size(), prefix) != 0) continue;  // standard extensions: not ours to judge
    auto it = s.compare(0, amd.size(), amd) == 0 ? AmdExtensions().find(s.substr(amd.size())) : AmdExtensions().end();
    if (it == AmdExtensions().end()) Fail(kErrExt, "unknown AMD extension " + s);
    if (seen[it->second]) Fail(kErrExt, "duplicate AMD extension " + s);
    seen[it->second] = true;
    const ASN1_OCTET_STRING* data = X509_EXTENSION_get_data(ext);
    const uint8_t* p = ASN1_STRING_get0_data(data);
    size_t n = static_cast<size_t>(ASN1_STRING_length(data));
    if (n == 0) Fail(kErrExt, "empty AMD extension " + s);
    switch (it->second) {
      case ExtId::kStructVersion: struct_version = DecodeSpl(p, n, "structVersion"); break;
      case ExtId::kProductName: product = DecodeIa5(p, n, "productName"); break;
      case ExtId::kBl: bl = DecodeSpl(p, n, "blSPL"); break;
      case ExtId::kTee: tee = DecodeSpl(p, n, "teeSPL"); break;
      case ExtId::kSnp: snp = DecodeSpl(p, n, "snpSPL"); break;
      case ExtId::kSpl4: v.spl.spl4 = DecodeSpl(p, n, "spl_4"); break;
      case ExtId::kSpl5: v.spl.spl5 = DecodeSpl(p, n, "spl_5"); break;
      case ExtId::kSpl6: v.spl.spl6 = DecodeSpl(p, n, "spl_6"); break;
      case ExtId::kSpl7: v.spl.spl7 = DecodeSpl(p, n, "spl_7"); break;
      case ExtId::kUcode: ucode = DecodeSpl(p, n, "ucodeSPL"); break;
      case ExtId::kFmc: v.spl.fmc = DecodeSpl(p, n, "fmcSPL"); break;
      case ExtId::kHwId: v.hw_id = DecodeHwId(p, n); break;
      case ExtId::kCspId: v.csp_id = DecodeIa5(p, n, "cspID"); break;
    }
  }
  if (!struct_version) Fail(kErrExt, "structVersion extension missing");
  if (*struct_version > 1) Fail(kErrExt, "structVersion " + std::to_string(*struct_version) + " is unknown");
  if (!product) Fail(kErrExt, "productName extension missing");
  if (!bl || !tee || !snp || !ucode) Fail(kErrExt, "a required SPL extension (bl/tee/snp/ucode) is missing");
  // structVersion 1 (Turin) adds fmcSPL; structVersion 0 (Milan/Genoa) has no FMC.
  if (*struct_version == 1 && !v.spl.fmc) Fail(kErrExt, "structVersion 1 without fmcSPL");
  if (*struct_version == 0 && v.spl.fmc) Fail(kErrExt, "structVersion 0 with fmcSPL");
  v.struct_version = *struct_version;
  v.product_name = *product;
  v.spl.bl = *bl;
  v.spl.tee = *tee;
  v.spl.snp = *snp;
  v.spl.ucode = *ucode;
  if (v.hw_id && !v.csp_id) {
    v.kind = VekKind::kVcek;
  } else if (v.csp_id && !v.hw_id) {
    v.kind = VekKind::kVlek;
  } else {
    Fail(kErrExt, v.hw_id ? "certificate has both hwID and cspID" : "certificate has neither hwID nor cspID");
  }
  const std::string& cn = v.cert.subject_cn;
  if (cn != "SEV-VCEK" && cn != "SEV-VLEK") Fail(kErrCertDn, "leaf subject CN '" + cn + "' is neither SEV-VCEK nor SEV-VLEK");
  if ((cn == "SEV-VCEK") != (v.kind == VekKind::kVcek)) {
    Fail(kErrSignerKind, "leaf CN '" + cn + "' contradicts its extensions (" + (v.hw_id ? "hwID" : "cspID") + ")");
  }
  return v;
}

// LooksLikePem tells PEM from DER input (leading white space allowed), for certificates and CRLs.
bool LooksLikePem(const uint8_t* p, size_t n) {
  size_t i = 0;
  while (i < n && std::isspace(p[i])) i++;
  static const char kBegin[] = "-----BEGIN ";
  return n - i >= sizeof kBegin - 1 && std::memcmp(p + i, kBegin, sizeof kBegin - 1) == 0;
}

}  // namespace tas
