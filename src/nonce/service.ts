/**
 * NonceService runs the nonce life cycle of PROTOCOL.md §2 over a NonceStore:
 * issued (TTL TAS_NONCE_EXPIRATION_SECONDS) -> claimed (by exactly one request, with an owner and
 * a short lease) -> consumed, or released back to issued with its original expiry when the
 * request failed transiently. The store does every transition atomically; this class generates
 * the values, checks their format before any store call, and maps outcomes to catalogue errors.
 */
import { hash, randomBytes, randomFillSync } from 'node:crypto';
import type { Logger } from 'pino';
import type { Config } from '../config';
import { TasError } from '../errors';
import type { IssueResult, NonceStore, RateCharge } from '../store/types';
import { NONCE_RE } from '../store/types';

/** DEFAULT_LEASE_MS bounds how long a dead claimant blocks a nonce (its retry waits for it). */
export const DEFAULT_LEASE_MS = 30_000;
/** Longest raw nonce field examined (64 hex + two quotes); longer input is refused unread. */
const RAW_MAX = 66;

export interface NonceOptions {
  ttlSeconds: number;
  maxOutstanding: number;
  /** Claim lease; the key backend call must finish within it. */
  leaseMs?: number;
  log?: Logger;
}

/** NonceClaim is a nonce held by one request: it must end in consume() or release(). */
export interface NonceClaim {
  readonly nonce: string;
  readonly owner: string;
  /** consume ends the nonce; false when the lease had lapsed and another request took it. */
  consume(): Promise<boolean>;
  /** release returns the nonce to issued (original expiry) so the agent's retry can use it. */
  release(): Promise<boolean>;
}

/** parseNonce strips one pair of surrounding JSON quotes (agents send `"\"ab12…\""`) and checks the format. */
export function parseNonce(raw: unknown): string {
  if (typeof raw !== 'string' || raw.length > RAW_MAX) {
    throw new TasError('NONCE_FORMAT', `nonce is ${typeof raw === 'string' ? `${raw.length} characters long` : `a ${typeof raw}`}`);
  }
  const n = raw.length >= 2 && raw.startsWith('"') && raw.endsWith('"') ? raw.slice(1, -1) : raw;
  if (!NONCE_RE.test(n)) throw new TasError('NONCE_FORMAT', 'nonce is not 64 lowercase hex characters');
  return n;
}

/** nonceDigest is what logs and audit records may carry instead of a nonce: a SHA-256 prefix. */
export function nonceDigest(nonce: string): string {
  return hash('sha256', nonce, 'hex').slice(0, 16);
}

/**
 * Nonces are cut from a pool of CSPRNG output filled 4 KiB at a time (as node:crypto's
 * randomUUID does): one draw from OpenSSL's DRBG, with its lock and fork check, per 128 nonces
 * instead of per nonce (#16). A byte range is wiped once handed out; the pool holds nothing an
 * attacker could use that the DRBG state would not hold anyway.
 */
const NONCE_BYTES = 32;
const noncePool = Buffer.alloc(NONCE_BYTES * 128);
let noncePoolUsed = noncePool.length;

/** freshNonce returns 64 lowercase hex characters of 32 unused random bytes. */
export function freshNonce(): string {
  if (noncePoolUsed === noncePool.length) {
    randomFillSync(noncePool);
    noncePoolUsed = 0;
  }
  const start = noncePoolUsed;
  noncePoolUsed += NONCE_BYTES;
  const hex = noncePool.toString('hex', start, noncePoolUsed);
  noncePool.fill(0, start, noncePoolUsed);
  return hex;
}

/** NonceService issues and tracks nonces. */
export class NonceService {
  private ttlMs: number;
  private maxOutstanding: number;
  private readonly leaseMs: number;

  private readonly log: Logger | undefined;

  constructor(private readonly store: NonceStore, opts: NonceOptions) {
    this.log = opts.log;
    this.ttlMs = opts.ttlSeconds * 1000;
    this.maxOutstanding = opts.maxOutstanding;
    this.leaseMs = opts.leaseMs ?? DEFAULT_LEASE_MS;
  }

  /** fromConfig reads nonce.ttl_seconds and nonce.max_outstanding. */
  static fromConfig(cfg: Config, store: NonceStore, extra: { leaseMs?: number; log?: Logger } = {}): NonceService {
    return new NonceService(store, { ttlSeconds: cfg.get<number>('nonce.ttl_seconds'), maxOutstanding: cfg.get<number>('nonce.max_outstanding'), ...extra });
  }

  /** reload applies new TTL and cap to nonces issued from now on. */
  reload(cfg: Config): void {
    this.ttlMs = cfg.get<number>('nonce.ttl_seconds') * 1000;
    this.maxOutstanding = cfg.get<number>('nonce.max_outstanding');
  }

  /** chargesRate: issue(charge) counts the client's rate budget in the same store operation. */
  get chargesRate(): boolean {
    return typeof this.store.issueCharged === 'function';
  }

