// Deliberately the low-level RSA API (deprecated in 3.0, present in every 3.x), as signature.cc
// does for ECDSA: EVP_PKEY_encrypt fetches providers and builds a context per call. The key is
// checked here again although the TypeScript caller checked the same bytes: this function is the
// one that uses it.
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include "wrap.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <algorithm>
#include <memory>
#include <string>

#include "errors.h"

namespace tas {
namespace {

struct RsaFree { void operator()(RSA* p) const { RSA_free(p); } };
using RsaPtr = std::unique_ptr<RSA, RsaFree>;
struct CipherCtxFree { void operator()(EVP_CIPHER_CTX* p) const { EVP_CIPHER_CTX_free(p); } };
using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree>;

// ParseCanonical returns the key iff `der` is one DER RSAPublicKey, nothing after it, that
// re-encodes to the same bytes (refuses BER length forms, non-minimal INTEGERs and trailing bytes),
// with a positive modulus and exponent.
RsaPtr ParseCanonical(const uint8_t* der, size_t n) {
  if (der == nullptr || n == 0 || n > kMaxWrappingKeyDer) return nullptr;
  const unsigned char* p = der;
  RsaPtr rsa(d2i_RSAPublicKey(nullptr, &p, static_cast<long>(n)));
  if (!rsa || p != der + n) {
    ERR_clear_error();
    return nullptr;
  }
  unsigned char* again = nullptr;
  const int len = i2d_RSAPublicKey(rsa.get(), &again);
  const bool same = len > 0 && static_cast<size_t>(len) == n && CRYPTO_memcmp(again, der, n) == 0;
  OPENSSL_free(again);
  ERR_clear_error();
  if (!same) return nullptr;
  const BIGNUM* mod = RSA_get0_n(rsa.get());
  const BIGNUM* exp = RSA_get0_e(rsa.get());
  if (mod == nullptr || exp == nullptr || BN_is_negative(mod) || BN_is_negative(exp) || BN_is_zero(mod)) return nullptr;
  return rsa;
}

RsaPtr UsableKey(const uint8_t* der, size_t n) {
  RsaPtr rsa = ParseCanonical(der, n);
  if (!rsa) Fail(kWrapKey, "not a canonical DER RSAPublicKey");
  const int bits = RSA_bits(rsa.get());
  if (bits < kMinWrappingRsaBits || bits > kMaxWrappingRsaBits) {
    Fail(kWrapKey, "RSA key of " + std::to_string(bits) + " bits, " + std::to_string(kMinWrappingRsaBits) + ".." + std::to_string(kMaxWrappingRsaBits) +
                       " accepted");
  }
  // An RSA modulus is odd (a product of odd primes); Montgomery arithmetic needs it, too.
  if (!BN_is_odd(RSA_get0_n(rsa.get()))) Fail(kWrapKey, "RSA modulus is even");
  const BIGNUM* e = RSA_get0_e(rsa.get());
  // An even or tiny exponent is not a usable RSA encryption key; e >= n would not be one either.
  if (!BN_is_odd(e) || BN_num_bits(e) < 2 || BN_cmp(e, RSA_get0_n(rsa.get())) >= 0) Fail(kWrapKey, "RSA public exponent is not an odd number >= 3");
  if (bits > kSmallModulusBits && BN_num_bits(e) > kMaxLargeModulusExponentBits) {
    Fail(kWrapKey, "RSA public exponent of " + std::to_string(BN_num_bits(e)) + " bits with a " + std::to_string(bits) + "-bit modulus (at most " +
                       std::to_string(kMaxLargeModulusExponentBits) + " above " + std::to_string(kSmallModulusBits) + ")");
  }
  return rsa;
}

const EVP_MD* Sha256();

void Oaep(RSA* rsa, const uint8_t* material, size_t len, uint8_t* out) {
  const int k = RSA_size(rsa);
  Bytes em(static_cast<size_t>(k));
  // EME-OAEP (RFC 8017 §7.1.1) with SHA-256 for both the label hash and MGF1, empty label; the
  // seed comes from OpenSSL's CSPRNG. It refuses material longer than k - 2*32 - 2.
  if (len > static_cast<size_t>(k) || RSA_padding_add_PKCS1_OAEP_mgf1(em.data(), k, material, static_cast<int>(len), nullptr, 0, Sha256(), Sha256()) != 1) {
    ERR_clear_error();
    Fail(kWrapKey, "material of " + std::to_string(len) + " bytes is too long for RSA-OAEP under a " + std::to_string(k * 8) + "-bit key");
  }
  // The encoded message starts with 0x00, so it is below the modulus: the raw RSA operation is
  // exactly RSAEP of RFC 8017.
  const int w = RSA_public_encrypt(k, em.data(), out, rsa, RSA_NO_PADDING);
  OPENSSL_cleanse(em.data(), em.size());
  // The key came from the VM: whatever OpenSSL still finds wrong with it is the key's fault.
  if (w != k) Fail(kWrapKey, "RSA public operation failed: " + LastOpensslError());
}

const EVP_MD* Sha256() {
  // Fetched once, as the cipher below: EVP_sha256() is fetched again inside every digest init.
  static const EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA2-256", nullptr);
  return fetched != nullptr ? fetched : EVP_sha256();
}

const EVP_CIPHER* Aes256Gcm() {
  // Fetched once: EVP_aes_256_gcm() would fetch the provider implementation on every init.
  static const EVP_CIPHER* fetched = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  return fetched != nullptr ? fetched : EVP_aes_256_gcm();
}

}  // namespace

int RsaPkcs1Bits(const uint8_t* der, size_t n) {
  RsaPtr rsa = ParseCanonical(der, n);
  return rsa ? RSA_bits(rsa.get()) : 0;
}

Bytes OaepWrapPkcs1(const uint8_t* der, size_t n, const uint8_t* material, size_t len) {
  RsaPtr rsa = UsableKey(der, n);
  Bytes out(static_cast<size_t>(RSA_size(rsa.get())));
  Oaep(rsa.get(), material, len, out.data());
  return out;
}

Bytes WrapAesGcmPkcs1(const uint8_t* der, size_t n, const uint8_t* secret, size_t len) {
  if (len > kMaxWrappedSecret) Fail(kErrArgument, "secret is larger than " + std::to_string(kMaxWrappedSecret) + " bytes");
  RsaPtr rsa = UsableKey(der, n);
  const size_t k = static_cast<size_t>(RSA_size(rsa.get()));
  Bytes out(k + len + kGcmIvSize + kGcmTagSize);
  uint8_t* blob = out.data() + k;
  uint8_t* iv = blob + len;
  uint8_t* tag = iv + kGcmIvSize;
  // Key and IV from one CSPRNG draw; the IV is part of the reply, the key only leaves wrapped.
  uint8_t fresh[32 + kGcmIvSize];
  struct Wipe {
    uint8_t* p;
    size_t n;
    ~Wipe() { OPENSSL_cleanse(p, n); }
  } wipe{fresh, sizeof fresh};
  if (RAND_bytes(fresh, sizeof fresh) != 1) Fail(kErrInternal, "RAND_bytes failed: " + LastOpensslError());
  std::copy(fresh + 32, fresh + sizeof fresh, iv);
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  int n1 = 0;
  int n2 = 0;
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), Aes256Gcm(), nullptr, fresh, iv) != 1 ||
      (len > 0 && EVP_EncryptUpdate(ctx.get(), blob, &n1, secret, static_cast<int>(len)) != 1) || EVP_EncryptFinal_ex(ctx.get(), blob + n1, &n2) != 1 ||
      static_cast<size_t>(n1 + n2) != len || EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(kGcmTagSize), tag) != 1) {
    Fail(kErrInternal, "AES-256-GCM failed: " + LastOpensslError());
  }
  Oaep(rsa.get(), fresh, 32, out.data());
  return out;
}

}  // namespace tas
