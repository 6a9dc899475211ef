#include "verify.h"

#include "errors.h"
#include "signature.h"

namespace tas {

VerifyOutcome Verify(const VerifyInput& in, ChainCache* cache) {
  VerifyOutcome out;
  out.report = ParseReport(in.report.data(), in.report.size());
  const bool want_vcek = in.chain.kind == VekKind::kVcek;
  // SIGNING_KEY must name the key type we verify with (TAV #142/#147/#149).
  if (out.report.signing_key == 7) Fail(kErrSignerKind, "report is unsigned (SIGNING_KEY 7)");
  if ((out.report.signing_key == 0) != want_vcek) {
    Fail(kErrSignerKind, std::string("report SIGNING_KEY is ") + (out.report.signing_key == 0 ? "VCEK" : "VLEK") +
                             " but a " + (want_vcek ? "VCEK" : "VLEK") + " chain was supplied");
  }
  out.chain = VerifyChain(in.chain, cache);
  const ChainEntry& e = *out.chain.entry;
  out.checks = e.checks;
  out.checks.push_back({"validity", true, "every certificate valid at the supplied time"});
  out.vek_table = VerifyReportSignature(in.report.data(), e.leaf_key);
  out.checks.push_back({"report_signature", true, "ECDSA P-384 SHA-384 over 0x000..0x29F"});
  if (in.crl) {
    X509CrlPtr crl = ParseCrl(in.crl->data(), in.crl->size());
    X509Ptr ark = ParseCert(e.anchor.der.data(), e.anchor.der.size());
    CrlResult r = CheckCrl(crl.get(), ark.get(), in.chain.at, in.crl_skew, {e.intermediate.serial_hex, e.vek.cert.serial_hex});
    if (!r.revoked.empty()) {
      std::string list;
      for (const auto& s : r.revoked) list += (list.empty() ? "" : ",") + s;
      Fail(kErrRevoked, "certificate serial(s) " + list + " listed in the ARK's CRL");
    }
    out.checks.push_back({"crl", true, "ARK-signed CRL fresh; intermediate and leaf not revoked"});
    out.crl = std::move(r);
  }
  return out;
}

}  // namespace tas
