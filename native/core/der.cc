#include "der.h"

#include "errors.h"

namespace tas {

DerTlv DerReader::Next() {
  if (end_ - p_ < 2) Fail(code_, "DER: truncated tag/length");
  DerTlv t;
  t.tag = p_[0];
  if ((t.tag & 0x1F) == 0x1F) Fail(code_, "DER: multi-byte tag");
  const uint8_t first = p_[1];
  p_ += 2;
  size_t len = 0;
  if (first < 0x80) {
    len = first;
  } else {
    const size_t nbytes = first & 0x7F;
    if (nbytes == 0) Fail(code_, "DER: indefinite length");
    if (nbytes > 4) Fail(code_, "DER: length of more than 4 bytes");
    if (static_cast<size_t>(end_ - p_) < nbytes) Fail(code_, "DER: truncated length");
    if (p_[0] == 0) Fail(code_, "DER: non-minimal length");
    for (size_t i = 0; i < nbytes; i++) len = (len << 8) | p_[i];
    if (len < 0x80) Fail(code_, "DER: long form for a short length");
    p_ += nbytes;
  }
  if (static_cast<size_t>(end_ - p_) < len) Fail(code_, "DER: value runs past its container");
  t.value = p_;
  t.len = len;
  p_ += len;
  return t;
}

DerTlv DerReader::Expect(uint8_t tag, const char* what) {
  DerTlv t = Next();
  if (t.tag != tag) Fail(code_, std::string(what) + ": unexpected DER tag " + std::to_string(t.tag));
  return t;
}

std::string DerOidText(const DerTlv& oid, const char* code) {
  if (oid.tag != der::kOid || oid.len == 0 || oid.len > 64) Fail(code, "DER: bad OID");
  std::string out;
  uint64_t arc = 0;
  bool first = true;
  bool start = true;
  for (size_t i = 0; i < oid.len; i++) {
    const uint8_t b = oid.value[i];
    if (start && b == 0x80) Fail(code, "DER: non-minimal OID arc");
    start = false;
    arc = (arc << 7) | (b & 0x7F);
    if (arc > 0xFFFFFFFFull) Fail(code, "DER: OID arc too large");
    if (b & 0x80) continue;
    if (first) {
      const uint64_t top = arc < 40 ? 0 : (arc < 80 ? 1 : 2);
      out = std::to_string(top) + "." + std::to_string(arc - top * 40);
      first = false;
    } else {
      out += "." + std::to_string(arc);
    }
    arc = 0;
    start = true;
  }
  if (!start) Fail(code, "DER: truncated OID arc");
  return out;
}

uint64_t DerUnsigned(const DerTlv& t, uint64_t max, const char* code, const char* what) {
  if ((t.tag != der::kInteger && t.tag != der::kEnumerated) || t.len == 0 || t.len > 9) Fail(code, std::string(what) + " is not a small DER INTEGER");
  const uint8_t* p = t.value;
  size_t n = t.len;
  if (p[0] & 0x80) Fail(code, std::string(what) + " is negative");
  if (n > 1 && p[0] == 0 && !(p[1] & 0x80)) Fail(code, std::string(what) + " has a non-minimal encoding");
  if (p[0] == 0 && n > 1) {  // the sign byte (200 is 02 02 00 C8, TDX.md §2.6)
    p++;
    n--;
  }
  if (n > 8) Fail(code, std::string(what) + " is too large");
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) v = (v << 8) | p[i];
  if (v > max) Fail(code, std::string(what) + " is out of range 0.." + std::to_string(max));
  return v;
}

}  // namespace tas
