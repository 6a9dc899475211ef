// ATTESTATION_REPORT parsing (AMD 56860, Table "ATTESTATION_REPORT Structure"; SNP.md §1).
// Bytes only: no crypto, no I/O. Every field is read at an explicit offset from the received
// buffer; nothing is memcpy'd into a packed struct.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>

namespace tas {

constexpr size_t kReportSize = 0x4A0;        // 1184 bytes, the only accepted size
constexpr size_t kReportSignedSize = 0x2A0;  // signature covers 0x000..0x29F
constexpr size_t kSigComponentSize = 72;     // R and S, little-endian, zero-padded
constexpr size_t kP384Size = 48;             // significant bytes of R and S

using Tcb = std::array<uint8_t, 8>;

struct FwVersion {
  uint8_t major = 0, minor = 0, build = 0;
};

// Report is the decoded report. Raw byte fields stay byte arrays; the TCB layout (Milan/Genoa vs
// Turin) is chosen by the caller from the product, never here.
struct Report {
  uint32_t version = 0;
  uint32_t guest_svn = 0;
  uint64_t policy = 0;
  std::array<uint8_t, 16> family_id{};
  std::array<uint8_t, 16> image_id{};
  uint32_t vmpl = 0;
  uint32_t signature_algo = 0;
  Tcb current_tcb{};
  uint64_t platform_info = 0;
  uint32_t signer_info = 0;
  bool author_key_en = false;
  bool mask_chip_key = false;
  uint32_t signing_key = 0;  // 0 VCEK, 1 VLEK, 7 none
  std::array<uint8_t, 64> report_data{};
  std::array<uint8_t, 48> measurement{};
  std::array<uint8_t, 32> host_data{};
  std::array<uint8_t, 48> id_key_digest{};
  std::array<uint8_t, 48> author_key_digest{};
  std::array<uint8_t, 32> report_id{};
  std::array<uint8_t, 32> report_id_ma{};
  Tcb reported_tcb{};
  bool has_cpuid = false;  // v3+
  uint8_t cpuid_fam_id = 0, cpuid_mod_id = 0, cpuid_step = 0;
  std::array<uint8_t, 64> chip_id{};
  Tcb committed_tcb{};
  FwVersion current_version;
  FwVersion committed_version;
  Tcb launch_tcb{};
  bool has_mit_vectors = false;  // v5+
  uint64_t launch_mit_vector = 0;
  uint64_t current_mit_vector = 0;
  std::array<uint8_t, kSigComponentSize> sig_r{};
  std::array<uint8_t, kSigComponentSize> sig_s{};
};

// ParseReport decodes and checks a report. Throws SnpError with SNP_ERR_REPORT_SIZE,
// SNP_ERR_REPORT_VERSION, SNP_ERR_SIGNATURE_ALGO, SNP_ERR_SIGNING_KEY, SNP_ERR_MBZ,
// SNP_ERR_POLICY_BIT17 or SNP_ERR_POLICY_RESERVED.
Report ParseReport(const uint8_t* data, size_t len);

}  // namespace tas
