/**
 * The Redis store (ioredis 6) for a fleet: standalone, TLS, ACL users, Sentinel and Cluster.
 * Key layout under the prefix P (default `tas:`), hash-tagged so that every multi-key script
 * touches one Cluster slot:
 *   P{nonce}:<64 hex>        hash {exp, o, l}: one nonce (issued; claimed when `o` is set)
 *   P{nonce}:outstanding     zset member=nonce score=expiry: the outstanding count
 *   P{policy}:docs           hash id -> document text; P{policy}:gen  generation (server µs time)
 *   P{blob}:<key>            certificate cache entries (string, optional TTL)
 *   P{nonce}:rl:<sha256(key)> fixed-window rate-limit counters (in the nonce slot, so that
 *                            get_nonce's budget hit and its issue are one script: one round trip)
 * A nonce is validated to 64 hex characters before it becomes part of a key, so the nonce
 * namespace can never address another key. Every failure of the connection becomes
 * TasError('STORE_UNAVAILABLE'); ioredis 'error' events are always listened to (an unlistened
 * one would crash the daemon).
 * ACL: the user needs `~<prefix>*` and `+@read +@write +@scripting +@connection +info +time`
 * (TIME runs inside the scripts; WAIT is in @connection) and nothing dangerous; health() runs a
 * script, so a narrower grant shows on /readyz.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import Redis, { Cluster, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import { TasError } from '../errors';
import * as lua from './redis-scripts';
import type { ChargedIssue, ClaimResult, IssueResult, PutResult, RateCharge, RateHit, Store, StoredPolicy, StoreInfo } from './types';
import { CONSUMED_MARKER_MIN_MS, RATE_KEY_MAX } from './types';
import { assertBlobKey, assertNonce, assertOwner, assertPolicyId, assertPositive } from './validate';

/** HostPort is one seed address (sentinel or cluster node). */
export interface HostPort {
  host: string;
  port: number;
}

/** RedisStoreOptions is the resolved connection configuration (see redisOptionsFromConfig). */
export interface RedisStoreOptions {
  host: string;
  port: number;
  db?: number;
  username?: string;
  password?: string;
  /** TLS settings; undefined = plain TCP. */
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
  sentinels?: HostPort[];
  sentinelName?: string;
  clusterNodes?: HostPort[];
  keyPrefix: string;
  waitReplicas: number;
  /** Per-command bound so that a dead server answers 503 quickly instead of hanging a request. */
  commandTimeoutMs?: number;
  /** WAIT timeout when waitReplicas > 0. */
  waitTimeoutMs?: number;
  log?: Logger;
}

type ScriptFn = (...args: Array<string | number>) => Promise<unknown>;
interface Scripted {
  tasIssue: ScriptFn;
  tasIssueCharged: ScriptFn;
  tasClaim: ScriptFn;
  tasConsume: ScriptFn;
  tasUnconsume: ScriptFn;
  tasRelease: ScriptFn;
  tasCount: ScriptFn;
  tasPutPolicy: ScriptFn;
  tasDeletePolicy: ScriptFn;
  tasPolicyRead: ScriptFn;
  tasHit: ScriptFn;
}

const SCRIPTS: Record<keyof Scripted, { lua: string; numberOfKeys: number }> = {
  tasIssue: { lua: lua.ISSUE, numberOfKeys: 2 },
  tasIssueCharged: { lua: lua.ISSUE_CHARGED, numberOfKeys: 3 },
  tasClaim: { lua: lua.CLAIM, numberOfKeys: 1 },
  tasConsume: { lua: lua.CONSUME, numberOfKeys: 3 },
  tasUnconsume: { lua: lua.UNCONSUME, numberOfKeys: 3 },
  tasRelease: { lua: lua.RELEASE, numberOfKeys: 2 },
  tasCount: { lua: lua.COUNT, numberOfKeys: 1 },
  tasPutPolicy: { lua: lua.PUT_POLICY, numberOfKeys: 2 },
  tasDeletePolicy: { lua: lua.DELETE_POLICY, numberOfKeys: 2 },
  tasPolicyRead: { lua: lua.POLICY_READ, numberOfKeys: 2 },
  tasHit: { lua: lua.HIT, numberOfKeys: 1 },
};

