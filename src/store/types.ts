/**
 * The state store: one small interface, two backends (embedded, Redis), one contract test suite
 * (test/store/contract.ts). Every state transition of a nonce is atomic in the store itself, so
 * that several daemons on one Redis agree on who claimed a nonce. Stores throw
 * TasError('STORE_UNAVAILABLE') when the backend cannot answer or confirm, never anything raw.
 */

/** NONCE_RE is the only shape a nonce may have (PROTOCOL.md §2); anything else never reaches a key. */
export const NONCE_RE = /^[0-9a-f]{64}$/;
/** POLICY_ID_RE is the policy id shape of PROTOCOL.md §1. */
export const POLICY_ID_RE = /^[A-Za-z0-9_.-]{1,128}$/;
/** BLOB_KEY_RE bounds certificate-cache keys (e.g. `vcek/Genoa/<hwid>/<tcb>`). */
export const BLOB_KEY_RE = /^[A-Za-z0-9_.:/=+-]{1,256}$/;
/** RATE_KEY_MAX bounds rate-limit keys (client addresses, IPv6 /64 prefixes, route names). */
export const RATE_KEY_MAX = 256;

/** IssueResult: `capacity` when the outstanding cap is reached, `exists` for a duplicate value. */
export type IssueResult = 'issued' | 'capacity' | 'exists';

/** ClaimResult: `invalid` covers unknown, expired, claimed (lease held) and consumed nonces alike. */
export type ClaimResult = 'claimed' | 'invalid';

/**
 * RateCharge is one request counted against a client's fixed-window budget (RateCounter.hit with
 * a limit) in the same store operation as a nonce issue: on Redis, one round trip instead of two.
 */
export interface RateCharge {
  /** The RateCounter key (the same counter the per-request hit uses). */
  readonly key: string;
  readonly windowMs: number;
  /** Hits allowed per window; beyond it the nonce is not issued. */
  readonly limit: number;
}

/** ChargedIssue is the outcome of issueCharged: `limited` when the charge exceeded the budget. */
export interface ChargedIssue {
  readonly result: IssueResult | 'limited';
  /** The window after this hit (count includes it). */
  readonly hit: RateHit;
}

/** NonceStore holds the nonce state machine issued -> claimed -> consumed | back to issued. */
export interface NonceStore {
  /** issue records a new nonce valid for ttlMs, unless maxOutstanding unexpired nonces exist. */
  issue(nonce: string, ttlMs: number, maxOutstanding: number): Promise<IssueResult>;
  /**
   * issueCharged counts one hit of `charge` (always, like RateCounter.hit) and then, unless the
   * window's count exceeds charge.limit (`limited`: nothing issued), issues like issue(). Only for
   * a store that is also the RateCounter of the daemon, so the budget is the one every route uses.
   */
  issueCharged?(nonce: string, ttlMs: number, maxOutstanding: number, charge: RateCharge): Promise<ChargedIssue>;
  /**
   * claim moves an issued, unexpired nonce to claimed by owner for leaseMs. A claimed nonce
   * whose lease ran out counts as issued again (its holder died), so it can be claimed anew.
   */
  claim(nonce: string, owner: string, leaseMs: number): Promise<ClaimResult>;
  /**
   * consume ends a nonce claimed by owner, atomically checking that owner still holds it; false
   * when it does not (its lease lapsed and another request claimed it, or it was released,
   * consumed by another owner or expired). The caller sends a secret only after `true`.
   *
   * Idempotent for its owner: a consume leaves a consumed-by-owner marker (kept about as long as
   * the claim's lease, see CONSUMED_MARKER_MIN_MS), so when the reply to a consume is lost (the
   * connection died after the store applied it) the owner's retry answers `true` again instead
   * of `false` — it can tell its own consume from a lost claim.
   */
  consume(nonce: string, owner: string): Promise<boolean>;
  /**
   * unconsume undoes owner's consume when the secret was NOT sent (the consume's outcome could
   * not be confirmed in time and the request answered 503): the nonce returns to issued with its
   * original expiry and the marker is removed, so the agent's retry with the same nonce succeeds.
   * False when there is no marker of owner's (never consumed by owner, or the marker lapsed), the
   * nonce exists again, or its expiry has passed.
   */
  unconsume(nonce: string, owner: string): Promise<boolean>;
  /**
   * forgetConsumed says that owner has learned the outcome of its consume of nonce and will
   * neither repeat it nor unconsume: the consumed-by-owner marker has done its work. The embedded
   * store drops it at once (held for the lease, markers would take request rate x lease of the
   * daemon's memory); the Redis store lets it lapse with its TTL (deleting it would cost a command
   * per attestation for memory Redis frees anyway). Only owner's marker is touched and the nonce
   * stays consumed; after this, what a repeated consume or an unconsume by owner answers is up to
   * the store. Never waits and never throws (a malformed nonce or owner is ignored).
   */
  forgetConsumed(nonce: string, owner: string): void;
  /** release returns a nonce claimed by owner to issued with its ORIGINAL expiry; false when not held. */
  release(nonce: string, owner: string): Promise<boolean>;
  /** count is the number of outstanding (issued or claimed, unexpired) nonces. */
  count(): Promise<number>;
}

