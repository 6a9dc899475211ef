/**
 * The nonce claim lease, derived from the timeouts of everything a request does while it holds a
 * claim (DESIGN.md: "the lease must outlive every timeout inside it").
 *
 * A lease that lapses while its holder is still working lets a replay claim the nonce anew. The
 * store's consume is owner-checked and atomic, so even then only one request can send the secret
 * (the other answers 503 NONCE_CLAIM_LOST) — but the lapse is still a failure for a legitimate
 * agent. The lease therefore covers, with a margin, every bounded step between the claim and the
 * consume:
 *
 *   claim confirmation (Redis WAIT) + policy read                      2 store operations
 *   component appraisal (GPU evidence: OCSP, RIM), when configured      componentsMs
 *   the action (key backend call, bounded by KbmService)               actionMs
 *   consume, retried after a lost reply                                 CONSUME_ATTEMPTS store operations + the pauses
 *
 * and then adds max(LEASE_MARGIN_MIN_MS, 25 %) for the CPU work between them (policy signature
 * re-checks, rule evaluation) on a loaded host. The price of a long lease is paid only when a
 * claimant dies (daemon crash): the agent's retry of that nonce then waits for the lease, or
 * starts over with get_nonce.
 */

/** CONSUME_ATTEMPTS is how often the pipeline tries a consume whose outcome it could not learn. */
export const CONSUME_ATTEMPTS = 3;
/** Pauses between consume attempts (ms); CONSUME_ATTEMPTS - 1 of them. */
export const CONSUME_RETRY_PAUSES_MS: readonly number[] = [250, 750];
/** LEASE_MARGIN_MIN_MS is the least margin over the sum of the timeouts inside a claim. */
export const LEASE_MARGIN_MIN_MS = 5_000;
/** Store operations a request makes while it holds a claim, besides its consume attempts. */
const STORE_OPS_BEFORE_CONSUME = 2;

/** ClaimTimeouts are the bounds of the steps made while a claim is held. */
export interface ClaimTimeouts {
  /** Longest one store operation can take (Store.opTimeoutMs). */
  readonly storeOpMs: number;
  /** Longest the action can take (KbmService.timeoutMs for get_secret). */
  readonly actionMs: number;
  /** Longest component appraisal can take (0 or absent: none configured). */
  readonly componentsMs?: number;
}

/** insideClaimMs is the sum of every timeout inside a claim (no margin). */
export function insideClaimMs(t: ClaimTimeouts): number {
  for (const [k, v] of Object.entries(t)) {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new Error(`claim lease: ${k} must be a finite, non-negative number of ms`);
  }
  const pauses = CONSUME_RETRY_PAUSES_MS.reduce((a, b) => a + b, 0);
  return (STORE_OPS_BEFORE_CONSUME + CONSUME_ATTEMPTS) * t.storeOpMs + t.actionMs + (t.componentsMs ?? 0) + pauses;
}

/** claimLeaseMs is the lease: every timeout inside the claim plus max(LEASE_MARGIN_MIN_MS, 25 %). */
export function claimLeaseMs(t: ClaimTimeouts): number {
  const inside = insideClaimMs(t);
  return Math.ceil(inside + Math.max(LEASE_MARGIN_MIN_MS, inside / 4));
}
