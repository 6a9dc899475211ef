// ECDSA over raw r‖s, shared by every TEE (DESIGN.md "More than one TEE"): SEV-SNP reports carry
// P-384 r and s as 72-byte little-endian integers (SNP.md §1.3); Intel DCAP quotes, QE reports
// and PCS JSON carry P-256 r‖s as 32-byte big-endian integers (TDX.md §2.4).
#pragma once
#include <openssl/evp.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

struct ec_key_st;

namespace tas {

// EcVerifyKey is a public EC key prepared once (curve checked) and shared read-only between pool
// threads (cached with a verified chain).
using EcVerifyKey = std::shared_ptr<const ec_key_st>;

class VekTable;

// VekVerifier verifies report signatures for one VCEK/VLEK (P-384). A VEK signs every report of its
// chip (or every VLEK-signed guest of a cloud), so from the key's second report on it verifies
// with precomputed multiples of the public point Q as well as of the generator G (OpenSSL's own
// wNAF tables; for Q, those of a copy of the group whose generator is Q). u1·G + u2·Q then costs
// two fixed-base multiplications, ~8 doublings and ~80 additions each, instead of ECDSA_do_verify's
// shared ~384 doublings: the report signature costs ~0.45 of a generic P-384 verify (#16). The
// result is the same ECDSA equation (SEC 1 §4.1.4); the tests compare both paths.
//
// A table takes ~140 KiB, so at most kMaxVekTables exist in the process; keys past the budget (a
// fleet of more chips than that, reused at once) verify the generic way until a chain cache wipe
// frees tables. Shared read-only between pool threads; the table is published once, atomically.
class VekVerifier {
 public:
  static constexpr size_t kMaxVekTables = 256;

  explicit VekVerifier(EcVerifyKey key) : key_(std::move(key)) {}
  // Verify checks (r, s), 48-byte little-endian integers as a report carries them, over a SHA-384
  // digest. Returns false on any mismatch (r or s out of [1, n-1] included); *used_table says which
  // path decided.
  bool Verify(const uint8_t digest[48], const uint8_t* r_le, const uint8_t* s_le, bool* used_table) const;
  // TableCount is the number of VEK tables alive in the process.
  static size_t TableCount();

 private:
  std::shared_ptr<const VekTable> TableForUse() const;

  EcVerifyKey key_;
  mutable std::atomic<uint32_t> uses_{0};
  mutable std::atomic<bool> building_{false};
  mutable std::shared_ptr<const VekTable> table_;  // std::atomic_load / std::atomic_store only
};

// LeafVerifyKey is the VCEK/VLEK public key (P-384).
using LeafVerifyKey = std::shared_ptr<const VekVerifier>;

enum class ByteOrder { kBigEndian, kLittleEndian };

// PrepareLeafKey extracts the P-384 key (SNP_ERR_CERT_SHAPE if it is not one).
LeafVerifyKey PrepareLeafKey(EVP_PKEY* key);

// PrepareEcKey extracts an EC key on curve `nid` from a certificate key; throws `code` otherwise.
EcVerifyKey PrepareEcKey(EVP_PKEY* key, int nid, const char* code);

// EcKeyFromRawPoint builds a key from X ‖ Y (no 0x04 prefix), 2*field bytes, big-endian, and
// checks that the point is on curve `nid` (and not the point at infinity). Throws `code`.
EcVerifyKey EcKeyFromRawPoint(int nid, const uint8_t* xy, size_t n, const char* code);

// EcdsaVerifyRaw verifies an ECDSA signature given as two `n`-byte integers r and s in `order`
// over an already computed digest. Returns false on any mismatch (never throws on bad input).
bool EcdsaVerifyRaw(const EcVerifyKey& key, const uint8_t* digest, size_t digest_len, const uint8_t* r, const uint8_t* s, size_t n,
                    ByteOrder order);

// EcdsaP256Sha256Raw hashes `msg` with SHA-256 and verifies the 64-byte big-endian r ‖ s.
bool EcdsaP256Sha256Raw(const EcVerifyKey& key, const uint8_t* msg, size_t msg_len, const uint8_t* rs64);

// VerifyReportSignature checks the signature of a 0x4A0-byte report (already parsed) over the
// bytes as received. Throws SNP_ERR_REPORT_SIGNATURE. Returns whether the VEK's table was used.
bool VerifyReportSignature(const uint8_t* report, const LeafVerifyKey& key);

}  // namespace tas
