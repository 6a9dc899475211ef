#include "signature.h"

#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>

#include "cert.h"
#include "errors.h"
#include "report.h"

namespace tas {

void VerifyReportSignature(const uint8_t* report, EVP_PKEY* key) {
  RequireP384(key);
  BnPtr r(BN_lebin2bn(report + 0x2A0, kSigComponentSize, nullptr));
  BnPtr s(BN_lebin2bn(report + 0x2E8, kSigComponentSize, nullptr));
  if (!r || !s) Fail(kErrInternal, "BN_lebin2bn failed");
  ECDSA_SIG* sig = ECDSA_SIG_new();
  if (sig == nullptr) Fail(kErrInternal, "ECDSA_SIG_new failed");
  ECDSA_SIG_set0(sig, r.release(), s.release());  // sig owns r and s now
  unsigned char* der = nullptr;
  int der_len = i2d_ECDSA_SIG(sig, &der);
  ECDSA_SIG_free(sig);
  if (der_len <= 0) Fail(kErrInternal, "i2d_ECDSA_SIG failed");
  EvpMdCtxPtr md(EVP_MD_CTX_new());
  int rc = 0;
  if (md && EVP_DigestVerifyInit(md.get(), nullptr, EVP_sha384(), nullptr, key) == 1) {
    // Always over the received bytes, never a re-serialised struct (SNP.md §1.3).
    rc = EVP_DigestVerify(md.get(), der, static_cast<size_t>(der_len), report, kReportSignedSize);
  }
  OPENSSL_free(der);
  ERR_clear_error();
  if (rc != 1) Fail(kErrReportSignature, "report signature does not verify with the VCEK/VLEK public key");
}

}  // namespace tas