/** Most policy ids whose documents the Redis store keeps by generation. */
const POLICY_CACHE_MAX = 4096;

/** RedisStore implements Store on Redis. */
export class RedisStore implements Store {
  readonly info: StoreInfo;
  readonly opTimeoutMs: number;
  private readonly client: Redis | Cluster;
  private readonly s: Scripted;
  private readonly p: string;
  private readonly waitReplicas: number;
  private readonly waitTimeoutMs: number;
  private readonly log: Logger | undefined;
  private lastErrorLog = 0;
  private lastError: string | undefined;

  constructor(o: RedisStoreOptions) {
    this.p = o.keyPrefix;
    this.waitReplicas = o.waitReplicas;
    this.waitTimeoutMs = o.waitTimeoutMs ?? 1000;
    const commandTimeout = o.commandTimeoutMs ?? 3000;
    // One operation: a script (resent at most once after a reconnect: maxRetriesPerRequest 1),
    // then WAIT for the replicas (itself a command, bounded by the command timeout too).
    this.opTimeoutMs = 2 * commandTimeout + (this.waitReplicas > 0 ? Math.max(this.waitTimeoutMs, commandTimeout) : 0);
    this.log = o.log;
    const tls: ConnectionOptions | undefined = o.tls ? { ...o.tls } : undefined;
    const common: RedisOptions = {
      username: o.username,
      password: o.password,
      tls,
      db: o.db,
      commandTimeout,
      connectTimeout: 3000,
      // Fail the request (503 + Retry-After, the agent retries) rather than queue it for long.
      maxRetriesPerRequest: 1,
      connectionName: 'tas',
      lazyConnect: false,
      // No ioredis auto-pipelining: it halves redis-server's reads per cycle, but each pipeline
      // copies every defined script onto a new object, which cost the daemon ~1.4 ms more CPU per
      // agent cycle at concurrency 4 (test/bench/cycle.ts, measured side by side).
    };
    const retry = (times: number): number => Math.min(50 * times, 2000);
    let topology: string;
    if (o.clusterNodes?.length) {
      this.client = new Cluster(o.clusterNodes, {
        redisOptions: common,
        scaleReads: 'master',
        clusterRetryStrategy: retry,
        scripts: SCRIPTS,
      });
      topology = `cluster ${o.clusterNodes.map((n) => `${n.host}:${n.port}`).join(',')}`;
    } else if (o.sentinels?.length) {
      this.client = new Redis({
        ...common,
        sentinels: o.sentinels,
        name: o.sentinelName,
        role: 'master',
        sentinelRetryStrategy: retry,
        retryStrategy: retry,
        scripts: SCRIPTS,
      });
      topology = `sentinel ${o.sentinelName ?? ''}@${o.sentinels.map((n) => `${n.host}:${n.port}`).join(',')}`;
    } else {
      this.client = new Redis({ ...common, host: o.host, port: o.port, retryStrategy: retry, scripts: SCRIPTS });
      topology = `${o.tls ? 'rediss' : 'redis'}://${o.host}:${o.port}${o.db ? `/${o.db}` : ''}`;
    }
    this.s = this.client as unknown as Scripted;
    this.info = { backend: 'redis', persistence: `${topology} prefix ${o.keyPrefix}` };
    this.client.on('error', (e: Error) => this.noteError(e));
    if (this.client instanceof Cluster) {
      this.client.on('node error', (e: Error) => this.noteError(e));
      // Also the startup nodes: the cluster adds them after this constructor has returned.
      this.client.on('+node', (node: Redis) => coalesceConnection(node));
    } else {
      coalesceConnection(this.client);
    }
  }

  /** noteError logs connection trouble at most every 10 s (a down server emits it per retry). */
  private noteError(e: Error): void {
    this.lastError = e.message;
    const now = Date.now();
    if (now - this.lastErrorLog < 10_000) return;
    this.lastErrorLog = now;
    this.log?.warn({ err: e.message }, 'redis store: connection error');
  }

