/**
 * Test helpers for the TDX layer: a genuine vector's collateral as the verifier's input, and a
 * typed view of the claim groups tests read.
 */
import type { CollateralSet } from '../../src/tdx/verify.js';
import type { TdxVector } from './tdx-vectors.js';

/** ClaimsView types the claim groups tests read. */
export interface ClaimsView {
  [k: string]: unknown;
  header: Record<string, string | number>;
  body: Record<string, string>;
  tcb: Record<string, string>;
  td: Record<string, boolean>;
  signature_data: { qe_cert_data: { qe_report: Record<string, string | number> } };
}

export function collateralOf(v: TdxVector, over: Partial<CollateralSet> = {}): CollateralSet {
  return {
    tcbInfo: { body: v.tcbInfoJson, chain: v.tcbInfoChain },
    qeIdentity: { body: v.qeIdentityJson, chain: v.qeIdentityChain },
    pckCrl: { body: v.pckCrl, chain: v.pckCrlChain },
    rootCrl: { body: v.rootCrl },
    update: 'standard',
    ...over,
  };
}
