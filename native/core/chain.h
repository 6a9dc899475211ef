// AMD certificate chain verification (SNP.md §2.1, §6): ARK (pinned, supplied by the caller) ->
// ASK/ASVK (untrusted intermediate) -> VCEK/VLEK, at a caller-supplied time. Verified chains are
// cached per addon instance; the cache holds the time-independent result (signatures, shape) and
// every hit re-checks each certificate's validity window against the supplied time.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cert.h"
#include "signature.h"

namespace tas {

struct Check {
  std::string name;
  bool ok;
  std::string detail;
};

struct ChainInput {
  std::vector<Bytes> anchors;  // pinned ARK(s), DER or PEM
  Bytes intermediate;          // ASK or ASVK
  Bytes leaf;                  // VCEK or VLEK
  std::string product;         // Milan | Genoa | Turin
  VekKind kind = VekKind::kVcek;
  int64_t at = 0;              // seconds since the epoch
};

// ChainEntry is an immutable verified chain. Shared by reference between the cache and results.
struct ChainEntry {
  VekInfo vek;
  CertInfo anchor;
  CertInfo intermediate;
  LeafVerifyKey leaf_key;
  std::vector<std::pair<int64_t, int64_t>> windows;  // notBefore/notAfter: leaf, intermediate, anchor
  std::vector<Check> checks;
};

// BoundedCache is a bounded, thread-safe map of immutable verified results (verifications run on
// the libuv pool). A simple bound: the working set is a handful of entries per platform; wiping on
// overflow keeps memory bounded against a caller cycling through many distinct (valid) inputs.
template <typename T>
class BoundedCache {
 public:
  static constexpr size_t kMaxEntries = 4096;
  std::shared_ptr<const T> Get(const std::string& key) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(key);
    return it == map_.end() ? nullptr : it->second;
  }
  void Put(const std::string& key, std::shared_ptr<const T> entry) {
    std::lock_guard<std::mutex> lock(mu_);
    if (map_.size() >= kMaxEntries) map_.clear();
    map_[key] = std::move(entry);
  }
  void Clear() {
    std::lock_guard<std::mutex> lock(mu_);
    map_.clear();
  }
  size_t Size() {
    std::lock_guard<std::mutex> lock(mu_);
    return map_.size();
  }

 private:
  std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<const T>> map_;
};

// ChainCache holds verified AMD chains.
using ChainCache = BoundedCache<ChainEntry>;

// PathCodes are the codes a path verification fails with.
struct PathCodes {
  const char* chain;    // signature, issuer, path, CA constraints
  const char* expired;  // a certificate outside its validity window at the given time
};

// VerifyPath builds and verifies leaf -> untrusted... -> one of `anchors` with an X509_STORE that
// holds only the anchors (no system store, no AIA), at the fixed time `at`, with the anchor's
// self-signature checked and no partial chains. Returns the chain leaf first (references owned).
std::vector<X509Ptr> VerifyPath(const std::vector<X509*>& anchors, const std::vector<X509*>& untrusted, X509* leaf, int64_t at, int max_depth,
                                const PathCodes& codes);

struct ChainOutcome {
  std::shared_ptr<const ChainEntry> entry;
  bool cached = false;
};

constexpr size_t kMaxAnchors = 8;

// VerifyChain verifies the chain or throws SNP_ERR_ARGUMENT, SNP_ERR_CERT_PARSE, SNP_ERR_EXT,
// SNP_ERR_SIGNER_KIND, SNP_ERR_CHAIN, SNP_ERR_CERT_EXPIRED, SNP_ERR_CERT_PSS, SNP_ERR_CERT_DN or
// SNP_ERR_CERT_SHAPE. `cache` may be null (no caching).
ChainOutcome VerifyChain(const ChainInput& in, ChainCache* cache);

}  // namespace tas
