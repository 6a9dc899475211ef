// Report signature (SNP.md §1.3): ECDSA P-384 over SHA-384 of bytes 0x000..0x29F; R and S are
// 72-byte little-endian integers at 0x2A0 and 0x2E8.
#pragma once
#include <openssl/evp.h>

#include <cstdint>
#include <memory>

struct ec_key_st;

namespace tas {

// LeafVerifyKey is the VCEK/VLEK public key prepared once per verified chain (it is cached with
// the chain and shared read-only between pool threads).
using LeafVerifyKey = std::shared_ptr<const ec_key_st>;

// PrepareLeafKey extracts the P-384 key (SNP_ERR_CERT_SHAPE if it is not one).
LeafVerifyKey PrepareLeafKey(EVP_PKEY* key);

// VerifyReportSignature checks the signature of a 0x4A0-byte report (already parsed) over the
// bytes as received. Throws SNP_ERR_REPORT_SIGNATURE.
void VerifyReportSignature(const uint8_t* report, const LeafVerifyKey& key);

}  // namespace tas
