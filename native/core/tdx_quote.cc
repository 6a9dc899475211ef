#include "tdx_quote.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "errors.h"

namespace tas {
namespace {

// Intel's QE vendor id 939A7233-F79C-4CA9-940A-0DB3957F0607 (TDX.md §2.1).
constexpr uint8_t kIntelQeVendorId[16] = {0x93, 0x9A, 0x72, 0x33, 0xF7, 0x9C, 0x4C, 0xA9,
                                          0x94, 0x0A, 0x0D, 0xB3, 0x95, 0x7F, 0x06, 0x07};

uint16_t U16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t U32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}

template <size_t N>
void Copy(std::array<uint8_t, N>& dst, const uint8_t* src) {
  std::memcpy(dst.data(), src, N);
}

void ParseTdReport(const uint8_t* b, bool td15, TdReport& r) {
  Copy(r.tee_tcb_svn, b + 0x000);
  Copy(r.mr_seam, b + 0x010);
  Copy(r.mr_signer_seam, b + 0x040);
  Copy(r.seam_attributes, b + 0x070);
  Copy(r.td_attributes, b + 0x078);
  Copy(r.xfam, b + 0x080);
  Copy(r.mr_td, b + 0x088);
  Copy(r.mr_config_id, b + 0x0B8);
  Copy(r.mr_owner, b + 0x0E8);
  Copy(r.mr_owner_config, b + 0x118);
  for (size_t i = 0; i < 4; i++) Copy(r.rtmr[i], b + 0x148 + 48 * i);
  Copy(r.report_data, b + 0x208);
  r.is_td15 = td15;
  if (td15) {
    Copy(r.tee_tcb_svn2, b + 0x248);
    Copy(r.mr_service_td, b + 0x258);
  }
}

void ParseQeReport(const uint8_t* b, QeReport& q) {
  Copy(q.cpu_svn, b + 0x00);
  q.misc_select = U32(b + 0x10);
  Copy(q.attributes, b + 0x30);
  Copy(q.mr_enclave, b + 0x40);
  Copy(q.mr_signer, b + 0x80);
  q.isv_prod_id = U16(b + 0x100);
  q.isv_svn = U16(b + 0x102);
  Copy(q.report_data, b + 0x140);
}

}  // namespace

