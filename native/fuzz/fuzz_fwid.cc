// libFuzzer target: the FWID extensions of NVIDIA device certificates — DiceTcbInfo decoding
// (2.23.133.5.4.1.1) on raw input, and certificate parsing plus FWID extraction (Hopper and
// Blackwell) when the input parses as a certificate.
#include <cstddef>
#include <cstdint>

#include "../core/cert.h"
#include "../core/errors.h"
#include "../core/nvidia.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    tas::Bytes d = tas::DiceTcbInfoFwid(data, size);
    if (d.size() != 48) __builtin_trap();
  } catch (const tas::SnpError&) {
  }
  try {
    tas::X509Ptr x = tas::ParseCert(data, size);
    tas::Bytes fwid;
    std::string source;
    if (tas::CertFwid(x.get(), &fwid, &source) && fwid.size() != 48) __builtin_trap();
  } catch (const tas::SnpError&) {
  }
  return 0;
}