/** PutResult of a create-only policy write. */
export type PutResult = 'created' | 'exists';

/** StoredPolicy is one policy document as the policy module handed it over (opaque text). */
export interface StoredPolicy {
  readonly id: string;
  /** The document text exactly as stored (the store never parses or rewrites it). */
  readonly doc: string;
}

/** PolicyStore keeps policy documents by id; create-only so that a second store is a 409. */
export interface PolicyStore {
  /** putPolicy stores doc under id unless the id exists. Ids not matching POLICY_ID_RE throw POLICY_ID_INVALID. */
  putPolicy(id: string, doc: string): Promise<PutResult>;
  getPolicy(id: string): Promise<string | undefined>;
  /** deletePolicy returns false when there was no such policy. */
  deletePolicy(id: string): Promise<boolean>;
  /** listPolicies returns every policy, sorted by id. */
  listPolicies(): Promise<StoredPolicy[]>;
  /** policyGeneration changes whenever a policy is created or deleted (cache invalidation across a fleet). */
  policyGeneration(): Promise<number>;
}

/** BlobStore is a small key -> bytes cache with optional expiry (certificates, CRLs). */
export interface BlobStore {
  getBlob(key: string): Promise<Buffer | undefined>;
  /** putBlob replaces the value; ttlSeconds undefined = keep until replaced. */
  putBlob(key: string, value: Buffer, ttlSeconds?: number): Promise<void>;
}

/** RateHit is the state of a fixed window after one hit. */
export interface RateHit {
  /** Hits in the current window, this one included. */
  readonly count: number;
  /** Milliseconds until the window resets. */
  readonly resetMs: number;
}

/** RateCounter counts hits per key in fixed windows; on Redis the budget is shared by the fleet. */
export interface RateCounter {
  hit(key: string, windowMs: number): Promise<RateHit>;
}

/** StoreInfo is what /management/status shows. */
export interface StoreInfo {
  readonly backend: 'embedded' | 'redis';
  /** Where state persists: a directory, or the Redis topology (never credentials). */
  readonly persistence: string;
}

/**
 * CONSUMED_MARKER_MIN_MS is the least time a consumed-by-owner marker is kept; it is kept until
 * the end of the claim's lease when that is later. The pipeline's consume retries and its
 * background hand-back run within the lease, so the marker outlives every use of it.
 */
export const CONSUMED_MARKER_MIN_MS = 10_000;

/** Store is everything the daemon keeps outside one request. */
export interface Store extends NonceStore, PolicyStore, BlobStore, RateCounter {
  readonly info: StoreInfo;
  /**
   * opTimeoutMs is the longest one operation can take before it answers or throws
   * STORE_UNAVAILABLE (every timeout and internal retry of the backend included). The nonce claim
   * lease is derived from it (src/attest/lease.ts): it must outlive every store call made
   * while a claim is held.
   */
  readonly opTimeoutMs: number;
  /** health returns undefined when the store answers, else a short reason (for /readyz). */
  health(): Promise<string | undefined>;
  close(): Promise<void>;
}
