/**
 * The KDS fetcher (undici). AMD throttles to about one request per chip and TCB every 10 s and has
 * hours-long outages (SNP.md §3, §5.7), so every request obeys:
 *  - single flight: concurrent misses for one URL share one upstream request;
 *  - a token bucket of one request per URL per `perUrlIntervalMs` plus a global rate;
 *  - 429/503 honour Retry-After (seconds or HTTP date); other 5xx, timeouts and connection errors
 *    back off exponentially with jitter, always inside the caller's deadline;
 *  - 404 is not retried and is negatively cached briefly (KDS 404 glitches are real);
 *  - connect and overall timeouts; bounded response size.
 * When nothing can be had inside the deadline the caller gets KDS_UNAVAILABLE with a Retry-After
 * equal to the earliest moment a retry could succeed, so the agent's retry is not wasted.
 *
 * The same rules serve Intel PCS (src/pcs): `service` names the upstream, its error code and its
 * offline setting; `fetch` also returns the response headers (PCS issuer chains travel there).
 */
import { readFileSync } from 'node:fs';
import { Agent, ProxyAgent, request, type Dispatcher } from 'undici';
import { TasError, type ErrorCode } from '../errors';
import { joinUrl } from './urls';

/** Upstream names the service a fetcher talks to (error code, messages, offline setting). */
export interface Upstream {
  name: string;
  code: ErrorCode;
  offlineSetting: string;
}

const KDS: Upstream = { name: 'KDS', code: 'KDS_UNAVAILABLE', offlineSetting: 'TAS_KDS_OFFLINE' };

export interface FetcherOptions {
  baseUrl: string;
  /** Which upstream (default AMD KDS). */
  service?: Upstream;
  proxy?: string | undefined;
  caFile?: string | undefined;
  offline?: boolean;
  connectTimeoutMs?: number;
  /** Per attempt: headers and body must arrive within this. */
  attemptTimeoutMs?: number;
  /** Minimum spacing of requests to one URL (AMD: one per chip+TCB per 10 s). */
  perUrlIntervalMs?: number;
  /** Global requests per second to KDS. */
  globalPerSecond?: number;
  /** How long a 404 is remembered. */
  negativeTtlMs?: number;
  maxBodyBytes?: number;
  /** Observer for metrics: one call per upstream attempt. */
  onAttempt?: (status: string) => void;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

export interface FetchOptions {
  /** Absolute deadline (epoch ms) for this call, retries included. */
  deadline: number;
}

/** KdsNotFound marks an upstream 404 (the caller decides what it means). */
export class KdsNotFound extends TasError {
  constructor(url: string, retryAfterSeconds: number, service: Upstream = KDS) {
    super(service.code, `${service.name} answered 404 for ${url}`, { reason: `${service.name}_NOT_FOUND`, retryAfterSeconds });
  }
}

/** Fetched is a 200 answer: body and (lower-cased) headers. */
export interface Fetched {
  body: Buffer;
  headers: Readonly<Record<string, string | undefined>>;
}

const defaultSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref?.());

export class KdsFetcher {
  private readonly o: Required<Omit<FetcherOptions, 'proxy' | 'caFile' | 'onAttempt'>> & Pick<FetcherOptions, 'onAttempt'>;
  private readonly dispatcher: Dispatcher;
  private readonly inflight = new Map<string, Promise<Fetched>>();
  /** Earliest time (epoch ms) the next request to a URL may leave. */
  private readonly nextAllowed = new Map<string, number>();
  private readonly negative = new Map<string, number>();
  private globalTokens: number;
  private globalRefill: number;

