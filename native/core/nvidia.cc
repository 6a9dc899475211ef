#include "nvidia.h"

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/ocsp.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "errors.h"

namespace tas {
namespace {

struct SkX509Free {
  void operator()(STACK_OF(X509) * s) const { sk_X509_free(s); }
};
using SkX509Ptr = std::unique_ptr<STACK_OF(X509), SkX509Free>;
struct Asn1ObjFree {
  void operator()(ASN1_OBJECT* o) const { ASN1_OBJECT_free(o); }
};
struct EcdsaSigFree {
  void operator()(ECDSA_SIG* s) const { ECDSA_SIG_free(s); }
};
struct OcspRespFree {
  void operator()(OCSP_RESPONSE* r) const { OCSP_RESPONSE_free(r); }
};
struct OcspBasicFree {
  void operator()(OCSP_BASICRESP* r) const { OCSP_BASICRESP_free(r); }
};
struct OcspIdFree {
  void operator()(OCSP_CERTID* r) const { OCSP_CERTID_free(r); }
};

constexpr const char* kOidFwidHopper = "2.23.133.5.4.1";
constexpr const char* kOidFwidBlackwell = "2.23.133.5.4.1.1";
constexpr const char* kOidSha384 = "2.16.840.1.101.3.4.2.2";

bool IsSpace(uint8_t c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

// Tlv is one DER element read with OpenSSL's own decoder (ASN1_get_object).
struct Tlv {
  int tag = 0, cls = 0;
  bool constructed = false;
  const uint8_t* body = nullptr;
  size_t len = 0;
};

Tlv ReadTlv(const uint8_t** p, size_t* left, const char* what) {
  Tlv t;
  const uint8_t* q = *p;
  long len = 0;
  int ret = ASN1_get_object(&q, &len, &t.tag, &t.cls, static_cast<long>(*left));
  if (ret & 0x80) {
    ERR_clear_error();
    Fail(kErrGpuFwid, std::string(what) + ": not DER");
  }
  if (ret & 0x01) Fail(kErrGpuFwid, std::string(what) + ": indefinite length");
  t.constructed = (ret & V_ASN1_CONSTRUCTED) != 0;
  size_t hdr = static_cast<size_t>(q - *p);
  if (len < 0 || static_cast<size_t>(len) > *left - hdr) Fail(kErrGpuFwid, std::string(what) + ": length exceeds its container");
  t.body = q;
  t.len = static_cast<size_t>(len);
  *p = q + len;
  *left -= hdr + t.len;
  return t;
}

Bytes ExtValue(const X509* cert, const char* oid, bool* found) {
  std::unique_ptr<ASN1_OBJECT, Asn1ObjFree> obj(OBJ_txt2obj(oid, 1));
  if (!obj) Fail(kErrInternal, "OBJ_txt2obj failed");
  int idx = X509_get_ext_by_OBJ(cert, obj.get(), -1);
  *found = idx >= 0;
  if (idx < 0) return {};
  if (X509_get_ext_by_OBJ(cert, obj.get(), idx) >= 0) Fail(kErrGpuFwid, std::string("extension ") + oid + " appears twice");
  const ASN1_OCTET_STRING* d = X509_EXTENSION_get_data(X509_get_ext(cert, idx));
  return Bytes(ASN1_STRING_get0_data(d), ASN1_STRING_get0_data(d) + ASN1_STRING_length(d));
}

std::string Dec(const ASN1_INTEGER* serial) {
  BnPtr bn(ASN1_INTEGER_to_BN(serial, nullptr));
  if (!bn) Fail(kErrGpuCert, "serial number: " + LastOpensslError());
  char* s = BN_bn2dec(bn.get());
  if (s == nullptr) Fail(kErrInternal, "BN_bn2dec failed");
  std::string out(s);
  OPENSSL_free(s);
  return out;
}

bool IsP384(EVP_PKEY* key) {
  if (key == nullptr || EVP_PKEY_get_base_id(key) != EVP_PKEY_EC) return false;
  char group[64] = {0};
  size_t glen = 0;
  return EVP_PKEY_get_group_name(key, group, sizeof group, &glen) == 1 && std::strcmp(group, "secp384r1") == 0;
}

// VerifyRawEcdsaP384 checks a raw big-endian r‖s signature (96 bytes) over SHA-384 of data.
bool VerifyRawEcdsaP384(EVP_PKEY* key, const uint8_t* data, size_t n, const uint8_t* rs, std::string* why) {
  std::unique_ptr<ECDSA_SIG, EcdsaSigFree> sig(ECDSA_SIG_new());
  BIGNUM* r = BN_bin2bn(rs, 48, nullptr);
  BIGNUM* s = BN_bin2bn(rs + 48, 48, nullptr);
  if (!sig || !r || !s || ECDSA_SIG_set0(sig.get(), r, s) != 1) {
    BN_free(r);
    BN_free(s);
    Fail(kErrInternal, "ECDSA_SIG allocation failed");
  }
  unsigned char* der = nullptr;
  int dlen = i2d_ECDSA_SIG(sig.get(), &der);
  if (dlen <= 0) Fail(kErrInternal, "i2d_ECDSA_SIG failed");
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  bool ok = ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha384(), nullptr, key) == 1 &&
            EVP_DigestVerify(ctx.get(), der, static_cast<size_t>(dlen), data, n) == 1;
  OPENSSL_free(der);
  if (!ok) *why = "ECDSA P-384 signature over request ‖ response does not verify with the device certificate key";
  ERR_clear_error();
  return ok;
}

}  // namespace

std::vector<X509Ptr> ParseChainPem(const uint8_t* p, size_t n) {
  if (p == nullptr || n == 0) Fail(kErrGpuCert, "certificate chain is empty");
  if (n > kGpuMaxChainPem) Fail(kErrGpuCert, "certificate chain is larger than " + std::to_string(kGpuMaxChainPem) + " bytes");
  static const char kBegin[] = "-----BEGIN CERTIFICATE-----";
  static const char kEnd[] = "-----END CERTIFICATE-----";
  const std::string s(reinterpret_cast<const char*>(p), n);
  std::vector<X509Ptr> out;
  size_t pos = 0;
  while (true) {
    size_t b = s.find(kBegin, pos);
    size_t gap_end = b == std::string::npos ? n : b;
    for (size_t i = pos; i < gap_end; i++) {
      if (!IsSpace(p[i])) Fail(kErrGpuCert, "certificate chain has text outside its PEM blocks");
    }
    if (b == std::string::npos) break;
    size_t e = s.find(kEnd, b);
    if (e == std::string::npos) Fail(kErrGpuCert, "unterminated PEM block");
    e += sizeof kEnd - 1;
    if (out.size() == kGpuMaxChainCerts) Fail(kErrGpuCert, "more than " + std::to_string(kGpuMaxChainCerts) + " certificates");
    try {
      out.push_back(ParseCert(p + b, e - b));
    } catch (const SnpError& err) {
      Fail(kErrGpuCert, "certificate " + std::to_string(out.size()) + ": " + err.detail());
    }
    pos = e;
  }
  if (out.empty()) Fail(kErrGpuCert, "no certificate in the chain");
  return out;
}

Bytes DiceTcbInfoFwid(const uint8_t* p, size_t n) {
  size_t left = n;
  Tlv seq = ReadTlv(&p, &left, "DiceTcbInfo");
  if (left != 0) Fail(kErrGpuFwid, "DiceTcbInfo: bytes after the SEQUENCE");
  if (seq.cls != V_ASN1_UNIVERSAL || seq.tag != V_ASN1_SEQUENCE || !seq.constructed) Fail(kErrGpuFwid, "DiceTcbInfo is not a SEQUENCE");
  const uint8_t* q = seq.body;
  size_t ql = seq.len;
  int last = -1;
  Bytes digest;
  while (ql > 0) {
    Tlv f = ReadTlv(&q, &ql, "DiceTcbInfo field");
    if (f.cls != V_ASN1_CONTEXT_SPECIFIC) Fail(kErrGpuFwid, "DiceTcbInfo field is not context-tagged");
    if (f.tag <= last) Fail(kErrGpuFwid, "DiceTcbInfo fields out of order or repeated");
    last = f.tag;
    if (f.tag != 6) continue;
    // fwids [6] IMPLICIT SEQUENCE OF FWID; FWID ::= SEQUENCE { hashAlg OID, digest OCTET STRING }
    if (!f.constructed) Fail(kErrGpuFwid, "DiceTcbInfo fwids is not constructed");
    const uint8_t* l = f.body;
    size_t ll = f.len;
    if (ll == 0) Fail(kErrGpuFwid, "DiceTcbInfo fwids is empty");
    bool first = true;
    while (ll > 0) {
      Tlv fw = ReadTlv(&l, &ll, "FWID");
      if (fw.cls != V_ASN1_UNIVERSAL || fw.tag != V_ASN1_SEQUENCE || !fw.constructed) Fail(kErrGpuFwid, "FWID is not a SEQUENCE");
      const uint8_t* w = fw.body;
      size_t wl = fw.len;
      Tlv alg = ReadTlv(&w, &wl, "FWID hashAlg");
      Tlv dig = ReadTlv(&w, &wl, "FWID digest");
      if (wl != 0) Fail(kErrGpuFwid, "FWID has extra fields");
      if (alg.cls != V_ASN1_UNIVERSAL || alg.tag != V_ASN1_OBJECT || alg.constructed) Fail(kErrGpuFwid, "FWID hashAlg is not an OID");
      if (dig.cls != V_ASN1_UNIVERSAL || dig.tag != V_ASN1_OCTET_STRING || dig.constructed) Fail(kErrGpuFwid, "FWID digest is not an OCTET STRING");
      if (first) {
        // SHA-384 is 2.16.840.1.101.3.4.2.2, DER body 60 86 48 01 65 03 04 02 02.
        static const uint8_t kSha384Oid[] = {0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02};
        if (alg.len != sizeof kSha384Oid || std::memcmp(alg.body, kSha384Oid, sizeof kSha384Oid) != 0) {
          Fail(kErrGpuFwid, "fwids[0] hashAlg is " + Hex(alg.body, alg.len) + ", expected SHA-384 (" + kOidSha384 + ")");
        }
        if (dig.len != 48) Fail(kErrGpuFwid, "fwids[0] digest is " + std::to_string(dig.len) + " bytes, expected 48");
        digest.assign(dig.body, dig.body + dig.len);
        first = false;
      }
    }
  }
  if (digest.empty()) Fail(kErrGpuFwid, "DiceTcbInfo has no fwids");
  return digest;
}

bool CertFwid(const X509* cert, Bytes* fwid, std::string* source) {
  bool found = false;
  Bytes v = ExtValue(cert, kOidFwidBlackwell, &found);
  if (found) {
    *fwid = DiceTcbInfoFwid(v.data(), v.size());
    *source = kOidFwidBlackwell;
    return true;
  }
  v = ExtValue(cert, kOidFwidHopper, &found);
  if (!found) return false;
  // Hopper: a DER SEQUENCE whose last 48 bytes are the FWID (NVIDIA's layout); the whole value
  // must still be one well-formed element.
  const uint8_t* p = v.data();
  size_t left = v.size();
  Tlv t = ReadTlv(&p, &left, "FWID extension");
  if (left != 0 || t.cls != V_ASN1_UNIVERSAL || t.tag != V_ASN1_SEQUENCE) Fail(kErrGpuFwid, "FWID extension is not one SEQUENCE");
  if (v.size() < 48 + 2) Fail(kErrGpuFwid, "FWID extension is shorter than 48 bytes");
  fwid->assign(v.end() - 48, v.end());
  *source = kOidFwidHopper;
  return true;
}

namespace {

std::string GpuCacheKey(const GpuDeviceInput& in) {
  std::vector<Sha256> anchors;
  for (const auto& a : in.anchors) anchors.push_back(Sha256Of(a.data(), a.size()));
  std::sort(anchors.begin(), anchors.end());
  std::string k = "gpu/";
  for (const auto& a : anchors) k.append(reinterpret_cast<const char*>(a.data()), a.size());
  Sha256 c = Sha256Of(in.chain.data(), in.chain.size());
  k.append(reinterpret_cast<const char*>(c.data()), c.size());
  return k;
}

bool InsideWindows(const GpuChainEntry& e, int64_t at) {
  for (const auto& w : e.windows) {
    if (at < w.first || at > w.second) return false;
  }
  return true;
}

// VerifyDeviceChain parses the chain and verifies it to the anchors at `at`. The entry is
// returned whether or not the chain verified; `ok` says which.
std::shared_ptr<GpuChainEntry> VerifyDeviceChain(const GpuDeviceInput& in, bool* ok) {
  auto e = std::make_shared<GpuChainEntry>();
  std::vector<X509Ptr> chain = ParseChainPem(in.chain.data(), in.chain.size());
  for (const auto& c : chain) {
    try {
      e->certs.push_back(GetCertInfo(c.get()));
    } catch (const SnpError& err) {
      Fail(kErrGpuCert, err.detail());
    }
  }
  X509* leaf = chain[0].get();
  e->leaf_serial_dec = Dec(X509_get0_serialNumber(leaf));
  e->hwmodel = e->certs[0].issuer_cn;
  e->has_fwid = CertFwid(leaf, &e->cert_fwid, &e->fwid_source);

  // Leaf ← intermediates (as sent, untrusted) ← pinned root, at the caller's time.
  std::vector<X509Ptr> anchors;
  for (const auto& a : in.anchors) {
    try {
      anchors.push_back(ParseCert(a.data(), a.size()));
    } catch (const SnpError& err) {
      Fail(kErrArgument, "NVIDIA root: " + err.detail());
    }
  }
  X509StorePtr store(X509_STORE_new());
  X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  SkX509Ptr untrusted(sk_X509_new_null());
  if (!store || !ctx || !untrusted) Fail(kErrInternal, "out of memory");
  for (auto& a : anchors) {
    if (X509_STORE_add_cert(store.get(), a.get()) != 1) ERR_clear_error();
  }
  for (size_t i = 1; i < chain.size(); i++) {
    if (sk_X509_push(untrusted.get(), chain[i].get()) <= 0) Fail(kErrInternal, "sk_X509_push failed");
  }
  if (X509_STORE_CTX_init(ctx.get(), store.get(), leaf, untrusted.get()) != 1) Fail(kErrInternal, "X509_STORE_CTX_init: " + LastOpensslError());
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  X509_VERIFY_PARAM_set_time(param, static_cast<time_t>(in.at));
  X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_CHECK_SS_SIGNATURE);
  X509_VERIFY_PARAM_set_depth(param, static_cast<int>(kGpuMaxChainCerts));
  if (X509_verify_cert(ctx.get()) == 1) {
    *ok = true;
    e->detail = std::to_string(chain.size()) + " certificates to the pinned NVIDIA Device Identity root";
    // The window of every certificate of the verified path (the anchor included), so that a
    // cached verdict is only reused at a time at which X509_verify_cert would accept it too.
    STACK_OF(X509)* path = X509_STORE_CTX_get0_chain(ctx.get());
    for (int i = 0; path != nullptr && i < sk_X509_num(path); i++) {
      CertInfo ci = GetCertInfo(sk_X509_value(path, i));
      e->windows.emplace_back(ci.not_before, ci.not_after);
    }
    for (const auto& c : e->certs) e->windows.emplace_back(c.not_before, c.not_after);
  } else {
    *ok = false;
    int err = X509_STORE_CTX_get_error(ctx.get());
    int depth = X509_STORE_CTX_get_error_depth(ctx.get());
    e->detail = "depth " + std::to_string(depth) + ": " + X509_verify_cert_error_string(err);
  }
  ERR_clear_error();
  e->leaf = std::move(chain[0]);
  return e;
}

}  // namespace