  private nonceKey(n: string): string {
    return `${this.p}{nonce}:${n}`;
  }
  /** markerKey holds the consumed-by-owner marker (same `{nonce}` hash slot as the nonce). */
  private markerKey(n: string): string {
    return `${this.p}{nonce}:consumed:${n}`;
  }
  private get outstandingKey(): string {
    return `${this.p}{nonce}:outstanding`;
  }

  /** run maps every failure to STORE_UNAVAILABLE (TasErrors pass through). */
  private async run<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof TasError) throw e;
      const msg = e instanceof Error ? e.message : String(e);
      this.log?.warn({ op: what, err: msg }, 'redis store: operation failed');
      throw new TasError('STORE_UNAVAILABLE', `redis: ${what}: ${msg}`, { cause: e });
    }
  }

  /** confirm waits for TAS_REDIS_WAIT_REPLICAS replicas to acknowledge the writes so far. */
  private async confirm(what: string): Promise<void> {
    if (this.waitReplicas <= 0 || this.client instanceof Cluster) return;
    const acked = Number(await this.client.wait(this.waitReplicas, this.waitTimeoutMs));
    if (acked < this.waitReplicas) {
      throw new TasError('STORE_UNAVAILABLE', `redis: ${what}: ${acked} of ${this.waitReplicas} replicas confirmed the write`, {
        reason: 'STORE_WAIT_REPLICAS',
      });
    }
  }

  // --- nonces --------------------------------------------------------------------------------

  async issue(nonce: string, ttlMs: number, maxOutstanding: number): Promise<IssueResult> {
    assertNonce(nonce);
    assertPositive('ttlMs', ttlMs);
    assertPositive('maxOutstanding', maxOutstanding);
    return this.run('issue', async () => {
      const r = String(await this.s.tasIssue(this.nonceKey(nonce), this.outstandingKey, nonce, ttlMs, maxOutstanding));
      if (r !== 'issued' && r !== 'capacity' && r !== 'exists') throw new Error(`unexpected script reply ${r}`);
      if (r === 'issued') await this.confirm('issue');
      return r;
    });
  }

  async issueCharged(nonce: string, ttlMs: number, maxOutstanding: number, charge: RateCharge): Promise<ChargedIssue> {
    assertNonce(nonce);
    assertPositive('ttlMs', ttlMs);
    assertPositive('maxOutstanding', maxOutstanding);
    assertPositive('windowMs', charge.windowMs);
    assertPositive('limit', charge.limit);
    const k = this.rateKey(charge.key);
    return this.run('issue', async () => {
      const r = (await this.s.tasIssueCharged(this.nonceKey(nonce), this.outstandingKey, k, nonce, ttlMs, maxOutstanding, charge.windowMs, charge.limit)) as [string, number, number];
      const result = String(r[0]);
      if (result !== 'issued' && result !== 'capacity' && result !== 'exists' && result !== 'limited') throw new Error(`unexpected script reply ${result}`);
      if (result === 'issued') await this.confirm('issue');
      return { result, hit: { count: Number(r[1]), resetMs: Math.max(0, Number(r[2])) } };
    });
  }

  async claim(nonce: string, owner: string, leaseMs: number): Promise<ClaimResult> {
    assertNonce(nonce);
    assertOwner(owner);
    assertPositive('leaseMs', leaseMs);
    return this.run('claim', async () => {
      let won: boolean;
      try {
        won = Number(await this.s.tasClaim(this.nonceKey(nonce), owner, leaseMs)) === 1;
      } catch (e) {
        // Unknown outcome (a timed-out reply during a failover may still have claimed): hand it
        // back under our owner id (a no-op when the claim did not happen), as for a failed WAIT.
        await this.s.tasRelease(this.nonceKey(nonce), this.outstandingKey, owner, nonce).catch(() => undefined);
        throw e;
      }
      if (won) {
        try {
          await this.confirm('claim');
        } catch (e) {
          // Unconfirmed claim: hand the nonce back now (best effort) so the agent's retry after
          // the 503 can claim it, instead of waiting for the lease to lapse.
          await this.s.tasRelease(this.nonceKey(nonce), this.outstandingKey, owner, nonce).catch(() => undefined);
          throw e;
        }
      }
      return won ? 'claimed' : 'invalid';
    });
  }

  async consume(nonce: string, owner: string): Promise<boolean> {
    assertNonce(nonce);
    assertOwner(owner);
    return this.run('consume', async () => {
      const exp = await this.s.tasConsume(this.nonceKey(nonce), this.outstandingKey, this.markerKey(nonce), owner, nonce, CONSUMED_MARKER_MIN_MS);
      const ok = typeof exp === 'string';
      if (ok) {
        try {
          await this.confirm('consume');
        } catch (e) {
          // Unconfirmed consume (e.g. a Sentinel failover left no replica to acknowledge it): the
          // caller answers 503 without sending the secret, so the nonce can safely go back to
          // issued for the agent's retry instead of being burnt (best effort; fails closed).
          await this.s.tasUnconsume(this.nonceKey(nonce), this.outstandingKey, this.markerKey(nonce), owner, nonce).catch(() => undefined);
          throw e;
        }
      }
      return ok;
    });
  }

  /** forgetConsumed: the marker key lapses with its TTL (a DEL would be a command per attestation). */
  forgetConsumed(): void {}

  async unconsume(nonce: string, owner: string): Promise<boolean> {
    assertNonce(nonce);
    assertOwner(owner);
    return this.run('unconsume', async () => {
      const ok = Number(await this.s.tasUnconsume(this.nonceKey(nonce), this.outstandingKey, this.markerKey(nonce), owner, nonce)) === 1;
      if (ok) await this.confirm('unconsume');
      return ok;
    });
  }

  async release(nonce: string, owner: string): Promise<boolean> {
    assertNonce(nonce);
    assertOwner(owner);
    return this.run('release', async () => {
      const ok = Number(await this.s.tasRelease(this.nonceKey(nonce), this.outstandingKey, owner, nonce)) === 1;
      if (ok) await this.confirm('release');
      return ok;
    });
  }

  async count(): Promise<number> {
    return this.run('count', async () => Number(await this.s.tasCount(this.outstandingKey)));
  }

  // --- policies ------------------------------------------------------------------------------

  private get docsKey(): string {
    return `${this.p}{policy}:docs`;
  }
  private get genKey(): string {
    return `${this.p}{policy}:gen`;
  }

  async putPolicy(id: string, doc: string): Promise<PutResult> {
    assertPolicyId(id);
    if (typeof doc !== 'string') throw new TasError('INTERNAL', 'policy document must be text');
    return this.run('store policy', async () => {
      const created = Number(await this.s.tasPutPolicy(this.docsKey, this.genKey, id, doc)) === 1;
      if (created) await this.confirm('store policy');
      return created ? 'created' : 'exists';
    });
  }

  /**
   * Policies read by generation: every put and delete advances P{policy}:gen (in the same
   * script, to a value not used before: NEXT_GEN), and policies are create-only, so a document
   * read together with generation g is still current while the counter reads g. Each get_secret then costs one GET of the counter,
   * not the document (nor, for the key-id dialect, every document); a changed counter re-reads.
   */
  private readonly policyCache = new Map<string, { gen: number; doc: string | undefined }>();
  private listCache: { gen: number; list: StoredPolicy[] } | undefined;
  /** Policy reads answered from the cache, and read afresh (tests, status). */
  readonly policyReads = { cached: 0, fetched: 0 };

  async getPolicy(id: string): Promise<string | undefined> {
    assertPolicyId(id);
    return this.run('get policy', async () => {
      const hit = this.policyCache.get(id);
      if (hit !== undefined && Number((await this.client.get(this.genKey)) ?? 0) === hit.gen) {
        this.policyReads.cached++;
        return hit.doc;
      }
      const r = (await this.s.tasPolicyRead(this.docsKey, this.genKey, id)) as [number, string | null];
      const doc = r[1] ?? undefined;
      this.policyReads.fetched++;
      // Bounded: ids are validated, and a flood of unknown ids only resets the cache.
      if (this.policyCache.size >= POLICY_CACHE_MAX) this.policyCache.clear();
      this.policyCache.set(id, { gen: Number(r[0]), doc });
      return doc;
    });
  }

  async deletePolicy(id: string): Promise<boolean> {
    assertPolicyId(id);
    return this.run('delete policy', async () => {
      const ok = Number(await this.s.tasDeletePolicy(this.docsKey, this.genKey, id)) === 1;
      if (ok) await this.confirm('delete policy');
      return ok;
    });
  }

  async listPolicies(): Promise<StoredPolicy[]> {
    return this.run('list policies', async () => {
      const hit = this.listCache;
      if (hit !== undefined && Number((await this.client.get(this.genKey)) ?? 0) === hit.gen) {
        this.policyReads.cached++;
        return hit.list.slice();
      }
      // One hash holds every document: listing is one HGETALL, never a KEYS/SCAN walk.
      const r = (await this.s.tasPolicyRead(this.docsKey, this.genKey, '')) as Array<number | string>;
      const all: StoredPolicy[] = [];
      for (let i = 1; i + 1 < r.length; i += 2) all.push({ id: String(r[i]), doc: String(r[i + 1]) });
      all.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      this.policyReads.fetched++;
      this.listCache = { gen: Number(r[0]), list: all };
      return all.slice();
    });
  }

  async policyGeneration(): Promise<number> {
    return this.run('policy generation', async () => Number((await this.client.get(this.genKey)) ?? 0));
  }

  // --- blobs ---------------------------------------------------------------------------------

  async getBlob(key: string): Promise<Buffer | undefined> {
    assertBlobKey(key);
    return this.run('get blob', async () => (await this.client.getBuffer(`${this.p}{blob}:${key}`)) ?? undefined);
  }

  async putBlob(key: string, value: Buffer, ttlSeconds?: number): Promise<void> {
    assertBlobKey(key);
    if (ttlSeconds !== undefined) assertPositive('ttlSeconds', ttlSeconds);
    await this.run('put blob', async () => {
      if (ttlSeconds === undefined) await this.client.set(`${this.p}{blob}:${key}`, value);
      else await this.client.set(`${this.p}{blob}:${key}`, value, 'EX', ttlSeconds);
    });
  }

  // --- rate limits ---------------------------------------------------------------------------

  async hit(key: string, windowMs: number): Promise<RateHit> {
    assertPositive('windowMs', windowMs);
    const k = this.rateKey(key);
    return this.run('rate limit', async () => {
      const r = (await this.s.tasHit(k, windowMs)) as [number, number];
      return { count: Number(r[0]), resetMs: Math.max(0, Number(r[1])) };
    });
  }

  /**
   * rateKey names a client's window counter. Hashing keeps client-controlled text (addresses) out
   * of key names; the `{nonce}` hash tag puts it in the nonce slot (see the key layout above).
   */
  private rateKey(key: string): string {
    if (typeof key !== 'string' || key.length > RATE_KEY_MAX) throw new TasError('INTERNAL', 'bad rate-limit key');
    return `${this.p}{nonce}:rl:${createHash('sha256').update(key).digest('hex').slice(0, 32)}`;
  }

  // --- life -----------------------------------------------------------------------------------

  async health(): Promise<string | undefined> {
    try {
      // Not a bare PING: running a nonce script also proves the ACL grants scripting, TIME and
      // the key prefix, so a too-narrow ACL user shows on /readyz instead of failing requests.
      await this.s.tasCount(this.outstandingKey);
      return undefined;
    } catch (e) {
      const msg = (e as Error).message;
      if (/NOPERM|NOSCRIPT|ERR/.test(msg) && !/Connection|connect|timed out/i.test(msg)) return `redis refused: ${msg}`;
      return `redis unreachable: ${this.lastError ?? msg}`;
    }
  }

  async close(): Promise<void> {
    // disconnect (not QUIT): a QUIT to a dead server would wait for the command timeout.
    // Shutdown must not fail on a client caught mid-(re)connect; the socket is gone either way.
    try {
      this.client.disconnect();
    } catch (e) {
      this.log?.warn({ err: (e as Error).message }, 'redis store: error while disconnecting');
    }
  }
}