TdxQuote ParseTdxQuote(const uint8_t* data, size_t len) {
  if (data == nullptr || len < kTdxHeaderSize) Fail(kTdxQuoteSize, "quote is " + std::to_string(len) + " bytes, shorter than its header");
  if (len > kMaxQuoteSize) Fail(kTdxQuoteSize, "quote is larger than 64 KiB");
  TdxQuote q;
  q.version = U16(data + 0x00);
  q.att_key_type = U16(data + 0x02);
  q.tee_type = U32(data + 0x04);
  Copy(q.header_reserved, data + 0x08);
  Copy(q.qe_vendor_id, data + 0x0C);
  Copy(q.user_data, data + 0x1C);
  q.header = {0, kTdxHeaderSize};
  if (q.version != 4 && q.version != 5) Fail(kTdxHeader, "quote version " + std::to_string(q.version) + " is not 4 or 5");
  if (q.att_key_type != kAttKeyEcdsaP256) {
    Fail(kTdxHeader, "attestation key type " + std::to_string(q.att_key_type) + " is not 2 (ECDSA-256 with P-256)");
  }
  if (q.tee_type != kTeeTypeTdx) Fail(kTdxHeader, "TEE type " + std::to_string(q.tee_type) + " is not 0x81 (TDX)");
  if (std::memcmp(q.qe_vendor_id.data(), kIntelQeVendorId, 16) != 0) Fail(kTdxHeader, "QE vendor id is not Intel's");

  size_t body_off = kTdxHeaderSize;
  if (q.version == 4) {
    q.body_type = 2;
    q.body_size = kTdReport10Size;
  } else {
    if (len < kTdxHeaderSize + 6) Fail(kTdxQuoteSize, "v5 quote ends inside its body descriptor");
    q.body_type = U16(data + 0x30);
    q.body_size = U32(data + 0x32);
    q.body_descriptor = {0x30, 6};
    body_off = 0x36;
    // Type 1 is an SGX enclave report (never with TEE 0x81); type 4 (TD 1.5 extended) is not
    // specified or tested yet (TDX.md §7.20): refuse both, and any other type or size.
    if (!((q.body_type == 2 && q.body_size == kTdReport10Size) || (q.body_type == 3 && q.body_size == kTdReport15Size))) {
      Fail(kTdxBodyType, "v5 body descriptor type " + std::to_string(q.body_type) + " size " + std::to_string(q.body_size) +
                             " is not TD report 1.0 (2, 584) or 1.5 (3, 648)");
    }
  }
  if (len - body_off < q.body_size + 4) Fail(kTdxQuoteSize, "quote ends inside its TD report body");
  q.body_span = {body_off, q.body_size};
  ParseTdReport(data + body_off, q.body_type == 3, q.body);
  const size_t signed_len = body_off + q.body_size;
  q.signed_region = {0, signed_len};

  const uint32_t sig_len = U32(data + signed_len);
  const size_t sig_off = signed_len + 4;
  if (sig_len > len - sig_off) Fail(kTdxQuoteSize, "signature data length " + std::to_string(sig_len) + " runs past the quote");
  q.signature_data = {sig_off, sig_len};
  const uint8_t* s = data + sig_off;
  // Fixed part up to and including the QE auth data size (0x248 bytes).
  if (sig_len < 0x248) Fail(kTdxSigData, "signature data is " + std::to_string(sig_len) + " bytes, too short for a QE report");
  Copy(q.signature, s + 0x00);
  Copy(q.attestation_key, s + 0x40);
  q.cert_data_type = U16(s + 0x80);
  const uint32_t cert_size = U32(s + 0x82);
  if (q.cert_data_type != 6) Fail(kTdxCertData, "certification data type " + std::to_string(q.cert_data_type) + " is not 6 (QE report)");
  if (cert_size != sig_len - 0x86) Fail(kTdxCertData, "certification data size does not equal the rest of the signature data");
  q.qe_report_span = {sig_off + 0x86, kQeReportSize};
  ParseQeReport(s + 0x86, q.qe_report);
  Copy(q.qe_report_signature, s + 0x206);
  q.qe_report_signature_span = {sig_off + 0x206, 64};
  const uint16_t auth_len = U16(s + 0x246);
  if (static_cast<size_t>(sig_len) - 0x248 < static_cast<size_t>(auth_len) + 6) {
    Fail(kTdxCertData, "QE auth data size " + std::to_string(auth_len) + " runs past the signature data");
  }
  q.qe_auth_data = {sig_off + 0x248, auth_len};
  const uint8_t* inner = s + 0x248 + auth_len;
  q.inner_cert_data_type = U16(inner);
  const uint32_t inner_size = U32(inner + 2);
  if (q.inner_cert_data_type != 5) {
    Fail(kTdxCertData, "inner certification data type " + std::to_string(q.inner_cert_data_type) + " is not 5 (PCK chain)");
  }
  const size_t inner_off = 0x248 + static_cast<size_t>(auth_len) + 6;
  if (inner_size != sig_len - inner_off) Fail(kTdxCertData, "PCK chain size does not end exactly at the signature data's end");
  if (inner_size == 0) Fail(kTdxCertData, "PCK chain is empty");
  q.pck_chain = {sig_off + inner_off, inner_size};

  // Bytes after the signature data are covered by no signature: zero padding from fixed-size
  // buffers is normal, anything else is refused (TDX.md §2.2, §7.10).
  const size_t end = sig_off + sig_len;
  q.trailing = len - end;
  q.trailing_span = {end, q.trailing};
  if (std::any_of(data + end, data + len, [](uint8_t b) { return b != 0; })) {
    Fail(kTdxTrailing, "non-zero bytes follow the signature data (" + std::to_string(q.trailing) + " trailing bytes)");
  }
  return q;
}

}  // namespace tas