GpuDeviceResult VerifyGpuDevice(const GpuDeviceInput& in, GpuChainCache* cache) {
  if (in.anchors.empty() || in.anchors.size() > kGpuMaxAnchors) Fail(kErrArgument, "1..8 NVIDIA roots required");
  GpuDeviceResult res;
  res.spdm = ParseSpdm(in.evidence.data(), in.evidence.size());

  // 1. Chain (cached: the signatures of a chain do not change; its windows are checked again).
  std::shared_ptr<const GpuChainEntry> entry;
  std::string key = cache ? GpuCacheKey(in) : std::string();
  if (cache) {
    auto hit = cache->Get(key);
    if (hit && InsideWindows(*hit, in.at)) {
      entry = hit;
      res.chain_ok = true;
      res.chain_cached = true;
    }
  }
  if (!entry) {
    bool ok = false;
    std::shared_ptr<GpuChainEntry> fresh = VerifyDeviceChain(in, &ok);
    res.chain_ok = ok;
    if (ok && cache) cache->Put(key, fresh);
    entry = fresh;
  }
  res.certs = entry->certs;
  res.leaf_serial_dec = entry->leaf_serial_dec;
  res.hwmodel = entry->hwmodel;
  res.checks.push_back({"chain", res.chain_ok, entry->detail});
  X509* leaf = entry->leaf.get();

  // 2. SPDM signature with the leaf key, over request ‖ response up to the signature.
  EVP_PKEY* key_ = X509_get0_pubkey(leaf);
  std::string why;
  if (!IsP384(key_)) {
    res.checks.push_back({"signature", false, "device certificate key is not EC P-384"});
  } else if (VerifyRawEcdsaP384(key_, in.evidence.data(), res.spdm.signed_len, res.spdm.signature.data(), &why)) {
    res.signature_ok = true;
    res.checks.push_back({"signature", true, "ECDSA P-384 over request ‖ response (" + std::to_string(res.spdm.signed_len) + " bytes)"});
  } else {
    res.checks.push_back({"signature", false, why});
  }

  // 3. FWID: certificate extension vs the signed opaque field.
  if (entry->has_fwid) {
    res.cert_fwid = entry->cert_fwid;
    res.fwid_source = entry->fwid_source;
  }
  if (!entry->has_fwid) {
    res.checks.push_back({"fwid", false, "device certificate has no FWID extension (2.23.133.5.4.1 or 2.23.133.5.4.1.1)"});
  } else if (res.spdm.fwid.empty()) {
    // Drivers before the FWID opaque field (e.g. 535.x) sign no FWID; NVIDIA's verifiers (SDK,
    // nvtrust, NRAS) then report a match, and so do we: the signature still binds the report to
    // this device certificate. The detail says so.
    res.fwid_ok = true;
    res.checks.push_back({"fwid", true, "the response carries no FWID opaque field (older driver); nothing to compare"});
  } else if (CRYPTO_memcmp(res.spdm.fwid.data(), res.cert_fwid.data(), 48) != 0) {
    res.checks.push_back({"fwid", false, "FWID of the device certificate (" + res.fwid_source + ") differs from the signed FWID opaque field"});
  } else {
    res.fwid_ok = true;
    res.checks.push_back({"fwid", true, "certificate " + res.fwid_source + " equals the signed FWID"});
  }
  return res;
}

