// libFuzzer target: the VM's wrapping key (native/core/wrap.cc) — DER from the get_secret request,
// parsed and used before anything else vouches for it.
#include <cstddef>
#include <cstdint>

#include "../core/errors.h"
#include "../core/wrap.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const uint8_t kSecret[33] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17,
                                      18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33};
  const int bits = tas::RsaPkcs1Bits(data, size);
  if (bits < 0 || static_cast<size_t>(bits) > 8 * size) __builtin_trap();
  try {
    tas::Bytes out = tas::WrapAesGcmPkcs1(data, size, kSecret, sizeof kSecret);
    // Only a key the parse accepted, inside the size bounds, wraps: RSA block + secret + IV + tag.
    if (bits < tas::kMinWrappingRsaBits || bits > tas::kMaxWrappingRsaBits) __builtin_trap();
    if (out.size() != static_cast<size_t>(bits + 7) / 8 + sizeof kSecret + tas::kGcmIvSize + tas::kGcmTagSize) __builtin_trap();
  } catch (const tas::SnpError& e) {
    // Bad keys are refusals with the key code, never an internal error.
    if (e.code() != tas::kWrapKey) __builtin_trap();
  }
  return 0;
}
