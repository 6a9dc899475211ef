// A bounded DER reader shared by every TEE (DESIGN.md "More than one TEE"): reads one TLV at a
// time from a byte span, never past its end, definite lengths only (DER), at most 4 length bytes,
// tag numbers < 31 (single-byte tags: all that X.509 extensions of AMD/Intel use). Nothing is
// allocated; values are sub-spans of the input. Throws SnpError with the caller's code.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace tas {

namespace der {
constexpr uint8_t kBoolean = 0x01;
constexpr uint8_t kInteger = 0x02;
constexpr uint8_t kOctetString = 0x04;
constexpr uint8_t kOid = 0x06;
constexpr uint8_t kEnumerated = 0x0A;
constexpr uint8_t kSequence = 0x30;
}  // namespace der

struct DerTlv {
  uint8_t tag = 0;
  const uint8_t* value = nullptr;
  size_t len = 0;
};

class DerReader {
 public:
  DerReader(const uint8_t* p, size_t n, const char* code) : p_(p), end_(p + n), code_(code) {}
  bool AtEnd() const { return p_ == end_; }
  // Next reads one TLV; throws `code` on truncation, long-form tags or non-minimal lengths.
  DerTlv Next();
  // Expect reads one TLV and requires its tag.
  DerTlv Expect(uint8_t tag, const char* what);

 private:
  const uint8_t* p_;
  const uint8_t* end_;
  const char* code_;
};

// DerOidText renders an OID value (the content octets) as dotted text; throws `code` if malformed
// (empty, truncated arc, arc above 2^32, non-minimal arc encoding).
std::string DerOidText(const DerTlv& oid, const char* code);

// DerUnsigned reads a DER INTEGER as an unsigned value <= `max` (minimal encoding, sign byte only
// where the top bit needs it, never negative). Throws `code` naming `what`.
uint64_t DerUnsigned(const DerTlv& integer, uint64_t max, const char* code, const char* what);

}  // namespace tas
