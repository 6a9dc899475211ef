/**
 * The Intel TDX EvidenceVerifier (src/attest/verifier.ts): src/tdx (quote, native verify, TCB
 * appraisal, claims) joined with src/pcs (collateral cache). Like the SNP adapter it lives in the
 * composition root because it is exactly that join.
 *  - peek: native parse (no crypto) and which FMSPC / PCK CA the quote needs — 400 when malformed;
 *  - endorsements: fresh verified collateral from memory, the store or PCS — 503 + Retry-After
 *    when none can be had (the nonce is kept);
 *  - verify: every check at the current time — 400 definitive.
 */
import type { EvidenceVerifier, VerifiedEvidence } from '../attest';
import type { CollateralCache, CollateralOrOpen, CollateralUpdate } from '../pcs';
import type { Logger } from 'pino';
import { peekQuote, type TdxPeek, type TdxVerifier } from '../tdx/verify';

export interface TdxVerifierDeps {
  verifier(): TdxVerifier;
  cache: CollateralCache;
  update(): CollateralUpdate;
  /** Where a CRL passed over (TAS_CRL_FAIL_MODE=open) is also logged, as for AMD CRLs. */
  log?: Pick<Logger, 'warn'>;
}

export function tdxEvidenceVerifier(d: TdxVerifierDeps): EvidenceVerifier<TdxPeek, CollateralOrOpen> {
  return {
    tee: 'intel-tdx',
    policyType: 'TDX',
    peek: (quote) => peekQuote(quote),
    describe: (peek) => ({ quote_version: peek.quote.version, fmspc: peek.fmspc, pck_ca: peek.ca }),
    // tee-certificates are not used for TDX: the quote carries its PCK chain, collateral comes from PCS.
    endorsements: (_quote, peek) => d.cache.collateral(peek.fmspc, peek.ca, d.update()),
    describeEndorsements: (c) => ({ collateral_update: c.update, collateral_source: c.source }),
    async verify(quote, peek, c): Promise<VerifiedEvidence> {
      const v = await d.verifier().verify(quote, peek, c, new Date());
      for (const n of c.notes ?? []) d.log?.warn({ fmspc: peek.fmspc, pck_ca: peek.ca }, n);
      return {
        tee: 'intel-tdx',
        claims: v.claims,
        reportData: v.reportData,
        audit: {
          tcb_status: v.tcb.status, advisory_ids: v.tcb.advisoryIds, collateral_update: c.update,
          tcb_eval_data_number: v.tcb.evalNumber, fmspc: v.tcb.fmspc, mr_td: (v.claims.body as Record<string, unknown>).mr_td,
        },
        ...(c.notes?.length ? { notes: [...c.notes] } : {}),
      };
    },
  };
}
