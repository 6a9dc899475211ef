/**
 * Per-client rate limiting (TAS_CLIENT_RATE_LIMIT, fixed windows). The counter lives behind
 * RateLimitStore so that a Redis store can make the budget fleet-wide; the in-memory store is the
 * single-node default.
 */
import { TasError } from '../errors';

/** RateLimitStore counts hits per key in fixed windows. */
export interface RateLimitStore {
  /**
   * hit counts one request for `key` in the current window of `windowMs` and returns the count
   * including this hit and the milliseconds until the window resets.
   */
  hit(key: string, windowMs: number): Promise<{ count: number; resetMs: number }>;
  /**
   * True when this counter lives in the same store as the nonces, so get_nonce may count its hit
   * inside the nonce issue (NonceService.issue(charge)): one store operation instead of two.
   */
  readonly chargesWithNonces?: boolean;
}

/** RateCharge is a deferred hit (the store module's RateCharge shape). */
export interface DeferredCharge {
  readonly key: string;
  readonly windowMs: number;
  readonly limit: number;
}

/** Rate is a parsed `N/second|minute|hour`. */
export interface Rate {
  readonly limit: number;
  readonly windowMs: number;
}

const UNITS: Record<string, number> = { second: 1000, minute: 60_000, hour: 3_600_000 };

/** parseRate parses `200/minute` (also `200/min`, `10/s`, `1000/hour`); throws with a precise message. */
export function parseRate(text: string): Rate {
  const m = /^\s*(\d{1,9})\s*\/\s*(second|sec|s|minute|min|m|hour|h)\s*$/i.exec(text);
  if (!m) throw new Error(`must look like 200/minute (N/second, N/minute or N/hour), got '${text}'`);
  const unit = m[2]!.toLowerCase();
  const key = unit.startsWith('s') ? 'second' : unit.startsWith('m') ? 'minute' : 'hour';
  const limit = Number(m[1]);
  if (limit < 1) throw new Error('the limit must be at least 1');
  return { limit, windowMs: UNITS[key]! };
}

/**
 * MemoryRateLimitStore keeps fixed windows in a Map. Memory is bounded by `maxKeys`: expired
 * windows are swept first; if an attacker spreads over more /64s than that, the oldest windows
 * are dropped (their clients get a fresh budget), which bounds memory at the cost of precision.
 */
export class MemoryRateLimitStore implements RateLimitStore {
  private readonly windows = new Map<string, { count: number; resetAt: number }>();
  constructor(private readonly maxKeys = 100_000, private readonly now: () => number = Date.now) {}

  async hit(key: string, windowMs: number): Promise<{ count: number; resetMs: number }> {
    const t = this.now();
    let w = this.windows.get(key);
    if (!w || w.resetAt <= t) {
      if (w) this.windows.delete(key);
      if (this.windows.size >= this.maxKeys) this.evict(t);
      w = { count: 0, resetAt: t + windowMs };
      this.windows.set(key, w);
    }
    w.count++;
    return { count: w.count, resetMs: w.resetAt - t };
  }

  /** size is the number of tracked keys (tests, metrics). */
  get size(): number {
    return this.windows.size;
  }

  private evict(t: number): void {
    for (const [k, w] of this.windows) if (w.resetAt <= t) this.windows.delete(k);
    for (const k of this.windows.keys()) {
      if (this.windows.size < this.maxKeys) break;
      this.windows.delete(k);
    }
  }
}

/** RateLimiter applies a Rate through a store. */
export class RateLimiter {
  constructor(private rate: Rate, private readonly store: RateLimitStore) {}

  /** setRate replaces the rate (configuration reload). */
  setRate(rate: Rate): void {
    this.rate = rate;
  }

  /** chargesWithNonces: see RateLimitStore.chargesWithNonces. */
  get chargesWithNonces(): boolean {
    return this.store.chargesWithNonces === true;
  }

  /** charge is the hit of `key` for a store operation to count (deferred; see settle). */
  charge(key: string): DeferredCharge {
    return { key: `rl:${key}`, windowMs: this.rate.windowMs, limit: this.rate.limit };
  }

  /** check counts one request for `key`; throws HTTP_RATE_LIMITED (429 + Retry-After) beyond the limit. */
  async check(key: string): Promise<void> {
    return this.settle(this.charge(key));
  }

  /** settle counts a deferred charge that no store operation counted (the request failed before it). */
  async settle(c: DeferredCharge): Promise<void> {
    let r: { count: number; resetMs: number };
    try {
      r = await this.store.hit(c.key, c.windowMs);
    } catch (e) {
      // Fail closed: an unreachable shared counter must not silently lift the fleet-wide budget.
      if (e instanceof TasError) throw e;
      throw new TasError('STORE_UNAVAILABLE', `rate limit store: ${(e as Error).message}`, { reason: 'RATE_LIMIT_STORE', cause: e });
    }
    if (r.count > c.limit) {
      throw new TasError('HTTP_RATE_LIMITED', `client ${c.key.slice(3)} exceeded ${c.limit} requests per ${c.windowMs / 1000}s`, {
        retryAfterSeconds: Math.max(1, Math.ceil(r.resetMs / 1000)),
      });
    }
  }
}
