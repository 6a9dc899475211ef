#include "tdx_verify.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include <algorithm>

#include "crl.h"
#include "errors.h"

namespace tas {
namespace {

const CrlRules kRootCrlRules = {CrlRules::Scheme::kEcdsaSha256, kTdxCrlParse, kTdxCrlSignature, kTdxCrlStale, "the Intel SGX Root CA"};
const CrlRules kPckCrlRules = {CrlRules::Scheme::kEcdsaSha256, kTdxCrlParse, kTdxCrlSignature, kTdxCrlStale, "the PCK CA that issued the PCK certificate"};

constexpr const char* kRootCn = "Intel SGX Root CA";
constexpr const char* kPlatformCaCn = "Intel SGX PCK Platform CA";
constexpr const char* kProcessorCaCn = "Intel SGX PCK Processor CA";
constexpr const char* kPckCn = "Intel SGX PCK Certificate";
constexpr const char* kTcbSigningCn = "Intel SGX TCB Signing";

// Recode runs f and gives shared-helper failures (SNP_ERR_CERT_PARSE, ...) a TDX code.
template <typename F>
auto Recode(const char* code, F f) -> decltype(f()) {
  try {
    return f();
  } catch (const SnpError& e) {
    if (e.code() == kErrInternal) throw;
    Fail(code, e.detail());
  }
}

X509Ptr Cert(const Bytes& b, const std::string& what) {
  return Recode(kTdxCertParse, [&] {
    try {
      return ParseCert(b.data(), b.size());
    } catch (const SnpError& e) {
      if (e.code() == kErrInternal) throw;
      Fail(kTdxCertParse, what + ": " + e.detail());
    }
  });
}

CertSummary Summary(const X509* x) {
  CertInfo ci = Recode(kTdxCertParse, [&] { return GetCertInfo(x); });
  CertSummary s;
  s.subject_cn = ci.subject_cn;
  s.issuer_cn = ci.issuer_cn;
  s.serial_hex = ci.serial_hex;
  s.not_before = ci.not_before;
  s.not_after = ci.not_after;
  s.sha256 = ci.sha256;
  s.spki_sha256 = ci.spki_sha256;
  return s;
}

void CheckWindow(const CertSummary& c, int64_t at, const std::string& what) {
  if (at < c.not_before) Fail(kTdxCertExpired, what + " certificate is not yet valid");
  if (at > c.not_after) Fail(kTdxCertExpired, what + " certificate has expired");
}

void CheckCrlWindow(const CrlEntry& c, int64_t at, int64_t skew, const std::string& what) {
  if (c.this_update > at + skew) Fail(kTdxCrlStale, what + " thisUpdate is in the future");
  if (at - skew >= c.next_update) Fail(kTdxCrlStale, what + " is past its nextUpdate");
}

// Cache keys are the exact input bytes, length-prefixed (no digest to compute, and a hit means
// byte equality: the map compares whole keys). Only verified inputs ever become entries, so the
// caches cannot be filled with junk; BoundedCache bounds their number.
void AppendExact(std::string& k, const uint8_t* p, size_t n) {
  const uint64_t len = n;
  k.append(reinterpret_cast<const char*>(&len), sizeof len);
  k.append(reinterpret_cast<const char*>(p), n);
}

std::string ExactKey(const char* tag, std::initializer_list<const Bytes*> parts) {
  std::string k(tag);
  size_t total = k.size();
  for (const Bytes* b : parts) total += 8 + b->size();
  k.reserve(total);
  for (const Bytes* b : parts) AppendExact(k, b->data(), b->size());
  return k;
}

std::string AnchorsKey(const std::vector<Bytes>& anchors) {
  std::string k;
  for (const auto& a : anchors) AppendExact(k, a.data(), a.size());
  return k;
}

void CheckAnchors(const std::vector<Bytes>& anchors) {
  if (anchors.empty() || anchors.size() > kMaxTdxAnchors) Fail(kTdxArgument, "1..8 trust roots required");
}

// Anchors parses the trust roots and returns them with their DER (for byte-equal pinning).
struct ParsedAnchors {
  std::vector<X509Ptr> certs;
  std::vector<Bytes> der;
  std::vector<X509*> Ptrs() const {
    std::vector<X509*> v;
    for (const auto& c : certs) v.push_back(c.get());
    return v;
  }
};

ParsedAnchors ParseAnchors(const std::vector<Bytes>& anchors) {
  CheckAnchors(anchors);
  ParsedAnchors out;
  for (const auto& a : anchors) {
    X509Ptr x = Recode(kTdxArgument, [&] { return ParseCert(a.data(), a.size()); });
    out.der.push_back(CertDer(x.get()));
    out.certs.push_back(std::move(x));
  }
  return out;
}

// PinnedRootOf requires the chain's last certificate to be byte-equal to one anchor (Intel's QVL
// compares the root; TDX.md §3 V2) and returns that anchor.
X509* PinnedRootOf(const X509* root, const ParsedAnchors& anchors, const std::string& what) {
  Bytes der = CertDer(root);
  for (size_t i = 0; i < anchors.der.size(); i++) {
    if (anchors.der[i] == der) return anchors.certs[i].get();
  }
  Fail(kTdxRootNotPinned, what + ": the root certificate is not a pinned Intel SGX Root CA");
}

void RequireEcdsaSha256(const X509* x, const char* code, const std::string& what) {
  if (X509_get_signature_nid(x) != NID_ecdsa_with_SHA256) Fail(code, what + " is not signed with ecdsa-with-SHA256");
}

void RequireCa(X509* x, bool ca, const char* code, const std::string& what) {
  uint32_t flags = X509_get_extension_flags(x);
  if (X509_get_version(x) != X509_VERSION_3) Fail(code, what + " is not an X.509 v3 certificate");
  if (ca) {
    if (!(flags & EXFLAG_CA) || !(flags & EXFLAG_KUSAGE) || !(X509_get_key_usage(x) & KU_KEY_CERT_SIGN)) {
      Fail(code, what + " lacks CA:TRUE or keyUsage certSign");
    }
  } else if (flags & EXFLAG_CA) {
    Fail(code, what + " is a CA certificate");
  }
}

std::shared_ptr<const CrlEntry> CheckedCrl(const Bytes& crl_bytes, const Bytes& issuer_der, const Sha256& issuer_sha, int64_t at, int64_t skew,
                                           const CrlRules& rules, const std::string& what, TdxCaches* caches) {
  std::string key = caches ? ExactKey("crl", {&crl_bytes}) + std::string(reinterpret_cast<const char*>(issuer_sha.data()), issuer_sha.size()) : std::string();
  if (caches) {
    if (auto hit = caches->crl.Get(key)) {
      CheckCrlWindow(*hit, at, skew, what);
      return hit;
    }
  }
  X509CrlPtr crl = ParseCrl(crl_bytes.data(), crl_bytes.size(), rules.parse_code);
  X509Ptr issuer = ParseCert(issuer_der.data(), issuer_der.size());
  CrlResult r = CheckCrlWith(crl.get(), issuer.get(), at, skew, {}, rules);
  auto e = std::make_shared<CrlEntry>();
  e->this_update = r.this_update;
  e->next_update = r.next_update;
  for (auto& s : RevokedSerials(crl.get(), rules.parse_code)) e->revoked.insert(std::move(s));
  if (caches) caches->crl.Put(key, e);
  return e;
}

void NotRevoked(const CrlEntry& crl, const CertSummary& c, const std::string& what) {
  if (crl.revoked.count(c.serial_hex)) Fail(kTdxRevoked, what + " (serial " + c.serial_hex + ") is revoked");
}

std::shared_ptr<const PckEntry> VerifiedPck(const uint8_t* chain, size_t chain_len, const std::vector<Bytes>& anchors_in,
                                            const std::string& anchors_key, int64_t at, TdxCaches* caches, bool* cached, std::string* chain_key) {
  std::string key;
  if (caches) {
    key = "pck" + anchors_key;
    AppendExact(key, chain, chain_len);
    *chain_key = key;
    if (auto hit = caches->pck.Get(key)) {
      CheckWindow(hit->leaf, at, "PCK");
      CheckWindow(hit->ca, at, "PCK CA");
      CheckWindow(hit->root, at, "root CA");
      *cached = true;
      return hit;
    }
  }
  *cached = false;
  std::vector<Bytes> pems = SplitPemChain(chain, chain_len, 3, kTdxCertData);
  X509Ptr leaf = Cert(pems[0], "PCK certificate");
  X509Ptr ca = Cert(pems[1], "PCK CA certificate");
  X509Ptr root = Cert(pems[2], "root CA certificate");
  ParsedAnchors anchors = ParseAnchors(anchors_in);
  X509* pinned = PinnedRootOf(root.get(), anchors, "PCK chain");
  std::vector<X509Ptr> path = VerifyPath(anchors.Ptrs(), {ca.get()}, leaf.get(), at, 2, {kTdxChain, kTdxCertExpired});
  if (path.size() != 3 || X509_cmp(path[1].get(), ca.get()) != 0 || X509_cmp(path[2].get(), pinned) != 0) {
    Fail(kTdxChain, "PCK chain is not leaf -> given PCK CA -> the quote's (pinned) root");
  }
  auto e = std::make_shared<PckEntry>();
  e->leaf = Summary(leaf.get());
  e->ca = Summary(ca.get());
  e->root = Summary(pinned);
  if (e->root.subject_cn != kRootCn) Fail(kTdxCertShape, "root CN is '" + e->root.subject_cn + "', expected '" + kRootCn + "'");
  if (e->ca.subject_cn == kPlatformCaCn) {
    e->processor_ca = false;
  } else if (e->ca.subject_cn == kProcessorCaCn) {
    e->processor_ca = true;
  } else {
    Fail(kTdxCertShape, "PCK CA CN is '" + e->ca.subject_cn + "', expected a PCK Platform or Processor CA");
  }
  if (e->leaf.subject_cn != kPckCn) Fail(kTdxCertShape, "PCK leaf CN is '" + e->leaf.subject_cn + "', expected '" + kPckCn + "'");
  RequireEcdsaSha256(leaf.get(), kTdxCertShape, "PCK certificate");
  RequireEcdsaSha256(ca.get(), kTdxCertShape, "PCK CA certificate");
  RequireEcdsaSha256(pinned, kTdxCertShape, "root CA certificate");
  RequireCa(leaf.get(), false, kTdxCertShape, "PCK certificate");
  RequireCa(ca.get(), true, kTdxCertShape, "PCK CA certificate");
  RequireCa(pinned, true, kTdxCertShape, "root CA certificate");
  e->leaf_key = PrepareEcKey(X509_get0_pubkey(leaf.get()), NID_X9_62_prime256v1, kTdxCertShape);
  e->sgx = SgxExtensionOf(leaf.get(), kTdxSgxExt);
  e->ca_der = CertDer(ca.get());
  e->root_der = CertDer(pinned);
  ERR_clear_error();
  if (caches) caches->pck.Put(key, e);
  return e;
}

}  // namespace

std::shared_ptr<const SignedJsonEntry> VerifyPcsJson(const PcsSignedJson& j, PcsJsonKind kind, const std::vector<Bytes>& anchors_in,
                                                     const CrlEntry* root_crl, int64_t at, TdxCaches* caches, const std::string* anchors_key) {
  const bool tcb = kind == PcsJsonKind::kTcbInfo;
  const std::string what = tcb ? "tcbInfo" : "enclaveIdentity";
  const char* sig_code = tcb ? kTdxTcbInfoSignature : kTdxQeIdentitySignature;
  CheckAnchors(anchors_in);
  if (j.body.empty() || j.body.size() > kMaxPcsJson) Fail(kTdxArgument, what + " body must be 1..256 KiB");
  if (j.signature.size() != 64) Fail(sig_code, what + " signature is not 64 bytes (r ‖ s)");
  std::string key;
  std::shared_ptr<const SignedJsonEntry> entry;
  if (caches) {
    key = std::string(tcb ? "tcb" : "qei") + (anchors_key ? *anchors_key : AnchorsKey(anchors_in)) + ExactKey("", {&j.body, &j.signature, &j.chain});
    entry = caches->json.Get(key);
  }
  if (!entry) {
    std::vector<Bytes> pems = Recode(kTdxCollateralChain, [&] { return SplitPemChain(j.chain.data(), j.chain.size(), 2, kTdxCollateralChain); });
    X509Ptr signer, root;
    try {
      signer = ParseCert(pems[0].data(), pems[0].size());
      root = ParseCert(pems[1].data(), pems[1].size());
    } catch (const SnpError& e) {
      if (e.code() == kErrInternal) throw;
      Fail(kTdxCollateralChain, what + " issuer chain: " + e.detail());
    }
    ParsedAnchors anchors = ParseAnchors(anchors_in);
    X509* pinned = PinnedRootOf(root.get(), anchors, what + " issuer chain");
    std::vector<X509Ptr> path = VerifyPath(anchors.Ptrs(), {}, signer.get(), at, 1, {kTdxCollateralChain, kTdxCertExpired});
    if (path.size() != 2 || X509_cmp(path[1].get(), pinned) != 0) Fail(kTdxCollateralChain, what + " signer is not issued by the pinned root");
    auto e = std::make_shared<SignedJsonEntry>();
    e->signer = Summary(signer.get());
    e->root = Summary(pinned);
    if (e->signer.subject_cn != kTcbSigningCn) Fail(kTdxCollateralChain, what + " signer CN is '" + e->signer.subject_cn + "', expected '" + kTcbSigningCn + "'");
    RequireEcdsaSha256(signer.get(), kTdxCollateralChain, what + " signer");
    EcVerifyKey key_ec = Recode(kTdxCollateralChain, [&] { return PrepareEcKey(X509_get0_pubkey(signer.get()), NID_X9_62_prime256v1, kTdxCollateralChain); });
    // The signature is over the exact bytes received (TDX.md §7.2): never re-serialised JSON.
    if (!EcdsaP256Sha256Raw(key_ec, j.body.data(), j.body.size(), j.signature.data())) {
      Fail(sig_code, what + " signature does not verify over the received bytes with the TCB Signing key");
    }
    entry = e;
    if (caches) caches->json.Put(key, entry);
  } else {
    CheckWindow(entry->signer, at, what + " signer");
    CheckWindow(entry->root, at, what + " root");
  }
  if (root_crl != nullptr) NotRevoked(*root_crl, entry->signer, what + " signer (TCB Signing certificate)");
  return entry;
}

TdxVerifyOutcome VerifyTdxQuote(const TdxVerifyInput& in, TdxCaches* caches) {
  if (in.crl_skew < 0 || in.crl_skew > kMaxCrlSkew) Fail(kTdxArgument, "CRL skew must be 0..86400 seconds");
  CheckAnchors(in.anchors);
  TdxVerifyOutcome out;
  out.quote = ParseTdxQuote(in.quote.data(), in.quote.size());
  const TdxQuote& q = out.quote;
  const uint8_t* b = in.quote.data();
  out.checks.push_back({"quote_structure", true,
                        "v" + std::to_string(q.version) + ", TD report " + (q.body.is_td15 ? "1.5" : "1.0") + ", " + std::to_string(q.trailing) +
                            " zero padding bytes"});

  const std::string anchors_key = AnchorsKey(in.anchors);
  std::string chain_key;
  out.pck = VerifiedPck(b + q.pck_chain.offset, q.pck_chain.length, in.anchors, anchors_key, in.at, caches, &out.pck_cached, &chain_key);
  const PckEntry& pck = *out.pck;
  out.checks.push_back({"pck_chain", true, pck.leaf.subject_cn + " <- " + pck.ca.subject_cn + " <- pinned " + pck.root.subject_cn});

  const std::string pck_crl_name = std::string(pck.processor_ca ? "Processor" : "Platform") + " CA CRL";
  std::shared_ptr<const CrlEntry> root_crl;
  if (in.root_crl) {
    root_crl = CheckedCrl(*in.root_crl, pck.root_der, pck.root.sha256, in.at, in.crl_skew, kRootCrlRules, "root CA CRL", caches);
    NotRevoked(*root_crl, pck.ca, "PCK CA certificate");
    out.root_crl = CrlWindow{root_crl->this_update, root_crl->next_update};
  }
  if (in.pck_crl) {
    // The PCK CRL must come from the leaf's own issuer (ca=platform vs ca=processor, TDX.md §7.9).
    auto pck_crl = CheckedCrl(*in.pck_crl, pck.ca_der, pck.ca.sha256, in.at, in.crl_skew, kPckCrlRules, "PCK CRL", caches);
    NotRevoked(*pck_crl, pck.leaf, "PCK certificate");
    out.pck_crl = CrlWindow{pck_crl->this_update, pck_crl->next_update};
  }
  if (in.root_crl && in.pck_crl) {
    out.checks.push_back({"revocation", true, "root CA CRL and " + pck_crl_name + " current; nothing revoked"});
  } else {
    std::string skipped = !in.root_crl && !in.pck_crl ? "root CA CRL and " + pck_crl_name : !in.root_crl ? std::string("root CA CRL") : pck_crl_name;
    out.checks.push_back({"revocation", true, "NOT CHECKED against the " + skipped + " (none given: the caller's fail-open)"});
  }

  // QE report, its signature, the attestation key and the QE auth data are the same bytes in every
  // quote of a platform: once verified under this PCK chain they are cached by those exact bytes.
  std::string qe_key;
  std::shared_ptr<const QeEntry> qe;
  if (caches) {
    qe_key.reserve(chain_key.size() + 384 + 64 + 64 + q.qe_auth_data.length);
    qe_key.append(chain_key);
    qe_key.append(reinterpret_cast<const char*>(b + q.qe_report_span.offset), kQeReportSize);
    qe_key.append(reinterpret_cast<const char*>(q.qe_report_signature.data()), 64);
    qe_key.append(reinterpret_cast<const char*>(q.attestation_key.data()), 64);
    qe_key.append(reinterpret_cast<const char*>(b + q.qe_auth_data.offset), q.qe_auth_data.length);
    qe = caches->qe.Get(qe_key);
  }
  out.qe_cached = qe != nullptr;
  if (!qe) {
    if (!EcdsaP256Sha256Raw(pck.leaf_key, b + q.qe_report_span.offset, kQeReportSize, q.qe_report_signature.data())) {
      Fail(kTdxQeReportSignature, "QE report signature does not verify with the PCK key");
    }
    // REPORTDATA = SHA-256(attestation key ‖ QE auth data) ‖ 32 zero bytes: all 64 bytes (TDX.md §3 V5).
    Bytes msg(q.attestation_key.begin(), q.attestation_key.end());
    msg.insert(msg.end(), b + q.qe_auth_data.offset, b + q.qe_auth_data.offset + q.qe_auth_data.length);
    Sha256 h = Sha256Of(msg.data(), msg.size());
    uint8_t want[64] = {0};
    std::copy(h.begin(), h.end(), want);
    if (CRYPTO_memcmp(want, q.qe_report.report_data.data(), 64) != 0) {
      Fail(kTdxQeReportData, "QE REPORTDATA is not SHA-256(attestation key ‖ QE auth data) ‖ 32 zero bytes");
    }
    auto e = std::make_shared<QeEntry>();
    e->attestation_key = EcKeyFromRawPoint(NID_X9_62_prime256v1, q.attestation_key.data(), 64, kTdxAttKey);
    qe = e;
    if (caches) caches->qe.Put(qe_key, qe);
  }
  out.checks.push_back({"qe_report_signature", true, std::string("QE report signed by the PCK key") + (out.qe_cached ? " (verified earlier, same bytes)" : "")});
  out.checks.push_back({"attestation_key_binding", true, "QE REPORTDATA commits to the attestation key and " + std::to_string(q.qe_auth_data.length) + " bytes of QE auth data"});

  if (!EcdsaP256Sha256Raw(qe->attestation_key, b, q.signed_region.length, q.signature.data())) {
    Fail(kTdxQuoteSignature, "quote signature does not verify with the attestation key");
  }
  out.checks.push_back({"quote_signature", true, "header and TD report signed by the attestation key (" + std::to_string(q.signed_region.length) + " bytes)"});

  out.tcb_info = VerifyPcsJson(in.tcb_info, PcsJsonKind::kTcbInfo, in.anchors, root_crl.get(), in.at, caches, &anchors_key);
  out.checks.push_back({"tcb_info_signature", true, "tcbInfo bytes signed by " + out.tcb_info->signer.subject_cn});
  out.qe_identity = VerifyPcsJson(in.qe_identity, PcsJsonKind::kQeIdentity, in.anchors, root_crl.get(), in.at, caches, &anchors_key);
  out.checks.push_back({"qe_identity_signature", true, "enclaveIdentity bytes signed by " + out.qe_identity->signer.subject_cn});
  ERR_clear_error();
  return out;
}

TdxPeek PeekTdxQuote(const uint8_t* data, size_t len) {
  TdxPeek p;
  p.quote = ParseTdxQuote(data, len);
  std::vector<Bytes> pems = SplitPemChain(data + p.quote.pck_chain.offset, p.quote.pck_chain.length, 3, kTdxCertData);
  X509Ptr leaf = Cert(pems[0], "PCK certificate");
  p.leaf = Summary(leaf.get());
  if (p.leaf.issuer_cn == kProcessorCaCn) {
    p.processor_ca = true;
  } else if (p.leaf.issuer_cn != kPlatformCaCn) {
    Fail(kTdxCertShape, "PCK leaf issuer CN is '" + p.leaf.issuer_cn + "', expected a PCK Platform or Processor CA");
  }
  p.sgx = SgxExtensionOf(leaf.get(), kTdxSgxExt);
  ERR_clear_error();
  return p;
}

TdxCollateralOutcome VerifyTdxCollateral(const TdxCollateralInput& in, TdxCaches* caches) {
  if (in.crl_skew < 0 || in.crl_skew > kMaxCrlSkew) Fail(kTdxArgument, "CRL skew must be 0..86400 seconds");
  ParsedAnchors anchors = ParseAnchors(in.anchors);
  TdxCollateralOutcome out;
  std::shared_ptr<const CrlEntry> root_crl;
  if (in.root_crl) {
    // The root CRL is checked against each anchor whose name issued it.
    X509CrlPtr probe = ParseCrl(in.root_crl->data(), in.root_crl->size(), kTdxCrlParse);
    const X509* issuer = nullptr;
    for (const auto& a : anchors.certs) {
      if (X509_NAME_cmp(X509_CRL_get_issuer(probe.get()), X509_get_subject_name(a.get())) == 0) issuer = a.get();
    }
    if (issuer == nullptr) Fail(kTdxCrlSignature, "root CA CRL is not issued by a pinned root");
    Bytes issuer_der = CertDer(issuer);
    root_crl = CheckedCrl(*in.root_crl, issuer_der, Sha256Of(issuer_der.data(), issuer_der.size()), in.at, in.crl_skew, kRootCrlRules, "root CA CRL", caches);
    out.root_crl = CrlWindow{root_crl->this_update, root_crl->next_update};
  }
  if (in.pck_crl) {
    if (!in.pck_crl_chain) Fail(kTdxArgument, "pckCrl needs pckCrlChain");
    std::vector<Bytes> pems = SplitPemChain(in.pck_crl_chain->data(), in.pck_crl_chain->size(), 2, kTdxCollateralChain);
    X509Ptr ca = Cert(pems[0], "PCK CRL issuer");
    X509Ptr root = Cert(pems[1], "PCK CRL issuer root");
    X509* pinned = PinnedRootOf(root.get(), anchors, "PCK CRL issuer chain");
    std::vector<X509Ptr> path = VerifyPath(anchors.Ptrs(), {}, ca.get(), in.at, 1, {kTdxCollateralChain, kTdxCertExpired});
    if (path.size() != 2 || X509_cmp(path[1].get(), pinned) != 0) Fail(kTdxCollateralChain, "PCK CRL issuer is not issued by the pinned root");
    CertSummary cs = Summary(ca.get());
    if (cs.subject_cn != kPlatformCaCn && cs.subject_cn != kProcessorCaCn) Fail(kTdxCollateralChain, "PCK CRL issuer is not a PCK CA");
    RequireCa(ca.get(), true, kTdxCollateralChain, "PCK CRL issuer");
    if (root_crl) NotRevoked(*root_crl, cs, "PCK CA certificate");
    Bytes ca_der = CertDer(ca.get());
    auto pck_crl = CheckedCrl(*in.pck_crl, ca_der, cs.sha256, in.at, in.crl_skew, kPckCrlRules, "PCK CRL", caches);
    out.pck_crl = CrlWindow{pck_crl->this_update, pck_crl->next_update};
    out.pck_ca = cs;
  }
  if (in.tcb_info) out.tcb_info = VerifyPcsJson(*in.tcb_info, PcsJsonKind::kTcbInfo, in.anchors, root_crl.get(), in.at, caches);
  if (in.qe_identity) out.qe_identity = VerifyPcsJson(*in.qe_identity, PcsJsonKind::kQeIdentity, in.anchors, root_crl.get(), in.at, caches);
  ERR_clear_error();
  return out;
}

}  // namespace tas
