// ECDSA over raw r‖s, shared by every TEE (DESIGN.md "More than one TEE"): SEV-SNP reports carry
// P-384 r and s as 72-byte little-endian integers (SNP.md §1.3); Intel DCAP quotes, QE reports
// and PCS JSON carry P-256 r‖s as 32-byte big-endian integers (TDX.md §2.4).
#pragma once
#include <openssl/evp.h>

#include <cstddef>
#include <cstdint>
#include <memory>

struct ec_key_st;

namespace tas {

// EcVerifyKey is a public EC key prepared once (curve checked) and shared read-only between pool
// threads (cached with a verified chain).
using EcVerifyKey = std::shared_ptr<const ec_key_st>;
// LeafVerifyKey is the VCEK/VLEK public key (P-384).
using LeafVerifyKey = EcVerifyKey;

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
// bytes as received. Throws SNP_ERR_REPORT_SIGNATURE.
void VerifyReportSignature(const uint8_t* report, const LeafVerifyKey& key);

}  // namespace tas
