// This file uses OpenSSL's low-level EC_KEY/ECDSA_do_verify API on purpose. It is deprecated in 3.0
// but present in every 3.x. Reason: EVP_DigestVerifyInit does a provider fetch and context set-up
// on every call, and on a cached chain that overhead is a large part of the cost. The low-level
// call is the same one `openssl speed ecdsap384` measures. The key is checked to be P-384 once,
// when it is prepared.
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

LeafVerifyKey PrepareLeafKey(EVP_PKEY* key) {
  RequireP384(key);
  EC_KEY* ec = EVP_PKEY_get1_EC_KEY(key);
  if (ec == nullptr || EC_GROUP_get_curve_name(EC_KEY_get0_group(ec)) != NID_secp384r1) {
    EC_KEY_free(ec);
    ERR_clear_error();
    Fail(kErrCertShape, "leaf key is not a usable P-384 key");
  }
  return LeafVerifyKey(ec, [](const ec_key_st* k) { EC_KEY_free(const_cast<EC_KEY*>(k)); });
}

void VerifyReportSignature(const uint8_t* report, const LeafVerifyKey& key) {
  uint8_t digest[SHA384_DIGEST_LENGTH];
  // Always over the received bytes, never a re-serialised struct (SNP.md §1.3).
  if (SHA384(report, kReportSignedSize, digest) == nullptr) Fail(kErrInternal, "SHA384 failed");
  BnPtr r(BN_lebin2bn(report + 0x2A0, kSigComponentSize, nullptr));
  BnPtr s(BN_lebin2bn(report + 0x2E8, kSigComponentSize, nullptr));
  if (!r || !s) Fail(kErrInternal, "BN_lebin2bn failed");
  ECDSA_SIG* sig = ECDSA_SIG_new();
  if (sig == nullptr) Fail(kErrInternal, "ECDSA_SIG_new failed");
  ECDSA_SIG_set0(sig, r.release(), s.release());  // sig owns r and s now
  int rc = ECDSA_do_verify(digest, sizeof digest, sig, const_cast<EC_KEY*>(key.get()));
  ECDSA_SIG_free(sig);
  ERR_clear_error();
  if (rc != 1) Fail(kErrReportSignature, "report signature does not verify with the VCEK/VLEK public key");
}

}  // namespace tas