  constructor(opts: FetcherOptions) {
    this.o = {
      baseUrl: opts.baseUrl,
      service: opts.service ?? KDS,
      offline: opts.offline ?? false,
      connectTimeoutMs: opts.connectTimeoutMs ?? 5_000,
      attemptTimeoutMs: opts.attemptTimeoutMs ?? 10_000,
      perUrlIntervalMs: opts.perUrlIntervalMs ?? 10_000,
      globalPerSecond: opts.globalPerSecond ?? 5,
      negativeTtlMs: opts.negativeTtlMs ?? 60_000,
      maxBodyBytes: opts.maxBodyBytes ?? 256 * 1024,
      now: opts.now ?? Date.now,
      sleep: opts.sleep ?? defaultSleep,
      random: opts.random ?? Math.random,
      onAttempt: opts.onAttempt,
    };
    const ca = opts.caFile ? readFileSync(opts.caFile) : undefined;
    const connect = { timeout: this.o.connectTimeoutMs, ...(ca ? { ca } : {}) };
    this.dispatcher = opts.proxy
      ? new ProxyAgent({ uri: opts.proxy, connect, requestTls: ca ? { ca } : {} })
      : new Agent({ connect, keepAliveTimeout: 30_000, connections: 8 });
    this.globalTokens = this.o.globalPerSecond;
    this.globalRefill = this.o.now();
  }

  /** url is the absolute URL of a path (an absolute http(s) URL is taken as is). */
  url(path: string): string {
    return /^https?:\/\//.test(path) ? path : joinUrl(this.o.baseUrl, path);
  }

  /** get fetches one path (single flight per URL). */
  async get(path: string, f: FetchOptions): Promise<Buffer> {
    return (await this.fetch(path, f)).body;
  }

  /** fetch fetches one path with its headers (single flight per URL). */
  fetch(path: string, f: FetchOptions): Promise<Fetched> {
    const svc = this.o.service;
    if (this.o.offline) {
      return Promise.reject(new TasError(svc.code, `${svc.offlineSetting} is set; ${path} is not cached`, { reason: `${svc.name}_OFFLINE`, retryAfterSeconds: 60 }));
    }
    const url = this.url(path);
    const running = this.inflight.get(url);
    if (running) return running;
    const p = this.fetchWithRetry(url, f).finally(() => this.inflight.delete(url));
    this.inflight.set(url, p);
    return p;
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }

  private unavailable(url: string, why: string, retryAtMs: number): TasError {
    const secs = Math.max(1, Math.ceil((retryAtMs - this.o.now()) / 1000));
    const svc = this.o.service;
    return new TasError(svc.code, `${svc.name} ${url}: ${why}`, { reason: `${svc.name}_UNAVAILABLE`, retryAfterSeconds: secs });
  }

  private async fetchWithRetry(url: string, f: FetchOptions): Promise<Fetched> {
    const neg = this.negative.get(url);
    if (neg !== undefined && neg > this.o.now()) throw new KdsNotFound(url, Math.ceil((neg - this.o.now()) / 1000), this.o.service);
    let attempt = 0;
    let lastWhy = 'no attempt possible inside the deadline';
    for (;;) {
      // Per-URL spacing and the global budget decide when this attempt may leave.
      const at = Math.max(this.nextAllowed.get(url) ?? 0, this.o.now());
      const globalWait = this.takeGlobal();
      const leave = Math.max(at, this.o.now() + globalWait);
      if (leave >= f.deadline) throw this.unavailable(url, lastWhy, leave);
      if (leave > this.o.now()) await this.o.sleep(leave - this.o.now());
      this.nextAllowed.set(url, this.o.now() + this.o.perUrlIntervalMs);
      attempt++;
      let res: { status: number; body: Buffer; retryAfter: string | undefined; headers: Record<string, string | undefined> };
      try {
        res = await this.once(url, Math.min(this.o.attemptTimeoutMs, Math.max(1, f.deadline - this.o.now())));
      } catch (e) {
        this.o.onAttempt?.('error');
        lastWhy = `request failed: ${(e as Error).message}`;
        await this.backoff(url, attempt, f.deadline, lastWhy);
        continue;
      }
      this.o.onAttempt?.(String(res.status));
      if (res.status === 200) return { body: res.body, headers: res.headers };
      if (res.status === 404) {
        this.negative.set(url, this.o.now() + this.o.negativeTtlMs);
        throw new KdsNotFound(url, Math.ceil(this.o.negativeTtlMs / 1000), this.o.service);
      }
      lastWhy = `HTTP ${res.status}`;
      if (res.status === 429 || res.status === 503) {
        const ra = parseRetryAfter(res.retryAfter, this.o.now());
        if (ra !== undefined) {
          const until = this.o.now() + ra;
          this.nextAllowed.set(url, Math.max(this.nextAllowed.get(url) ?? 0, until));
          if (until >= f.deadline) throw this.unavailable(url, `${lastWhy}, Retry-After ${res.retryAfter}`, until);
          continue;
        }
      }
      if (res.status >= 500 || res.status === 429 || res.status === 408) {
        await this.backoff(url, attempt, f.deadline, lastWhy);
        continue;
      }
      // Other statuses (400, 403, ...) will not change by retrying inside this request.
      throw this.unavailable(url, lastWhy, this.o.now() + this.o.perUrlIntervalMs);
    }
  }

