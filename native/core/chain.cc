#include "chain.h"

#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <map>

#include "errors.h"

namespace tas {

namespace {

struct SkX509Free {
  void operator()(STACK_OF(X509) * s) const { sk_X509_free(s); }
};

void CheckDn(const X509_NAME* name, const std::string& cn, const std::string& what) {
  static const std::map<int, std::string> kFixed = {
      {NID_organizationalUnitName, "Engineering"}, {NID_countryName, "US"},
      {NID_localityName, "Santa Clara"},           {NID_stateOrProvinceName, "CA"},
      {NID_organizationName, "Advanced Micro Devices"},
  };
  int n = X509_NAME_entry_count(name);
  if (n != 6) Fail(kErrCertDn, what + " has " + std::to_string(n) + " DN attributes, expected 6");
  std::map<int, bool> seen;
  for (int i = 0; i < n; i++) {
    const X509_NAME_ENTRY* e = X509_NAME_get_entry(name, i);
    int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(e));
    if (seen[nid]) Fail(kErrCertDn, what + " repeats a DN attribute");
    seen[nid] = true;
    std::string want;
    if (nid == NID_commonName) {
      want = cn;
    } else {
      auto it = kFixed.find(nid);
      if (it == kFixed.end()) Fail(kErrCertDn, what + " has an unexpected DN attribute");
      want = it->second;
    }
    const ASN1_STRING* s = X509_NAME_ENTRY_get_data(e);
    std::string got(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), static_cast<size_t>(ASN1_STRING_length(s)));
    if (got != want) Fail(kErrCertDn, what + ": DN attribute is '" + got + "', expected '" + want + "'");
  }
}

void CheckPss(const X509* x, const std::string& what) {
  const ASN1_BIT_STRING* sig = nullptr;
  const X509_ALGOR* alg = nullptr;
  X509_get0_signature(&sig, &alg, x);
  CheckPssParams(alg, kErrCertPss, what);
  CheckPssParams(X509_get0_tbs_sigalg(x), kErrCertPss, what + " (tbs)");
}

// CacheKey is the inputs themselves: product, kind, and each certificate's length and bytes
// (anchors in byte order). A lookup then hashes the bytes once (std::hash) and, on a hit, compares
// them with one memcmp; no SHA-256 of every certificate per job. Exact bytes also mean no digest
// collision could ever alias two chains.
std::string CacheKey(const ChainInput& in) {
  std::vector<const Bytes*> anchors;
  size_t n = in.product.size() + 6 + 4 * (in.anchors.size() + 2) + in.intermediate.size() + in.leaf.size();
  for (const auto& a : in.anchors) {
    anchors.push_back(&a);
    n += a.size();
  }
  std::sort(anchors.begin(), anchors.end(), [](const Bytes* x, const Bytes* y) { return *x < *y; });
  std::string k;
  k.reserve(n);
  k.append(in.product);
  k.append(in.kind == VekKind::kVcek ? "/VCEK/" : "/VLEK/");
  auto put = [&k](const Bytes& b) {
    const uint32_t len = static_cast<uint32_t>(b.size());
    const char l[4] = {static_cast<char>(len >> 24), static_cast<char>(len >> 16), static_cast<char>(len >> 8), static_cast<char>(len)};
    k.append(l, 4);
    k.append(reinterpret_cast<const char*>(b.data()), b.size());
  };
  for (const Bytes* a : anchors) put(*a);
  put(in.intermediate);
  put(in.leaf);
  return k;
}

void CheckWindows(const ChainEntry& e, int64_t at) {
  static const char* kNames[] = {"leaf", "intermediate", "anchor"};
  for (size_t i = 0; i < e.windows.size(); i++) {
    if (at < e.windows[i].first) Fail(kErrCertExpired, std::string(kNames[i]) + " certificate is not yet valid");
    if (at > e.windows[i].second) Fail(kErrCertExpired, std::string(kNames[i]) + " certificate has expired");
  }
}

}  // namespace

