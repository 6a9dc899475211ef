// Intel TDX quote verification (TDX.md §3 V1-V8 crypto parts): the PCK chain to a pinned Intel
// SGX Root CA at a caller-given time, both CRLs, the QE report signature, the attestation key
// binding, the quote signature, and the signatures over the exact tcbInfo / enclaveIdentity bytes
// with the TCB Signing chain. Bytes and crypto only: no clock, no I/O, no JSON, no policy (TCB
// level matching, freshness of tcbInfo/QE identity and QE identity matching are src/tdx's job).
//
// Verified pieces are cached per addon instance by the SHA-256 of their exact input bytes (plus the
// anchors); every hit re-checks validity windows and revocation against the supplied time, so a
// cached verification costs the two P-256 verifies the quote itself needs.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "cert.h"
#include "chain.h"
#include "sgx_ext.h"
#include "signature.h"
#include "tdx_quote.h"

namespace tas {

constexpr size_t kMaxTdxAnchors = 8;
constexpr size_t kMaxPcsJson = 256 * 1024;

// CertSummary identifies a certificate in results (no DER: cheap to hand to JavaScript).
struct CertSummary {
  std::string subject_cn, issuer_cn, serial_hex;
  int64_t not_before = 0, not_after = 0;
  Sha256 sha256{}, spki_sha256{};
};

// PckEntry is a verified PCK chain (leaf -> PCK Platform/Processor CA -> pinned root).
struct PckEntry {
  CertSummary leaf, ca, root;
  bool processor_ca = false;  // issued by "Intel SGX PCK Processor CA" (else Platform CA)
  SgxExtension sgx;
  EcVerifyKey leaf_key;
  Bytes ca_der, root_der;
};

// CrlEntry is a verified CRL (signature and issuer); the window is checked on every use.
struct CrlEntry {
  int64_t this_update = 0, next_update = 0;
  std::unordered_set<std::string> revoked;  // lowercase hex serials
};

// SignedJsonEntry is a verified PCS body signature with its TCB Signing certificate.
struct SignedJsonEntry {
  CertSummary signer, root;
};

// QeEntry is a verified QE report of one platform: its signature by the PCK key and its
// REPORTDATA binding to the attestation key (+ QE auth data). A Quoting Enclave keeps its
// attestation key, so every quote of a platform carries byte-identical QE report data; the entry
// is keyed by all of those bytes and the PCK chain, and holds the prepared attestation key.
struct QeEntry {
  EcVerifyKey attestation_key;
};

struct TdxCaches {
  BoundedCache<PckEntry> pck;
  BoundedCache<CrlEntry> crl;
  BoundedCache<SignedJsonEntry> json;
  BoundedCache<QeEntry> qe;
  void Clear() {
    pck.Clear();
    crl.Clear();
    json.Clear();
    qe.Clear();
  }
  size_t Size() { return pck.Size() + crl.Size() + json.Size() + qe.Size(); }
};

// PcsSignedJson is one PCS response: the exact bytes of the `tcbInfo` / `enclaveIdentity` value as
// received (from its `{` to the matching `}`), the 64-byte signature (the hex-decoded `signature`
// field: r ‖ s big-endian), and the issuer chain (PEM: TCB Signing cert, then the root).
struct PcsSignedJson {
  Bytes body, signature, chain;
};

enum class PcsJsonKind { kTcbInfo, kQeIdentity };

struct TdxVerifyInput {
  Bytes quote;
  std::vector<Bytes> anchors;  // pinned Intel SGX Root CA (+ lab roots), DER or PEM
  // Intel SGX Root CA CRL and the CRL of the leaf's issuer (Platform or Processor CA), DER or PEM.
  // Absent only when the caller could not obtain a fresh one and its configuration says to go on
  // without (TAS_CRL_FAIL_MODE=open, decided in src/): revocation by that CRL is then not checked,
  // and the outcome says so (no window, a "revocation" check naming what was skipped).
  std::optional<Bytes> root_crl;
  std::optional<Bytes> pck_crl;
  PcsSignedJson tcb_info, qe_identity;
  int64_t at = 0;
  int64_t crl_skew = 0;
};

struct CrlWindow {
  int64_t this_update = 0, next_update = 0;
};

struct TdxVerifyOutcome {
  TdxQuote quote;
  std::shared_ptr<const PckEntry> pck;
  bool pck_cached = false;
  bool qe_cached = false;
  std::optional<CrlWindow> root_crl, pck_crl;  // absent when that CRL was not given
  std::shared_ptr<const SignedJsonEntry> tcb_info, qe_identity;
  std::vector<Check> checks;
};

// VerifyTdxQuote runs every check above or throws the first failure's TDX_ERR_* code. `caches` may
// be null (no caching).
TdxVerifyOutcome VerifyTdxQuote(const TdxVerifyInput& in, TdxCaches* caches);

// PeekTdxQuote parses a quote and reads its PCK leaf (issuer CA type, SGX extension) WITHOUT
// verifying anything: it only tells the caller which collateral to fetch (FMSPC, ca=platform or
// processor). VerifyTdxQuote proves all of it later.
struct TdxPeek {
  TdxQuote quote;
  CertSummary leaf;
  bool processor_ca = false;
  SgxExtension sgx;
};
TdxPeek PeekTdxQuote(const uint8_t* data, size_t len);

// Collateral verification without a quote (re-verifying cached collateral on load).
struct TdxCollateralInput {
  std::vector<Bytes> anchors;
  std::optional<Bytes> root_crl;  // absent: pieces are checked without it (the caller's fail-open)
  std::optional<Bytes> pck_crl, pck_crl_chain;  // CRL and its issuer chain (PCK CA, root), PEM
  std::optional<PcsSignedJson> tcb_info, qe_identity;
  int64_t at = 0;
  int64_t crl_skew = 0;
};

struct TdxCollateralOutcome {
  std::optional<CrlWindow> root_crl;
  std::optional<CrlWindow> pck_crl;
  std::optional<CertSummary> pck_ca;
  std::shared_ptr<const SignedJsonEntry> tcb_info, qe_identity;
};

TdxCollateralOutcome VerifyTdxCollateral(const TdxCollateralInput& in, TdxCaches* caches);

// VerifyPcsJsonSignature checks one signed body alone against `anchors` (fuzzing, tools).
std::shared_ptr<const SignedJsonEntry> VerifyPcsJson(const PcsSignedJson& j, PcsJsonKind kind, const std::vector<Bytes>& anchors,
                                                     const CrlEntry* root_crl, int64_t at, TdxCaches* caches, const std::string* anchors_key = nullptr);

}  // namespace tas
