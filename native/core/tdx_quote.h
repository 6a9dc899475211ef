// Intel TDX DCAP quote v4 / v5 parsing (TDX.md §2, §3 V1). Bytes only: no crypto, no I/O. Every
// field is read at an explicit offset from the received buffer (little-endian integers); the
// signed region is computed from the parsed framing, never from the buffer length.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace tas {

constexpr size_t kTdxHeaderSize = 48;
constexpr size_t kTdReport10Size = 584;   // TD report body 1.0 (v4, v5 body type 2)
constexpr size_t kTdReport15Size = 648;   // TD report body 1.5 (v5 body type 3)
constexpr size_t kQeReportSize = 384;     // SGX REPORT BODY
constexpr size_t kMaxQuoteSize = 64 * 1024;
constexpr uint32_t kTeeTypeTdx = 0x81;
constexpr uint16_t kAttKeyEcdsaP256 = 2;

// QuoteSpan is an explicit [offset, offset+length) range of the received quote.
struct QuoteSpan {
  size_t offset = 0, length = 0;
};

using Mr48 = std::array<uint8_t, 48>;

// TdReport is the TD report body (TDX.md §2.3); TD 1.5 fields are valid when is_td15.
struct TdReport {
  std::array<uint8_t, 16> tee_tcb_svn{};
  Mr48 mr_seam{}, mr_signer_seam{};
  std::array<uint8_t, 8> seam_attributes{}, td_attributes{}, xfam{};
  Mr48 mr_td{}, mr_config_id{}, mr_owner{}, mr_owner_config{};
  std::array<Mr48, 4> rtmr{};
  std::array<uint8_t, 64> report_data{};
  bool is_td15 = false;
  std::array<uint8_t, 16> tee_tcb_svn2{};
  Mr48 mr_service_td{};
};

// QeReport is the Quoting Enclave's SGX report body (TDX.md §2.5).
struct QeReport {
  std::array<uint8_t, 16> cpu_svn{};
  uint32_t misc_select = 0;
  std::array<uint8_t, 16> attributes{};
  std::array<uint8_t, 32> mr_enclave{}, mr_signer{};
  uint16_t isv_prod_id = 0, isv_svn = 0;
  std::array<uint8_t, 64> report_data{};
};

struct TdxQuote {
  uint16_t version = 0;
  uint16_t att_key_type = 0;
  uint32_t tee_type = 0;
  std::array<uint8_t, 4> header_reserved{};  // bytes 0x08..0x0B, reserved for TDX (TDX.md §7.15)
  std::array<uint8_t, 16> qe_vendor_id{};
  std::array<uint8_t, 20> user_data{};
  uint16_t body_type = 0;  // v4: 2 (implicit, no descriptor); v5: 2 or 3 from the descriptor
  uint32_t body_size = 0;
  TdReport body;
  std::array<uint8_t, 64> signature{};        // r ‖ s, big-endian
  std::array<uint8_t, 64> attestation_key{};  // X ‖ Y
  uint16_t cert_data_type = 0;                // 6
  QeReport qe_report;
  std::array<uint8_t, 64> qe_report_signature{};
  uint16_t inner_cert_data_type = 0;  // 5
  size_t trailing = 0;                // zero bytes after the signature data (padding)

  QuoteSpan header, body_descriptor, body_span, signed_region, signature_data, qe_report_span, qe_report_signature_span, qe_auth_data,
      pck_chain, trailing_span;
};

// ParseTdxQuote decodes and checks a quote (TDX.md §3 V1). Throws SnpError with
// TDX_ERR_QUOTE_SIZE, TDX_ERR_HEADER, TDX_ERR_BODY_TYPE, TDX_ERR_SIG_DATA, TDX_ERR_CERT_DATA or
// TDX_ERR_TRAILING.
TdxQuote ParseTdxQuote(const uint8_t* data, size_t len);

}  // namespace tas