std::vector<X509Ptr> VerifyPath(const std::vector<X509*>& anchors, const std::vector<X509*>& untrusted_in, X509* leaf, int64_t at, int max_depth,
                                const PathCodes& codes) {
  X509StorePtr store(X509_STORE_new());
  X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  std::unique_ptr<STACK_OF(X509), SkX509Free> untrusted(sk_X509_new_null());
  if (!store || !ctx || !untrusted) Fail(kErrInternal, "out of memory");
  for (X509* a : anchors) {
    if (X509_STORE_add_cert(store.get(), a) != 1) ERR_clear_error();  // duplicates are harmless
  }
  for (X509* u : untrusted_in) {
    if (sk_X509_push(untrusted.get(), u) <= 0) Fail(kErrInternal, "sk_X509_push failed");
  }
  if (X509_STORE_CTX_init(ctx.get(), store.get(), leaf, untrusted.get()) != 1) {
    Fail(kErrInternal, "X509_STORE_CTX_init: " + LastOpensslError());
  }
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  X509_VERIFY_PARAM_set_time(param, static_cast<time_t>(at));
  // Verify the anchor's own self-signature too. No partial chains, no AIA (OpenSSL never fetches).
  X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_CHECK_SS_SIGNATURE);
  X509_VERIFY_PARAM_set_depth(param, max_depth);
  if (X509_verify_cert(ctx.get()) != 1) {
    int err = X509_STORE_CTX_get_error(ctx.get());
    int depth = X509_STORE_CTX_get_error_depth(ctx.get());
    std::string msg = "depth " + std::to_string(depth) + ": " + X509_verify_cert_error_string(err);
    ERR_clear_error();
    if (err == X509_V_ERR_CERT_HAS_EXPIRED || err == X509_V_ERR_CERT_NOT_YET_VALID) Fail(codes.expired, msg);
    Fail(codes.chain, msg);
  }
  STACK_OF(X509)* chain = X509_STORE_CTX_get0_chain(ctx.get());
  std::vector<X509Ptr> out;
  for (int i = 0; chain != nullptr && i < sk_X509_num(chain); i++) {
    X509* x = sk_X509_value(chain, i);
    if (X509_up_ref(x) != 1) Fail(kErrInternal, "X509_up_ref failed");
    out.emplace_back(x);
  }
  ERR_clear_error();
  return out;
}