OcspResult VerifyOcsp(const OcspInput& in) {
  if (in.response.empty() || in.response.size() > kMaxOcspSize) Fail(kErrGpuOcsp, "OCSP response is empty or larger than 16 KiB");
  if (in.anchors.empty() || in.anchors.size() > kGpuMaxAnchors || in.untrusted.size() > kGpuMaxChainCerts) Fail(kErrArgument, "1..8 roots, at most 8 intermediates");
  const uint8_t* q = in.response.data();
  std::unique_ptr<OCSP_RESPONSE, OcspRespFree> resp(d2i_OCSP_RESPONSE(nullptr, &q, static_cast<long>(in.response.size())));
  if (!resp) {
    ERR_clear_error();
    Fail(kErrGpuOcsp, "not a DER OCSPResponse");
  }
  if (q != in.response.data() + in.response.size()) Fail(kErrGpuOcsp, "bytes after the OCSPResponse");
  int rs = OCSP_response_status(resp.get());
  if (rs != OCSP_RESPONSE_STATUS_SUCCESSFUL) Fail(kErrGpuOcsp, std::string("responder answered ") + OCSP_response_status_str(rs));
  std::unique_ptr<OCSP_BASICRESP, OcspBasicFree> bs(OCSP_response_get1_basic(resp.get()));
  if (!bs) {
    ERR_clear_error();
    Fail(kErrGpuOcsp, "not a BasicOCSPResponse");
  }
  X509Ptr cert, issuer;
  try {
    cert = ParseCert(in.cert.data(), in.cert.size());
    issuer = ParseCert(in.issuer.data(), in.issuer.size());
  } catch (const SnpError& e) {
    Fail(kErrArgument, "OCSP subject/issuer: " + e.detail());
  }
  std::vector<X509Ptr> keep;
  X509StorePtr store(X509_STORE_new());
  SkX509Ptr untrusted(sk_X509_new_null());
  if (!store || !untrusted) Fail(kErrInternal, "out of memory");
  for (const auto& a : in.anchors) {
    keep.push_back(ParseCert(a.data(), a.size()));
    if (X509_STORE_add_cert(store.get(), keep.back().get()) != 1) ERR_clear_error();
  }
  for (const auto& u : in.untrusted) {
    keep.push_back(ParseCert(u.data(), u.size()));
    if (sk_X509_push(untrusted.get(), keep.back().get()) <= 0) Fail(kErrInternal, "sk_X509_push failed");
  }
  if (sk_X509_push(untrusted.get(), issuer.get()) <= 0) Fail(kErrInternal, "sk_X509_push failed");
  X509_VERIFY_PARAM_set_time(X509_STORE_get0_param(store.get()), static_cast<time_t>(in.at));
  // Signer: in the response's certs or the untrusted set; chained to a pinned root at `at`, and
  // authorised for OCSP (the issuer itself, or delegated by it with id-kp-OCSPSigning).
  if (OCSP_basic_verify(bs.get(), untrusted.get(), store.get(), 0) != 1) {
    std::string e = LastOpensslError();
    Fail(kErrGpuOcsp, "OCSP response signature or responder chain does not verify: " + e);
  }
  ERR_clear_error();
  OcspResult out;
  int status = -1, reason = -1;
  ASN1_GENERALIZEDTIME *rev = nullptr, *thisupd = nullptr, *nextupd = nullptr;
  bool found = false;
  for (const EVP_MD* md : {EVP_sha1(), EVP_sha256(), EVP_sha384()}) {
    std::unique_ptr<OCSP_CERTID, OcspIdFree> id(OCSP_cert_to_id(md, cert.get(), issuer.get()));
    if (!id) Fail(kErrInternal, "OCSP_cert_to_id failed");
    if (OCSP_resp_find_status(bs.get(), id.get(), &status, &reason, &rev, &thisupd, &nextupd) == 1) {
      found = true;
      break;
    }
  }
  ERR_clear_error();
  if (!found) Fail(kErrGpuOcsp, "the response has no status for this certificate");
  if (nextupd == nullptr) Fail(kErrGpuOcsp, "the response has no nextUpdate (cannot be cached or judged fresh)");
  out.this_update = Asn1TimeToEpoch(thisupd, kErrGpuOcsp);
  out.next_update = Asn1TimeToEpoch(nextupd, kErrGpuOcsp);
  out.produced_at = Asn1TimeToEpoch(OCSP_resp_get0_produced_at(bs.get()), kErrGpuOcsp);
  if (out.this_update > in.at + in.skew) Fail(kErrGpuOcsp, "thisUpdate is in the future");
  if (out.next_update + in.skew < in.at) Fail(kErrGpuOcsp, "the response is stale (after nextUpdate)");
  if (out.next_update < out.this_update) Fail(kErrGpuOcsp, "nextUpdate before thisUpdate");
  switch (status) {
    case V_OCSP_CERTSTATUS_GOOD: out.status = "good"; break;
    case V_OCSP_CERTSTATUS_REVOKED:
      out.status = "revoked";
      out.revocation_reason = reason;
      if (rev) out.revoked_at = Asn1TimeToEpoch(rev, kErrGpuOcsp);
      break;
    default: out.status = "unknown"; break;
  }
  return out;
}

Bytes BuildOcspRequest(const uint8_t* cert, size_t cert_len, const uint8_t* issuer, size_t issuer_len) {
  X509Ptr c = ParseCert(cert, cert_len);
  X509Ptr i = ParseCert(issuer, issuer_len);
  struct ReqFree {
    void operator()(OCSP_REQUEST* r) const { OCSP_REQUEST_free(r); }
  };
  std::unique_ptr<OCSP_REQUEST, ReqFree> req(OCSP_REQUEST_new());
  OCSP_CERTID* id = OCSP_cert_to_id(EVP_sha1(), c.get(), i.get());
  if (!req || !id) Fail(kErrInternal, "OCSP request allocation failed");
  if (OCSP_request_add0_id(req.get(), id) == nullptr) {
    OCSP_CERTID_free(id);
    Fail(kErrInternal, "OCSP_request_add0_id failed");
  }
  unsigned char* der = nullptr;
  int n = i2d_OCSP_REQUEST(req.get(), &der);
  if (n <= 0) Fail(kErrInternal, "i2d_OCSP_REQUEST failed");
  Bytes out(der, der + n);
  OPENSSL_free(der);
  return out;
}

}  // namespace tas
