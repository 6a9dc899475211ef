// The whole native verification of one report: parse, signer kind vs SIGNING_KEY, chain (cached),
// report signature, optional CRL. Binding of report fields to the certificate (TCB, CHIP_ID) and
// all policy decisions are the TypeScript snp layer's job.
#pragma once
#include <optional>

#include "chain.h"
#include "crl.h"
#include "report.h"

namespace tas {

struct VerifyInput {
  Bytes report;
  ChainInput chain;
  std::optional<Bytes> crl;
  int64_t crl_skew = 300;
};

struct VerifyOutcome {
  Report report;
  ChainOutcome chain;
  std::optional<CrlResult> crl;
  std::vector<Check> checks;
  bool vek_table = false;  // the report signature was checked with the VEK's precomputed table
};

VerifyOutcome Verify(const VerifyInput& in, ChainCache* cache);

}  // namespace tas
