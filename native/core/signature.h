// Report signature (SNP.md §1.3): ECDSA P-384 over SHA-384 of bytes 0x000..0x29F; R and S are
// 72-byte little-endian integers at 0x2A0 and 0x2E8.
#pragma once
#include <openssl/evp.h>

#include <cstdint>

namespace tas {

// VerifyReportSignature checks the signature of a 0x4A0-byte report (already parsed) over the
// bytes as received. Throws SNP_ERR_REPORT_SIGNATURE (or SNP_ERR_CERT_SHAPE for a non-P-384 key).
void VerifyReportSignature(const uint8_t* report, EVP_PKEY* key);

}  // namespace tas