  /** backoff: exponential with full jitter, never beyond the deadline (the loop re-checks it). */
  private async backoff(url: string, attempt: number, deadline: number, why: string): Promise<void> {
    const base = Math.min(8_000, 250 * 2 ** (attempt - 1));
    const wait = Math.floor(base / 2 + this.o.random() * (base / 2));
    const until = this.o.now() + wait;
    this.nextAllowed.set(url, Math.max(this.nextAllowed.get(url) ?? 0, until));
    if (until >= deadline) throw this.unavailable(url, why, Math.max(until, this.nextAllowed.get(url) ?? 0));
  }

  /** takeGlobal returns how long to wait for a global token (and takes it). */
  private takeGlobal(): number {
    const now = this.o.now();
    const rate = this.o.globalPerSecond;
    this.globalTokens = Math.min(rate, this.globalTokens + ((now - this.globalRefill) / 1000) * rate);
    this.globalRefill = now;
    this.globalTokens -= 1;
    return this.globalTokens >= 0 ? 0 : Math.ceil((-this.globalTokens / rate) * 1000);
  }

  private async once(url: string, timeoutMs: number): Promise<{ status: number; body: Buffer; retryAfter: string | undefined; headers: Record<string, string | undefined> }> {
    const res = await request(url, {
      method: 'GET',
      dispatcher: this.dispatcher,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      headers: { accept: 'application/pkix-cert, application/x-pem-file, application/pkix-crl, */*' },
      signal: AbortSignal.timeout(timeoutMs),
    });
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of res.body) {
      size += (c as Buffer).length;
      if (size > this.o.maxBodyBytes) {
        res.body.destroy();
        throw new Error(`response larger than ${this.o.maxBodyBytes} bytes`);
      }
      chunks.push(c as Buffer);
    }
    const headers: Record<string, string | undefined> = {};
    for (const [k, v] of Object.entries(res.headers)) headers[k.toLowerCase()] = Array.isArray(v) ? v[0] : v;
    return { status: res.statusCode, body: Buffer.concat(chunks), retryAfter: headers['retry-after'], headers };
  }
}

/** parseRetryAfter reads delta-seconds or an HTTP date; returns milliseconds or undefined. */
export function parseRetryAfter(v: string | undefined, now: number): number | undefined {
  if (v === undefined) return undefined;
  const t = v.trim();
  if (/^\d{1,7}$/.test(t)) return Number(t) * 1000;
  const d = Date.parse(t);
  if (Number.isNaN(d)) return undefined;
  return Math.max(0, d - now);
}

/** pemToDer splits a PEM body into DER certificates or CRLs; DER bodies are returned as is. */
export function pemToDer(body: Buffer): Buffer[] {
  const text = body.toString('latin1');
  if (!text.includes('-----BEGIN')) return [body];
  const out: Buffer[] = [];
  for (const m of text.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----([A-Za-z0-9+/=\s]+?)-----END \1-----/g)) {
    out.push(Buffer.from(m[2]!.replace(/\s+/g, ''), 'base64'));
  }
  return out;
}