  /**
   * issue returns a fresh nonce (64 lowercase hex of 32 random bytes); NONCE_CAPACITY over the cap.
   * With `charge` (only when chargesRate), the request is first counted against the client's rate
   * budget in the same store operation, and HTTP_RATE_LIMITED is thrown beyond it (nothing issued).
   */
  async issue(charge?: RateCharge): Promise<string> {
    if (charge !== undefined && !this.chargesRate) throw new TasError('INTERNAL', 'nonce store cannot charge a rate budget');
    // A collision of 256 random bits does not happen; the loop only keeps 'exists' from leaking out.
    for (let i = 0; i < 3; i++) {
      const nonce = freshNonce();
      let r: IssueResult;
      if (charge !== undefined && i === 0) {
        const c = await this.store.issueCharged!(nonce, this.ttlMs, this.maxOutstanding, charge);
        if (c.result === 'limited') {
          throw new TasError('HTTP_RATE_LIMITED', `${charge.key} exceeded ${charge.limit} requests per ${charge.windowMs / 1000}s`, {
            retryAfterSeconds: Math.max(1, Math.ceil(c.hit.resetMs / 1000)),
          });
        }
        r = c.result;
      } else {
        r = await this.store.issue(nonce, this.ttlMs, this.maxOutstanding);
      }
      if (r === 'issued') return nonce;
      if (r === 'capacity') {
        throw new TasError('NONCE_CAPACITY', `${this.maxOutstanding} nonces outstanding (TAS_NONCE_MAX_OUTSTANDING)`, {
          retryAfterSeconds: Math.min(60, Math.max(1, Math.ceil(this.ttlMs / 10_000))),
        });
      }
    }
    throw new TasError('INTERNAL', 'nonce store reported three collisions of 256-bit random values');
  }

  /**
   * claim takes the nonce for `owner` (the attest pipeline's port shape). Call it only after the
   * input is validated and the evidence verified (PROTOCOL.md §2). Throws NONCE_FORMAT for a
   * malformed value (the store is not touched); false for an unknown, expired, claimed or
   * consumed nonce.
   */
  async claim(rawNonce: unknown, owner: string): Promise<boolean> {
    const nonce = parseNonce(rawNonce);
    return (await this.store.claim(nonce, owner, this.leaseMs)) === 'claimed';
  }

  /**
   * consume ends a nonce owner holds; false when the claim was lost (lease lapsed and another
   * request took it, or it expired): the caller must then not send the secret. True again for a
   * repeated consume by the same owner (its first reply was lost). Store trouble throws.
   */
  async consume(nonce: string, owner: string): Promise<boolean> {
    const ok = await this.store.consume(parseNonce(nonce), owner);
    if (!ok) this.log?.warn({ nonce_sha256: nonceDigest(nonce) }, 'nonce consume: the claim was no longer held (lease lapsed?)');
    return ok;
  }

  /** unconsume undoes owner's consume when the secret was not sent (see NonceStore.unconsume). */
  async unconsume(nonce: string, owner: string): Promise<boolean> {
    return this.store.unconsume(parseNonce(nonce), owner);
  }

  /**
   * forgetConsumed: owner has its consume's answer and will not repeat or undo it; the store may
   * drop its consumed-by-owner marker (see NonceStore.forgetConsumed).
   */
  forgetConsumed(nonce: string, owner: string): void {
    let n: string;
    try {
      n = parseNonce(nonce);
    } catch {
      return; // never consumed, so nothing to forget
    }
    this.store.forgetConsumed(n, owner);
  }

  /** leaseMs is the claim lease (derived from the timeouts inside a claim, src/attest/lease.ts). */
  get lease(): number {
    return this.leaseMs;
  }

  /** release returns a nonce owner holds to issued with its original expiry (transient failure). */
  async release(nonce: string, owner: string): Promise<void> {
    if (!(await this.store.release(parseNonce(nonce), owner))) {
      this.log?.warn({ nonce_sha256: nonceDigest(nonce) }, 'nonce release: the claim was no longer held (lease lapsed?)');
    }
  }

  /**
   * take claims under a fresh owner id and returns a handle; NONCE_INVALID when it cannot be
   * claimed. The handle's consume/release report whether the claim was still held.
   */
  async take(rawNonce: unknown): Promise<NonceClaim> {
    const nonce = parseNonce(rawNonce);
    const owner = randomBytes(12).toString('hex');
    if ((await this.store.claim(nonce, owner, this.leaseMs)) !== 'claimed') {
      throw new TasError('NONCE_INVALID', `nonce ${nonceDigest(nonce)} is unknown, expired, claimed or consumed`);
    }
    return {
      nonce,
      owner,
      consume: () => this.store.consume(nonce, owner),
      release: () => this.store.release(nonce, owner),
    };
  }

  /** outstanding is the number of issued or claimed, unexpired nonces. */
  outstanding(): Promise<number> {
    return this.store.count();
  }
}
