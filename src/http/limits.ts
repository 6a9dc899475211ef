/**
 * Bounds of the edge: body sizes per route, header sizes, server timeouts and the in-flight cap.
 * Every number here is a DoS bound; the comments say why it has its value.
 */
import { TasError } from '../errors';

/**
 * Body limits (PROTOCOL.md §2): a get_secret body without GPUs is a few KiB (report + key +
 * certificates); `component-evidence` for the maximum of 16 GPUs is about 260 KiB (~16 KiB each).
 */
export const bodyLimit = {
  getSecret: 512 * 1024,
  management: 1024 * 1024,
  /** Routes without a body still get a small bound. */
  default: 16 * 1024,
} as const;

/** serverLimits are the Node http server settings that cut slow or oversized clients. */
export const serverLimits = {
  /**
   * Whole header block must arrive within this (slow-loris on headers). Short: an agent sends its
   * head in one write, and every header-incomplete connection holds a slot of its peer's cap.
   */
  headersTimeoutMs: 5_000,
  /** Whole request (headers + body) must arrive within this. */
  requestTimeoutMs: 30_000,
  /** Idle keep-alive connections are closed after this. */
  keepAliveTimeoutMs: 5_000,
  /** How often Node checks the two timeouts above. */
  connectionsCheckingIntervalMs: 1_000,
  /** Socket inactivity bound (no bytes either way). */
  socketTimeoutMs: 60_000,
  /** Total header bytes (Node answers 431 / closes beyond). */
  maxHeaderSize: 16 * 1024,
  /** Headers beyond this count are dropped by Node. */
  maxHeadersCount: 100,
  /** Open connections per listener. */
  maxConnections: 1024,
  /**
   * Open connections per peer (IPv4 address or IPv6 /64; src/http/connections.ts). An agent uses
   * one per request; 128 leaves room for a NAT in front of a rack of VMs booting at once, and 8
   * peers cannot fill maxConnections alone.
   */
  maxConnectionsPerPeer: 128,
  /**
   * Connections per peer that have not delivered a complete request head a second after their
   * accept (slow-loris, half-open floods); a burst of fresh connections is bounded by the open cap.
   */
  maxHeaderIncompletePerPeer: 16,
  /** How long a fresh connection may take for its head before it counts as header-incomplete. */
  headerGraceMs: 1_000,
  /** Open connections per trusted proxy (TAS_TRUSTED_PROXIES): it carries many clients, but never all slots. */
  maxConnectionsPerProxy: 768,
  /** Header-incomplete connections per trusted proxy. */
  maxHeaderIncompletePerProxy: 256,
  /** Requests per keep-alive connection before it is closed (spreads load, bounds one client). */
  maxRequestsPerSocket: 1000,
} as const;

export type ServerLimits = { -readonly [K in keyof typeof serverLimits]: number };

/**
 * InflightLimiter bounds the requests in verification and at the key backend (TAS_MAX_INFLIGHT).
 * Beyond the cap a request is refused at once with 503 + Retry-After rather than queued: a queue
 * in front of a slow backend only converts overload into client timeouts and retries.
 */
export class InflightLimiter {
  private active = 0;
  /** refused counts requests turned away (exported as a metric). */
  refused = 0;

  constructor(private max: number) {}

  /** setMax changes the cap (reload); running requests are not affected. */
  setMax(max: number): void {
    this.max = max;
  }

  get inflight(): number {
    return this.active;
  }

  get capacity(): number {
    return this.max;
  }

  /** run executes fn inside a slot, or throws HTTP_OVERLOADED when all slots are taken. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.max) {
      this.refused++;
      throw new TasError('HTTP_OVERLOADED', `${this.active} requests in flight (TAS_MAX_INFLIGHT=${this.max})`, { retryAfterSeconds: 1 });
    }
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
    }
  }
}
