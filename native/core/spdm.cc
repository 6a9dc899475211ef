#include "spdm.h"

#include <cstdio>
#include <cstring>
#include <set>

#include "errors.h"

namespace tas {
namespace {

uint32_t Le(const uint8_t* p, size_t n) {
  uint32_t v = 0;
  for (size_t i = 0; i < n; i++) v |= static_cast<uint32_t>(p[i]) << (8 * i);
  return v;
}

// Reader is a bounds-checked cursor; every read names the field it is for.
class Reader {
 public:
  Reader(const uint8_t* p, size_t n) : p_(p), n_(n) {}
  const uint8_t* Take(size_t k, const char* what) {
    if (k > n_ - off_) Fail(kErrGpuSpdm, std::string(what) + ": truncated at offset " + std::to_string(off_));
    const uint8_t* r = p_ + off_;
    off_ += k;
    return r;
  }
  uint32_t U(size_t k, const char* what) { return Le(Take(k, what), k); }
  size_t off() const { return off_; }
  size_t left() const { return n_ - off_; }

 private:
  const uint8_t* p_;
  size_t n_;
  size_t off_ = 0;
};

std::string Hex2(uint8_t b) {
  char s[3];
  std::snprintf(s, sizeof s, "%02X", b);
  return s;
}

}  // namespace

std::string FormatVbiosVersion(const uint8_t* p, size_t n) {
  // NVIDIA renders the little-endian value's hex as: second half, then the last byte of the
  // first half, dotted by byte ("0074009620000000" -> 96.00.74.00.20).
  if (n != 8) Fail(kErrGpuSpdm, "VBIOS version field is " + std::to_string(n) + " bytes, expected 8");
  const uint8_t order[5] = {p[3], p[2], p[1], p[0], p[4]};
  std::string s;
  for (int i = 0; i < 5; i++) {
    if (i) s += '.';
    s += Hex2(order[i]);
  }
  return s;
}

SpdmEvidence ParseSpdm(const uint8_t* p, size_t n) {
  if (p == nullptr || n == 0) Fail(kErrGpuSpdm, "evidence is empty");
  if (n > kSpdmMaxEvidence) Fail(kErrGpuSpdm, "evidence is " + std::to_string(n) + " bytes (at most " + std::to_string(kSpdmMaxEvidence) + ")");
  SpdmEvidence e;
  Reader r(p, n);
  // GET_MEASUREMENTS request (DSP0274 1.1 Table 40), 37 bytes with a nonce.
  e.req_version = static_cast<uint8_t>(r.U(1, "request SPDMVersion"));
  if (e.req_version != 0x11) Fail(kErrGpuSpdm, "request SPDMVersion is 0x" + Hex2(e.req_version) + ", expected 0x11");
  if (r.U(1, "request RequestResponseCode") != 0xE0) Fail(kErrGpuSpdm, "request is not GET_MEASUREMENTS (0xE0)");
  e.req_param1 = static_cast<uint8_t>(r.U(1, "request Param1"));
  if ((e.req_param1 & 0x01) == 0) Fail(kErrGpuSpdm, "request did not ask for a signature (Param1 bit 0)");
  if ((e.req_param1 & 0xFE) != 0) Fail(kErrGpuSpdm, "request Param1 has reserved bits set");
  e.req_param2 = static_cast<uint8_t>(r.U(1, "request Param2"));
  std::memcpy(e.req_nonce.data(), r.Take(32, "request Nonce"), 32);
  e.req_slot = static_cast<uint8_t>(r.U(1, "request SlotIDParam"));
  if (e.req_slot > 7) Fail(kErrGpuSpdm, "request SlotIDParam is " + std::to_string(e.req_slot) + " (0..7)");

  // MEASUREMENTS response (DSP0274 1.1 Table 43).
  e.version = static_cast<uint8_t>(r.U(1, "response SPDMVersion"));
  if (e.version != 0x11) Fail(kErrGpuSpdm, "response SPDMVersion is 0x" + Hex2(e.version) + ", expected 0x11");
  if (r.U(1, "response RequestResponseCode") != 0x60) Fail(kErrGpuSpdm, "response is not MEASUREMENTS (0x60)");
  e.param1 = static_cast<uint8_t>(r.U(1, "response Param1"));
  e.param2 = static_cast<uint8_t>(r.U(1, "response Param2"));
  const uint32_t nblocks = r.U(1, "NumberOfBlocks");
  const uint32_t rec_len = r.U(3, "MeasurementRecordLength");
  if (nblocks == 0) Fail(kErrGpuSpdm, "no measurement blocks");
  if (rec_len > r.left()) Fail(kErrGpuSpdm, "MeasurementRecordLength " + std::to_string(rec_len) + " exceeds the evidence");
  Reader rec(r.Take(rec_len, "MeasurementRecord"), rec_len);
  std::set<uint8_t> seen;
  for (uint32_t i = 0; i < nblocks; i++) {
    SpdmBlock b;
    b.index = static_cast<uint8_t>(rec.U(1, "measurement block Index"));
    if (b.index == 0) Fail(kErrGpuSpdm, "measurement block index 0");
    if (!seen.insert(b.index).second) Fail(kErrGpuSpdm, "measurement block index " + std::to_string(b.index) + " repeats");
    if (rec.U(1, "MeasurementSpecification") != 0x01) Fail(kErrGpuSpdm, "measurement block " + std::to_string(b.index) + " is not DMTF-specified");
    const uint32_t msize = rec.U(2, "MeasurementSize");
    if (msize < 3) Fail(kErrGpuSpdm, "measurement block " + std::to_string(b.index) + " is too short");
    Reader m(rec.Take(msize, "Measurement"), msize);
    b.value_type = static_cast<uint8_t>(m.U(1, "DMTFSpecMeasurementValueType"));
    const uint32_t vsize = m.U(2, "DMTFSpecMeasurementValueSize");
    if (vsize != m.left()) Fail(kErrGpuSpdm, "measurement block " + std::to_string(b.index) + ": value size disagrees with MeasurementSize");
    const uint8_t* v = m.Take(vsize, "DMTFSpecMeasurementValue");
    b.value.assign(v, v + vsize);
    e.blocks.push_back(std::move(b));
  }
  if (rec.left() != 0) Fail(kErrGpuSpdm, "MeasurementRecord has " + std::to_string(rec.left()) + " bytes after the last block");

  std::memcpy(e.resp_nonce.data(), r.Take(32, "response Nonce"), 32);
  const uint32_t olen = r.U(2, "OpaqueLength");
  if (olen > kSpdmMaxOpaque) Fail(kErrGpuSpdm, "OpaqueLength " + std::to_string(olen) + " exceeds 1024");
  Reader op(r.Take(olen, "OpaqueData"), olen);
  std::set<uint16_t> ids;
  while (op.left() > 0) {
    OpaqueField f;
    f.type = static_cast<uint16_t>(op.U(2, "opaque DataType"));
    const uint32_t fsize = op.U(2, "opaque DataSize");
    const uint8_t* v = op.Take(fsize, "opaque Data");
    if (!ids.insert(f.type).second) Fail(kErrGpuSpdm, "opaque field " + std::to_string(f.type) + " repeats");
    f.value.assign(v, v + fsize);
    switch (f.type) {
      case kOpaqueDriverVersion: {
        // NUL-terminated ASCII; printable characters only.
        size_t len = 0;
        while (len < fsize && v[len] != 0) {
          if (v[len] < 0x20 || v[len] > 0x7E) Fail(kErrGpuSpdm, "driver version is not printable ASCII");
          len++;
        }
        for (size_t k = len; k < fsize; k++) if (v[k] != 0) Fail(kErrGpuSpdm, "driver version has bytes after its NUL");
        e.driver_version.assign(reinterpret_cast<const char*>(v), len);
        break;
      }
      case kOpaqueVbiosVersion:
        e.vbios_version = FormatVbiosVersion(v, fsize);
        break;
      case kOpaqueFwid:
        if (fsize != 48) Fail(kErrGpuSpdm, "FWID opaque field is " + std::to_string(fsize) + " bytes, expected 48");
        e.fwid.assign(v, v + fsize);
        break;
      default:
        break;
    }
    e.opaque.push_back(std::move(f));
  }

  e.signed_len = kSpdmRequestSize + (r.off() - kSpdmRequestSize);
  std::memcpy(e.signature.data(), r.Take(kSpdmSignatureSize, "Signature"), kSpdmSignatureSize);
  // Zero padding after the signature is tolerated (genuine evidence has it); anything else is not.
  e.padding = r.left();
  const uint8_t* tail = r.Take(e.padding, "padding");
  for (size_t i = 0; i < e.padding; i++) {
    if (tail[i] != 0) Fail(kErrGpuSpdm, "non-zero byte " + std::to_string(i) + " after the signature");
  }
  return e;
}

}  // namespace tas
