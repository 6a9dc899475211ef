// Key wrapping for the VM (PROTOCOL.md §2, the AES-GCM reply form): a fresh AES-256 key encrypts
// the secret with AES-256-GCM (12-byte IV, 16-byte tag, no AAD) and travels under the VM's RSA key
// with RSA-OAEP (SHA-256, MGF1-SHA-256, empty label).
//
// Why here and not in node:crypto: for the RSAPublicKey DER the agent sends, Node parses the key
// through OpenSSL's decoder framework, re-encodes it through the encoder framework to prove it
// canonical, and builds EVP contexts (provider fetches) for OAEP and GCM on every request; that
// was several times the RSA operation itself (#16). Here the key is read with the plain DER
// codec, proved canonical by re-encoding, and used with the low-level RSA calls.
#pragma once
#include <cstddef>
#include <cstdint>

#include "ossl.h"

namespace tas {

constexpr int kMinWrappingRsaBits = 2048;   // below: < 112-bit security (NIST SP 800-57)
constexpr int kMaxWrappingRsaBits = 16384;  // bounds the work one request can cost
constexpr size_t kMaxWrappingKeyDer = 8192;
// OpenSSL's own bound (OPENSSL_RSA_SMALL_MODULUS_BITS / OPENSSL_RSA_MAX_PUBEXP_BITS): above 3072
// modulus bits the public exponent may have at most 64 bits, or one public operation would cost
// as much as a private one. Checked here so that such a key is a clear refusal, not an OpenSSL error.
constexpr int kSmallModulusBits = 3072;
constexpr int kMaxLargeModulusExponentBits = 64;
constexpr size_t kMaxWrappedSecret = 1 << 20;
constexpr size_t kGcmIvSize = 12;
constexpr size_t kGcmTagSize = 16;

// RsaPkcs1Bits returns the modulus size in bits when `der` is exactly one canonical DER
// RSAPublicKey (OpenSSL re-encodes it to the same bytes) with a positive modulus and exponent;
// 0 for anything else (private keys, BER, trailing bytes, other structures). Never throws on input.
int RsaPkcs1Bits(const uint8_t* der, size_t n);

// OaepWrapPkcs1 encrypts `material` under the RSAPublicKey `der` with RSA-OAEP SHA-256. Throws
// KBM_ERR_WRAPPING_KEY if the key is not canonical, not 2048..16384 bits, its modulus is even, its exponent is not an
// odd number >= 3 below the modulus (at most 64 bits above 3072 modulus bits), or if the material
// is too long for the key.
Bytes OaepWrapPkcs1(const uint8_t* der, size_t n, const uint8_t* material, size_t len);

// WrapAesGcmPkcs1 returns wrapped_key ‖ blob ‖ iv ‖ tag (RSA size, secret size, 12, 16 bytes):
// the secret under a fresh AES-256-GCM key (key and IV from OpenSSL's CSPRNG), that key under
// RSA-OAEP as OaepWrapPkcs1. The AES key is wiped before returning. Same throws as OaepWrapPkcs1.
Bytes WrapAesGcmPkcs1(const uint8_t* der, size_t n, const uint8_t* secret, size_t len);

}  // namespace tas
