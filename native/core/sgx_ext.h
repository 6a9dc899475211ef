// The Intel SGX PCK certificate extension (OID 1.2.840.113741.1.13.1, TDX.md §2.6), decoded by a
// bounded DER walk by OID (never by position), and the PEM chain a quote carries.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ossl.h"

namespace tas {

struct SgxExtension {
  std::array<uint8_t, 16> ppid{};
  std::array<uint8_t, 16> tcb_comp_svn{};  // SGX TCB component SVNs .2.1 .. .2.16
  uint16_t pce_svn = 0;                    // .2.17
  std::array<uint8_t, 16> cpu_svn{};       // .2.18 (differs from the QE report's CPUSVN, TDX.md §2.5)
  std::array<uint8_t, 2> pce_id{};
  std::array<uint8_t, 6> fmspc{};
  int sgx_type = 0;  // 0 Standard, 1 Scalable, 2 ScalableWithIntegrity
  std::optional<std::array<uint8_t, 16>> platform_instance_id;
  std::optional<bool> dynamic_platform, cached_keys, smt_enabled;
};

// DecodeSgxExtension decodes the extension's value (the content of its OCTET STRING). Requires
// PPID, all 18 TCB entries (16 components, PCESVN, CPUSVN), PCE-ID, FMSPC and SGX type, each once.
// Throws `code` (TDX_ERR_SGX_EXT).
SgxExtension DecodeSgxExtension(const uint8_t* p, size_t n, const char* code);

// SgxExtensionOf finds the extension on a certificate (exactly once) and decodes it.
SgxExtension SgxExtensionOf(const X509* cert, const char* code);

constexpr size_t kMaxPemChain = 3 * 64 * 1024;

// SplitPemChain splits concatenated PEM "CERTIFICATE" blocks. Only white space may stand between
// and around them, plus one final NUL (C-string buffers, TDX.md §2.4). Returns each block's bytes.
// Throws `code` if anything else is there or the count is not `want`.
std::vector<Bytes> SplitPemChain(const uint8_t* p, size_t n, size_t want, const char* code);

}  // namespace tas