ChainOutcome VerifyChain(const ChainInput& in, ChainCache* cache) {
  if (in.product != "Milan" && in.product != "Genoa" && in.product != "Turin") {
    Fail(kErrArgument, "product must be Milan, Genoa or Turin");
  }
  if (in.anchors.empty() || in.anchors.size() > kMaxAnchors) Fail(kErrArgument, "1..8 trust anchors required");
  std::string key = cache ? CacheKey(in) : std::string();
  if (cache) {
    if (auto hit = cache->Get(key)) {
      CheckWindows(*hit, in.at);
      return {hit, true};
    }
  }

  std::vector<X509Ptr> anchors;
  for (const auto& a : in.anchors) anchors.push_back(ParseCert(a.data(), a.size()));
  X509Ptr inter = ParseCert(in.intermediate.data(), in.intermediate.size());
  X509Ptr leaf = ParseCert(in.leaf.data(), in.leaf.size());

  auto entry = std::make_shared<ChainEntry>();
  entry->vek = ParseVek(leaf.get());
  const bool vcek = in.kind == VekKind::kVcek;
  if (entry->vek.kind != in.kind) {
    Fail(kErrSignerKind, std::string("expected a ") + (vcek ? "VCEK" : "VLEK") + " but the certificate is a " +
                             (vcek ? "VLEK" : "VCEK"));
  }

  std::vector<X509*> anchor_ptrs;
  for (auto& a : anchors) anchor_ptrs.push_back(a.get());
  // Trust only the given anchors and no X509_STRICT (AMD leaves carry no AKI and strict mode
  // rejects them, SNP.md §2.1).
  std::vector<X509Ptr> path = VerifyPath(anchor_ptrs, {inter.get()}, leaf.get(), in.at, 2, {kErrChain, kErrCertExpired});
  if (path.size() != 3) Fail(kErrChain, "chain is not exactly ARK -> intermediate -> leaf");
  if (X509_cmp(path[1].get(), inter.get()) != 0) Fail(kErrChain, "chain does not use the given intermediate");
  X509* ark = path[2].get();

  const std::string& p = in.product;
  const std::string ark_cn = "ARK-" + p;
  const std::string inter_cn = vcek ? "SEV-" + p : "SEV-VLEK-" + p;
  const std::string leaf_cn = vcek ? "SEV-VCEK" : "SEV-VLEK";
  CheckPss(ark, "ARK");
  CheckPss(inter.get(), vcek ? "ASK" : "ASVK");
  CheckPss(leaf.get(), vcek ? "VCEK" : "VLEK");
  CheckDn(X509_get_subject_name(ark), ark_cn, "ARK subject");
  CheckDn(X509_get_issuer_name(ark), ark_cn, "ARK issuer");
  CheckDn(X509_get_subject_name(inter.get()), inter_cn, "intermediate subject");
  CheckDn(X509_get_issuer_name(inter.get()), ark_cn, "intermediate issuer");
  CheckDn(X509_get_subject_name(leaf.get()), leaf_cn, "leaf subject");
  CheckDn(X509_get_issuer_name(leaf.get()), inter_cn, "leaf issuer");

  // CA shape (SNP.md §2.1): ARK CA with certSign+cRLSign; ASK/ASVK CA, pathlen 0, certSign.
  uint32_t ark_flags = X509_get_extension_flags(ark);
  if (!(ark_flags & EXFLAG_CA) || !(ark_flags & EXFLAG_KUSAGE) ||
      (X509_get_key_usage(ark) & (KU_KEY_CERT_SIGN | KU_CRL_SIGN)) != (KU_KEY_CERT_SIGN | KU_CRL_SIGN)) {
    Fail(kErrCertShape, "ARK lacks CA:TRUE or keyUsage certSign+cRLSign");
  }
  uint32_t inter_flags = X509_get_extension_flags(inter.get());
  if (!(inter_flags & EXFLAG_CA) || X509_get_pathlen(inter.get()) != 0 || !(inter_flags & EXFLAG_KUSAGE) ||
      !(X509_get_key_usage(inter.get()) & KU_KEY_CERT_SIGN)) {
    Fail(kErrCertShape, "intermediate lacks CA:TRUE, pathlen 0 or keyUsage certSign");
  }
  if (X509_get_version(ark) != X509_VERSION_3 || X509_get_version(inter.get()) != X509_VERSION_3) {
    Fail(kErrCertShape, "ARK/intermediate is not X.509 v3");
  }

  entry->anchor = GetCertInfo(ark);
  entry->intermediate = GetCertInfo(inter.get());
  entry->windows = {{entry->vek.cert.not_before, entry->vek.cert.not_after},
                    {entry->intermediate.not_before, entry->intermediate.not_after},
                    {entry->anchor.not_before, entry->anchor.not_after}};
  CheckWindows(*entry, in.at);  // X509_verify_cert did this already; keep both paths identical
  entry->leaf_key = PrepareLeafKey(X509_get0_pubkey(leaf.get()));
  entry->checks = {
      {"ark_self_signed", true, ark_cn + " self-signature verified (RSASSA-PSS SHA-384, salt 48)"},
      {"intermediate_signed_by_ark", true, inter_cn + " signed by " + ark_cn},
      {"vek_signed_by_intermediate", true, leaf_cn + " signed by " + inter_cn},
      {"distinguished_names", true, "AMD DN attributes and CNs for " + p},
      {"ca_constraints", true, "basicConstraints/keyUsage as AMD issues them"},
      {"vek_extensions", true, "AMD KDS extensions decoded (structVersion " + std::to_string(entry->vek.struct_version) + ")"},
  };
  ERR_clear_error();
  if (cache) cache->Put(key, entry);
  return {entry, false};
}

}  // namespace tas