/** parseHostPort reads `host:port` and `[v6]:port`. */
export function parseHostPort(s: string): HostPort {
  const i = s.lastIndexOf(':');
  let host = s.slice(0, i);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return { host, port: Number(s.slice(i + 1)) };
}

/** RedisSettings are the registered values (src/store/settings.ts), as read from Config. */
export interface RedisSettings {
  url: string;
  host?: string;
  port?: number;
  username?: string;
  password?: string;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  sentinels?: string[];
  sentinelName?: string;
  clusterNodes?: string[];
  keyPrefix: string;
  waitReplicas: number;
}

/** resolveRedisOptions turns settings into connection options; unreadable files are config errors. */
export function resolveRedisOptions(s: RedisSettings): RedisStoreOptions {
  const u = new URL(s.url);
  const tlsByUrl = u.protocol === 'rediss:';
  const dbPath = u.pathname.replace(/^\//, '');
  const db = dbPath === '' ? undefined : Number(dbPath);
  if (db !== undefined && (!Number.isInteger(db) || db < 0)) throw new Error(`TAS_REDIS_URL: database '${dbPath}' is not a number`);
  const read = (name: string, f: string | undefined): Buffer | undefined => {
    if (f === undefined) return undefined;
    try {
      return readFileSync(f);
    } catch (e) {
      throw new Error(`${name}: cannot read ${f}: ${(e as Error).message}`, { cause: e });
    }
  };
  const ca = read('TAS_REDIS_TLS_CA_FILE', s.caFile);
  const cert = read('TAS_REDIS_TLS_CERT_FILE', s.certFile);
  const key = read('TAS_REDIS_TLS_KEY_FILE', s.keyFile);
  // A CA or client certificate names the intent to use TLS; never fall back to plain text.
  const useTls = tlsByUrl || ca !== undefined || cert !== undefined;
  return {
    host: s.host ?? (u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1'),
    port: s.port ?? (u.port === '' ? 6379 : Number(u.port)),
    db,
    username: s.username ?? (u.username === '' ? undefined : decodeURIComponent(u.username)),
    password: s.password ?? (u.password === '' ? undefined : decodeURIComponent(u.password)),
    tls: useTls ? { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) } : undefined,
    sentinels: s.sentinels?.map(parseHostPort),
    sentinelName: s.sentinelName,
    clusterNodes: s.clusterNodes?.map(parseHostPort),
    keyPrefix: s.keyPrefix,
    waitReplicas: s.waitReplicas,
  };
}

/**
 * coalesceConnection makes the commands that one event-loop turn sends on a connection leave in one
 * write: the socket is corked at the turn's first command and uncorked once the turn's I/O callbacks
 * have run (setImmediate). ioredis writes each command at once, one write(2) each; under load the
 * commands of several requests (a reply that wakes several, requests that arrived together) then
 * share one system call, and redis-server's reads shrink alike. No command waits past the turn.
 * (ioredis' own auto-pipelining batches too, but copies every defined script onto a new pipeline
 * object per batch, which cost more CPU than it saved.)
 */
function coalesceConnection(c: Redis): void {
  // Called before the first connection; every (re)connection brings a new socket.
  c.on('connect', () => coalesceWrites(c.stream));
}

function coalesceWrites(socket: Socket): void {
  const write = socket.write as (...a: unknown[]) => boolean;
  let corked = false;
  (socket as { write: (...a: unknown[]) => boolean }).write = function (this: unknown, ...args: unknown[]): boolean {
    if (!corked) {
      corked = true;
      socket.cork();
      setImmediate(() => {
        corked = false;
        socket.uncork();
      });
    }
    return write.apply(this, args);
  };
}
