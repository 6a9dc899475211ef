// NVIDIA GPU device checks (PROTOCOL.md §2.1): SPDM signature, device-identity chain to the pinned
// NVIDIA root at a caller-given time, FWID extension vs the signed FWID opaque field, and OCSP
// responses for the chain's certificates. Bytes and crypto only: no I/O, no clock.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "cert.h"
#include "chain.h"
#include "spdm.h"

namespace tas {

constexpr size_t kGpuMaxChainPem = 16 * 1024;
constexpr size_t kGpuMaxChainCerts = 8;
constexpr size_t kGpuMaxAnchors = 8;
constexpr size_t kMaxOcspSize = 16 * 1024;

struct GpuDeviceInput {
  Bytes evidence;              // SPDM request ‖ response (SDK `evidence`, decoded)
  Bytes chain;                 // PEM chain, leaf first (SDK `certificate`, decoded)
  std::vector<Bytes> anchors;  // pinned NVIDIA Device Identity root(s), DER or PEM
  int64_t at = 0;              // seconds since the epoch
};

// GpuDeviceResult holds the parse and one verdict per check. Cryptographic failures are verdicts
// (the claims say them, as NRAS does); only unparseable input throws.
struct GpuDeviceResult {
  SpdmEvidence spdm;
  std::vector<CertInfo> certs;  // as sent, leaf first
  std::string leaf_serial_dec;  // the ueid claim
  std::string hwmodel;          // CN of the leaf's issuer (e.g. "GH100 A01 GSP BROM")
  std::string fwid_source;      // "2.23.133.5.4.1" | "2.23.133.5.4.1.1" | ""
  Bytes cert_fwid;
  bool chain_ok = false, signature_ok = false, fwid_ok = false;
  bool chain_cached = false;    // the chain verdict came from the cache (windows re-checked)
  std::vector<Check> checks;    // chain, signature, fwid
};

// GpuChainEntry is a device chain that verified to one of the anchors: what the checks need from
// it besides the verdict (certificate details, the leaf and its FWID) and the validity window of
// every certificate of the verified path, re-checked against the time of each use.
struct GpuChainEntry {
  std::vector<CertInfo> certs;
  X509Ptr leaf;
  std::string leaf_serial_dec, hwmodel, fwid_source, detail;
  Bytes cert_fwid;
  bool has_fwid = false;
  std::vector<std::pair<int64_t, int64_t>> windows;
};

// GpuChainCache holds verified device chains keyed by SHA-256 of the anchors and the chain bytes
// (bounded like every cache here; only successes are stored).
using GpuChainCache = BoundedCache<GpuChainEntry>;

// VerifyGpuDevice parses and checks one GPU's evidence. Throws GPU_ERR_SPDM / GPU_ERR_CERT on
// malformed input and SNP_ERR_ARGUMENT on bad arguments. With a cache, a chain that verified
// before is not verified again while the time is inside every certificate's window; a chain
// that fails is verified again every time (failures are never cached).
GpuDeviceResult VerifyGpuDevice(const GpuDeviceInput& in, GpuChainCache* cache = nullptr);

// ParseChainPem reads 1..8 PEM certificates (nothing else but white space between them).
std::vector<X509Ptr> ParseChainPem(const uint8_t* p, size_t n);

// CertFwid extracts the FWID from a device certificate: Hopper's 2.23.133.5.4.1 (last 48 bytes of
// the extension value) or Blackwell's 2.23.133.5.4.1.1 (DiceTcbInfo fwids[0].digest). Returns
// false when the certificate has neither; throws GPU_ERR_FWID when one is malformed.
bool CertFwid(const X509* cert, Bytes* fwid, std::string* source);

// DiceTcbInfoFwid decodes a DiceTcbInfo (TCG DICE Attestation Architecture) and returns fwids[0]'s
// digest. Throws GPU_ERR_FWID. Exposed for fuzzing.
Bytes DiceTcbInfoFwid(const uint8_t* p, size_t n);

struct OcspInput {
  Bytes response;              // DER OCSPResponse
  Bytes cert;                  // the certificate asked about
  Bytes issuer;                // its issuer
  std::vector<Bytes> anchors;  // pinned roots the responder must chain to
  std::vector<Bytes> untrusted;// intermediates that may complete the responder's chain
  int64_t at = 0;
  int64_t skew = 300;
};

struct OcspResult {
  std::string status;          // good | revoked | unknown
  int revocation_reason = -1;  // CRLReason, -1 when none
  int64_t this_update = 0, next_update = 0, produced_at = 0, revoked_at = 0;
};

// VerifyOcsp checks an OCSP response: successful, BasicOCSPResponse signed by a responder that
// chains to a pinned root (at `at`), a SingleResponse for cert/issuer, and at within
// thisUpdate - skew .. nextUpdate + skew (a response without nextUpdate is refused). Throws GPU_ERR_OCSP.
OcspResult VerifyOcsp(const OcspInput& in);

// BuildOcspRequest encodes an OCSPRequest (DER) for cert/issuer with a SHA-1 CertID (RFC 5019
// profile: what responders cache) and no nonce, so that the answer can be cached until nextUpdate.
Bytes BuildOcspRequest(const uint8_t* cert, size_t cert_len, const uint8_t* issuer, size_t issuer_len);

}  // namespace tas
