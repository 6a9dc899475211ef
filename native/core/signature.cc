// This file uses OpenSSL's low-level EC_KEY/ECDSA_do_verify API on purpose. It is deprecated in 3.0
// but present in every 3.x. Reason: EVP_DigestVerifyInit does a provider fetch and context set-up
// on every call, and on a cached chain that overhead is a large part of the cost. The low-level
// call is the same one `openssl speed ecdsap384` / `ecdsap256` measures. The key's curve is
// checked once, when it is prepared.
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include "signature.h"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <openssl/sha.h>

#include "cert.h"
#include "errors.h"
#include "report.h"

namespace tas {
namespace {

EcVerifyKey Own(EC_KEY* ec) {
  return EcVerifyKey(ec, [](const ec_key_st* k) { EC_KEY_free(const_cast<EC_KEY*>(k)); });
}

}  // namespace

EcVerifyKey PrepareEcKey(EVP_PKEY* key, int nid, const char* code) {
  if (key == nullptr || EVP_PKEY_get_base_id(key) != EVP_PKEY_EC) Fail(code, "public key is not an EC key");
  EC_KEY* ec = EVP_PKEY_get1_EC_KEY(key);
  if (ec == nullptr || EC_GROUP_get_curve_name(EC_KEY_get0_group(ec)) != nid) {
    EC_KEY_free(ec);
    ERR_clear_error();
    Fail(code, std::string("EC key is not on ") + OBJ_nid2sn(nid));
  }
  return Own(ec);
}

LeafVerifyKey PrepareLeafKey(EVP_PKEY* key) {
  RequireP384(key);
  return PrepareEcKey(key, NID_secp384r1, kErrCertShape);
}

EcVerifyKey EcKeyFromRawPoint(int nid, const uint8_t* xy, size_t n, const char* code) {
  if (xy == nullptr || n == 0 || n > 132 || n % 2 != 0) Fail(code, "raw EC point has a bad length");
  EC_KEY* ec = EC_KEY_new_by_curve_name(nid);
  if (ec == nullptr) Fail(kErrInternal, "EC_KEY_new_by_curve_name failed");
  EcVerifyKey key = Own(ec);
  const EC_GROUP* group = EC_KEY_get0_group(ec);
  if (static_cast<size_t>((EC_GROUP_get_degree(group) + 7) / 8) * 2 != n) Fail(code, "raw EC point does not match the curve size");
  uint8_t oct[133];
  oct[0] = 0x04;  // uncompressed point: 04 ‖ X ‖ Y
  std::copy(xy, xy + n, oct + 1);
  // EC_KEY_oct2key rejects points off the curve and the encoding of infinity.
  if (EC_KEY_oct2key(ec, oct, n + 1, nullptr) != 1) {
    ERR_clear_error();
    Fail(code, "raw EC point is not on the curve");
  }
  return key;
}

bool EcdsaVerifyRaw(const EcVerifyKey& key, const uint8_t* digest, size_t digest_len, const uint8_t* r_raw, const uint8_t* s_raw, size_t n,
                    ByteOrder order) {
  if (!key || n == 0 || n > 128) return false;
  const int len = static_cast<int>(n);
  BnPtr r(order == ByteOrder::kBigEndian ? BN_bin2bn(r_raw, len, nullptr) : BN_lebin2bn(r_raw, len, nullptr));
  BnPtr s(order == ByteOrder::kBigEndian ? BN_bin2bn(s_raw, len, nullptr) : BN_lebin2bn(s_raw, len, nullptr));
  if (!r || !s) Fail(kErrInternal, "BN_bin2bn failed");
  ECDSA_SIG* sig = ECDSA_SIG_new();
  if (sig == nullptr) Fail(kErrInternal, "ECDSA_SIG_new failed");
  ECDSA_SIG_set0(sig, r.release(), s.release());  // sig owns r and s now
  // ECDSA_do_verify rejects r or s of zero or >= the group order.
  int rc = ECDSA_do_verify(digest, static_cast<int>(digest_len), sig, const_cast<EC_KEY*>(key.get()));
  ECDSA_SIG_free(sig);
  ERR_clear_error();
  return rc == 1;
}

bool EcdsaP256Sha256Raw(const EcVerifyKey& key, const uint8_t* msg, size_t msg_len, const uint8_t* rs64) {
  uint8_t digest[SHA256_DIGEST_LENGTH];
  if (SHA256(msg, msg_len, digest) == nullptr) Fail(kErrInternal, "SHA256 failed");
  return EcdsaVerifyRaw(key, digest, sizeof digest, rs64, rs64 + 32, 32, ByteOrder::kBigEndian);
}

void VerifyReportSignature(const uint8_t* report, const LeafVerifyKey& key) {
  uint8_t digest[SHA384_DIGEST_LENGTH];
  // Always over the received bytes, never a re-serialised struct (SNP.md §1.3).
  if (SHA384(report, kReportSignedSize, digest) == nullptr) Fail(kErrInternal, "SHA384 failed");
  if (!EcdsaVerifyRaw(key, digest, sizeof digest, report + 0x2A0, report + 0x2E8, kSigComponentSize, ByteOrder::kLittleEndian)) {
    Fail(kErrReportSignature, "report signature does not verify with the VCEK/VLEK public key");
  }
}

}  // namespace tas
