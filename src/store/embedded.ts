/**
 * The embedded store for a single node: nonces and rate-limit windows in memory on the monotonic
 * clock (a wall-clock step must neither revive nor kill a nonce), policies and cached blobs as
 * files written atomically (temp file, fsync, link/rename, fsync directory) so that a crash at
 * any instant leaves the old or the new file, never a torn one.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, unlinkSync, watch, type FSWatcher } from 'node:fs';
import type { Stats } from 'node:fs';
import { link, open, readFile, readdir, rename, stat, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { TasError } from '../errors';
import { ConsumedMarkers } from './consumed-markers';
import type { ChargedIssue, ClaimResult, IssueResult, PutResult, RateCharge, RateHit, Store, StoredPolicy, StoreInfo } from './types';
import { CONSUMED_MARKER_MIN_MS, RATE_KEY_MAX } from './types';
import { assertBlobKey, assertNonce, assertOwner, assertPolicyId, assertPositive, isNonce } from './validate';

/** FORMAT is the on-disk format version of policy and blob files. */
export const FORMAT = 1;

/** Clock returns monotonic milliseconds. */
export type Clock = () => number;

export interface EmbeddedOptions {
  stateDir: string;
  cacheDir: string;
  log?: Logger;
  /** Monotonic clock for nonces and rate limits (tests inject a fake one). */
  now?: Clock;
}

interface NonceEntry {
  /** Original expiry (monotonic ms); never moved by claim or release. */
  readonly exp: number;
  owner: string | undefined;
  leaseEnd: number;
  /** Counted in `live` (outstanding): true until the expiry heap saw its expiry pass. */
  live: boolean;
}

/** HeapNode schedules one look at a nonce entry at time `at` (its expiry, or its lease end). */
interface HeapNode {
  readonly at: number;
  readonly nonce: string;
  readonly entry: NonceEntry;
}

/**
 * ExpiryHeap is a binary min-heap on `at`. Nodes of entries that were consumed or replaced stay
 * until their time comes (or a compaction drops them) and are skipped then: deleting from the
 * middle of a heap would cost a lookup structure per nonce. `work` counts nodes visited (sift
 * steps and pops) so tests can check the cost per operation without clocks.
 */
class ExpiryHeap {
  private a: HeapNode[] = [];
  work = 0;

  get size(): number {
    return this.a.length;
  }

  peek(): HeapNode | undefined {
    return this.a[0];
  }

  push(n: HeapNode): void {
    const a = this.a;
    let i = a.length;
    a.push(n);
    // Nonces are issued with one TTL, so a new node is usually the latest: this loop stops at once.
    while (i > 0) {
      this.work++;
      const up = (i - 1) >> 1;
      if (a[up]!.at <= n.at) break;
      a[i] = a[up]!;
      i = up;
    }
    a[i] = n;
  }

  pop(): HeapNode | undefined {
    const a = this.a;
    const top = a[0];
    if (top === undefined) return undefined;
    this.work++;
    const last = a.pop()!;
    if (a.length > 0) {
      let i = 0;
      for (;;) {
        this.work++;
        const l = 2 * i + 1;
        if (l >= a.length) break;
        const r = l + 1;
        const c = r < a.length && a[r]!.at < a[l]!.at ? r : l;
        if (a[c]!.at >= last.at) break;
        a[i] = a[c]!;
        i = c;
      }
      a[i] = last;
    }
    return top;
  }

  /** rebuild keeps only the nodes `keep` accepts, in O(n) (amortised against the pushes that made them stale). */
  rebuild(keep: (n: HeapNode) => boolean): void {
    const a = this.a.filter(keep);
    this.work += this.a.length;
    this.a = a;
    for (let i = (a.length >> 1) - 1; i >= 0; i--) {
      const n = a[i]!;
      let j = i;
      for (;;) {
        const l = 2 * j + 1;
        if (l >= a.length) break;
        const r = l + 1;
        const c = r < a.length && a[r]!.at < a[l]!.at ? r : l;
        if (a[c]!.at >= n.at) break;
        a[j] = a[c]!;
        j = c;
      }
      a[j] = n;
    }
  }
}

/** Longest time a cached policy is served without checking its file, even with the watch healthy. */
export const POLICY_RECHECK_MS = 1_000;

/**
 * EMBEDDED_OP_TIMEOUT_MS: nonces live in memory and answer at once; policy reads are local file
 * reads with no timeout of their own. This nominal bound feeds the claim lease (Store.opTimeoutMs).
 */
export const EMBEDDED_OP_TIMEOUT_MS = 2_000;

const POLICY_PREFIX = 'policy.';
const POLICY_SUFFIX = '.json';
const TEMP_PREFIX = '.tmp-';

/** EmbeddedStore implements Store for one node. */
export class EmbeddedStore implements Store {
  readonly info: StoreInfo;
  readonly opTimeoutMs = EMBEDDED_OP_TIMEOUT_MS;
  private readonly now: Clock;
  private readonly policyDir: string;
  private readonly blobDir: string;
  private readonly nonces = new Map<string, NonceEntry>();
  /**
   * Nonce expiry without scans: `expiry` holds one node per entry at its expiry (and again at its
   * lease end when it expires while claimed); `live` counts the entries whose expiry has not
   * passed, so the outstanding cap is exact in O(1). Each operation pops only the nodes that are
   * due: O(log n) per nonce over its life, never a scan on the request path.
   */
  private readonly expiry = new ExpiryHeap();
  /**
   * Mutable counters live in one object, not in fields: a store wrapped with Object.create (tests
   * interpose on single methods that way) must share them, as it shares the maps.
   */
  private readonly st = { live: 0, policyEpoch: 0, nextWindowSweep: 0 };
  /** Consumed-by-owner markers (Store.consume), packed: one per nonce consumed within ~a lease and not forgotten. */
  private readonly consumed = new ConsumedMarkers();
  private readonly windows = new Map<string, { count: number; resetAt: number }>();
  private generation = 0;
  private closed = false;
  /**
   * Policy files changed by anyone (another process's `tas policy import` included) are seen
   * through an inotify watch on the policy directory: every event bumps st.policyEpoch, which voids
   * every cached policy. While the watch is healthy a cached policy is served with no fs call; each
   * entry is still re-checked with one stat at least every POLICY_RECHECK_MS (a lost inotify event,
   * e.g. on queue overflow, is bounded in time). Without a watch every read stats its file.
   */
  private policyWatch: FSWatcher | undefined;
  /** Counters for tests and status: policy reads answered from memory, and fs checks made. */
  readonly policyReads = { cached: 0, stats: 0 };

  constructor(opts: EmbeddedOptions) {
    this.now = opts.now ?? (() => performance.now());
    this.policyDir = resolve(opts.stateDir, 'policies');
    this.blobDir = resolve(opts.cacheDir, 'blobs');
    this.info = { backend: 'embedded', persistence: resolve(opts.stateDir) };
    // 0700: policies name key ids and the cache shows which platforms attest here.
    mkdirSync(this.policyDir, { recursive: true, mode: 0o700 });
    mkdirSync(this.blobDir, { recursive: true, mode: 0o700 });
    try {
      this.policyWatch = watch(this.policyDir, { persistent: false }, () => void this.st.policyEpoch++);
      this.policyWatch.on('error', (e) => {
        opts.log?.warn({ err: e }, 'policy directory watch failed; every policy read checks its file again');
        this.policyWatch?.close();
        this.policyWatch = undefined;
        this.st.policyEpoch++;
      });
    } catch (e) {
      opts.log?.warn({ err: e }, 'cannot watch the policy directory; every policy read checks its file');
    }
    // Temp files are leftovers of writes a crash interrupted; the old or new file is intact.
    for (const dir of [this.policyDir, this.blobDir]) {
      for (const f of readdirSync(dir)) {
        if (f.startsWith(TEMP_PREFIX)) {
          try {
            unlinkSync(join(dir, f));
          } catch (e) {
            opts.log?.warn({ err: e, file: f }, 'cannot remove stale temp file');
          }
        }
      }
    }
  }

  // --- nonces --------------------------------------------------------------------------------

  async issue(nonce: string, ttlMs: number, maxOutstanding: number): Promise<IssueResult> {
    assertNonce(nonce);
    assertPositive('ttlMs', ttlMs);
    assertPositive('maxOutstanding', maxOutstanding);
    const now = this.now();
    this.purge(now);
    if (this.nonces.has(nonce)) return 'exists';
    // Exact: every entry whose expiry passed was counted out by purge(now) above.
    if (this.st.live >= maxOutstanding) return 'capacity';
    this.insert(nonce, now + ttlMs);
    return 'issued';
  }

  async issueCharged(nonce: string, ttlMs: number, maxOutstanding: number, charge: RateCharge): Promise<ChargedIssue> {
    assertNonce(nonce);
    // One process owns both: the hit and the issue need no atomicity beyond running in one turn.
    const hit = await this.hit(charge.key, charge.windowMs);
    if (hit.count > charge.limit) return { result: 'limited', hit };
    return { result: await this.issue(nonce, ttlMs, maxOutstanding), hit };
  }

  /** insert adds an issued nonce with expiry `exp` (issue, unconsume). */
  private insert(nonce: string, exp: number): void {
    const entry: NonceEntry = { exp, owner: undefined, leaseEnd: 0, live: true };
    this.nonces.set(nonce, entry);
    this.st.live++;
    this.expiry.push({ at: exp, nonce, entry });
    // Consumed nonces leave their nodes behind; drop them once they outnumber the entries.
    if (this.expiry.size > 2 * this.nonces.size + 1024) this.expiry.rebuild((n) => this.nonces.get(n.nonce) === n.entry);
  }

  /** remove deletes an entry from the map, counting it out if it was still outstanding. */
  private remove(nonce: string, e: NonceEntry): void {
    this.nonces.delete(nonce);
    if (e.live) {
      e.live = false;
      this.st.live--;
    }
  }

  /** countedWork is the number of expiry-heap nodes visited so far (tests: cost without clocks). */
  get countedWork(): number {
    return this.expiry.work;
  }

  async claim(nonce: string, owner: string, leaseMs: number): Promise<ClaimResult> {
    assertNonce(nonce);
    assertOwner(owner);
    assertPositive('leaseMs', leaseMs);
    const now = this.now();
    const e = this.nonces.get(nonce);
    if (e === undefined || e.exp <= now) return 'invalid';
    if (e.owner !== undefined && e.leaseEnd > now) return 'invalid';
    e.owner = owner;
    e.leaseEnd = now + leaseMs;
    return 'claimed';
  }

  async consume(nonce: string, owner: string): Promise<boolean> {
    assertNonce(nonce);
    assertOwner(owner);
    const now = this.now();
    this.consumed.purge(now);
    const e = this.nonces.get(nonce);
    if (e === undefined) {
      // A retry of a consume that already happened (its reply lost): the marker says whose it was.
      const m = this.consumed.get(nonce);
      return m !== undefined && m.owner === owner && m.keep > now;
    }
    if (e.owner !== owner) return false;
    this.remove(nonce, e);
    // Past both its expiry and its lease the nonce is gone, as on Redis (whose key has expired).
    if (e.exp <= now && e.leaseEnd <= now) return false;
    this.consumed.set(nonce, { owner, exp: e.exp, keep: Math.max(e.leaseEnd, now + CONSUMED_MARKER_MIN_MS) });
    return true;
  }

  async unconsume(nonce: string, owner: string): Promise<boolean> {
    assertNonce(nonce);
    assertOwner(owner);
    const now = this.now();
    const m = this.consumed.get(nonce);
    if (m === undefined || m.owner !== owner || m.keep <= now || this.nonces.has(nonce)) return false;
    this.consumed.delete(nonce);
    if (m.exp <= now) return false;
    this.insert(nonce, m.exp);
    return true;
  }

  forgetConsumed(nonce: string, owner: string): void {
    // Never throws: a malformed nonce is ignored (written as hex it would probe with stale bytes).
    if (isNonce(nonce)) this.consumed.forgetOwned(nonce, owner);
  }

  /** consumedMarkers: markers held (deleted ones until purged) and live ones (tests, capacity). */
  get consumedMarkers(): { held: number; live: number } {
    return { held: this.consumed.size, live: this.consumed.live };
  }

  async release(nonce: string, owner: string): Promise<boolean> {
    assertNonce(nonce);
    assertOwner(owner);
    const e = this.nonces.get(nonce);
    if (e === undefined || e.owner !== owner) return false;
    if (e.exp <= this.now()) {
      this.remove(nonce, e);
      return true;
    }
    e.owner = undefined;
    e.leaseEnd = 0;
    return true;
  }

  async count(): Promise<number> {
    this.purge(this.now());
    return this.st.live;
  }

  /**
   * purge handles every heap node that is due: an entry whose expiry passed is counted out of
   * `live`; one still under a claim's lease is looked at again when the lease ends; otherwise it
   * is dropped. Consumed-by-owner markers past their keep time go too (oldest first).
   */
  private purge(now: number): void {
    this.consumed.purge(now);
    for (let top = this.expiry.peek(); top !== undefined && top.at <= now; top = this.expiry.peek()) {
      this.expiry.pop();
      const e = top.entry;
      if (this.nonces.get(top.nonce) !== e) continue; // consumed or replaced since
      if (e.live && e.exp <= now) {
        e.live = false;
        this.st.live--;
      }
      if (e.leaseEnd > now) this.expiry.push({ at: e.leaseEnd, nonce: top.nonce, entry: e });
      else this.nonces.delete(top.nonce);
    }
  }

  // --- policies ------------------------------------------------------------------------------

  /** policyPath maps an id to a file name inside the policy directory, checking it stays there. */
  private policyPath(id: string): string {
    assertPolicyId(id);
    const name = `${POLICY_PREFIX}${id}${POLICY_SUFFIX}`;
    const p = join(this.policyDir, name);
    // The id regex already rules out separators; this holds even if it ever changes.
    if (name.includes('/') || name.includes('\0') || resolve(p, '..') !== this.policyDir) {
      throw new TasError('POLICY_ID_INVALID', 'policy id maps outside the policy directory');
    }
    return p;
  }

  async putPolicy(id: string, doc: string): Promise<PutResult> {
    const final = this.policyPath(id);
    if (typeof doc !== 'string') throw new TasError('INTERNAL', 'policy document must be text');
    const body = JSON.stringify({ format: FORMAT, id, doc });
    const tmp = await this.writeTemp(this.policyDir, body);
    try {
      // link() fails with EEXIST when the name exists: create-only and atomic, even between processes.
      await link(tmp, final);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return 'exists';
      throw this.ioError('store policy', e);
    } finally {
      await unlink(tmp).catch(() => undefined);
    }
    this.st.policyEpoch++;
    await this.syncDir(this.policyDir);
    this.generation++;
    return 'created';
  }

  /**
   * Parsed policy files by path, valid while the file's inode, size and mtime are unchanged: every
   * get_secret reads its policy, and one stat is far cheaper than open+read+parse. A file replaced
   * by another process (atomic rename: a new inode) is re-read. With the directory watch healthy
   * and no event since the entry was checked (`epoch`), not even the stat is needed. Keyed by the
   * policy id: only ids that passed policyPath() are ever stored, so a hit skips building and
   * re-checking the path (a join and a resolve per request, #16).
   */
  private readonly policyCache = new Map<string, { ino: number; size: number; mtimeMs: number; doc: string; epoch: number; checkedAt: number }>();

  async getPolicy(id: string): Promise<string | undefined> {
    const hit = this.policyCache.get(id);
    const now = this.now();
    if (hit && this.policyWatch !== undefined && hit.epoch === this.st.policyEpoch && now - hit.checkedAt < POLICY_RECHECK_MS) {
      this.policyReads.cached++;
      return hit.doc;
    }
    const p = this.policyPath(id);
    // Read the epoch before the stat: an event during the stat voids what the stat saw.
    const epoch = this.st.policyEpoch;
    let st: Stats;
    let text: string;
    try {
      this.policyReads.stats++;
      st = await stat(p);
      if (hit && hit.ino === st.ino && hit.size === st.size && hit.mtimeMs === st.mtimeMs) {
        hit.epoch = epoch;
        hit.checkedAt = now;
        return hit.doc;
      }
      text = await readFile(p, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        this.policyCache.delete(id);
        return undefined;
      }
      throw this.ioError('read policy', e);
    }
    const doc = parsePolicyFile(text, id, p).doc;
    if (this.policyCache.size > 10_000) this.policyCache.clear();
    this.policyCache.set(id, { ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, doc, epoch, checkedAt: now });
    return doc;
  }

  async deletePolicy(id: string): Promise<boolean> {
    const p = this.policyPath(id);
    try {
      await unlink(p);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw this.ioError('delete policy', e);
    }
    this.st.policyEpoch++;
    await this.syncDir(this.policyDir);
    this.generation++;
    return true;
  }

  async listPolicies(): Promise<StoredPolicy[]> {
    let names: string[];
    try {
      names = await readdir(this.policyDir);
    } catch (e) {
      throw this.ioError('list policies', e);
    }
    const out: StoredPolicy[] = [];
    for (const n of names.sort()) {
      if (!n.startsWith(POLICY_PREFIX) || !n.endsWith(POLICY_SUFFIX)) continue;
      const id = n.slice(POLICY_PREFIX.length, -POLICY_SUFFIX.length);
      const doc = await this.getPolicy(id).catch((e: unknown) => {
        if (e instanceof TasError && e.code === 'POLICY_ID_INVALID') return undefined; // a stranger's file
        throw e;
      });
      if (doc !== undefined) out.push({ id, doc });
    }
    return out;
  }

  async policyGeneration(): Promise<number> {
    return this.generation;
  }

  // --- blobs ---------------------------------------------------------------------------------

  private blobPath(key: string): string {
    assertBlobKey(key);
    // Hashing makes every key a safe, fixed-length file name whatever characters it has.
    return join(this.blobDir, `${createHash('sha256').update(key).digest('hex')}.blob`);
  }

  async getBlob(key: string): Promise<Buffer | undefined> {
    const p = this.blobPath(key);
    let buf: Buffer;
    try {
      buf = await readFile(p);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw this.ioError('read cache', e);
    }
    const nl = buf.indexOf(0x0a);
    if (nl < 0) return undefined;
    let head: { format?: unknown; key?: unknown; expiresAt?: unknown };
    try {
      head = JSON.parse(buf.subarray(0, nl).toString('utf8')) as typeof head;
    } catch {
      return undefined;
    }
    if (head.format !== FORMAT || head.key !== key) return undefined;
    // Blob expiry outlives restarts, so it is wall-clock time, unlike nonces.
    if (typeof head.expiresAt === 'number' && head.expiresAt <= Date.now()) return undefined;
    return Buffer.from(buf.subarray(nl + 1));
  }

  async putBlob(key: string, value: Buffer, ttlSeconds?: number): Promise<void> {
    const p = this.blobPath(key);
    if (ttlSeconds !== undefined) assertPositive('ttlSeconds', ttlSeconds);
    const head = JSON.stringify({ format: FORMAT, key, expiresAt: ttlSeconds === undefined ? null : Date.now() + ttlSeconds * 1000 });
    const tmp = await this.writeTemp(this.blobDir, Buffer.concat([Buffer.from(`${head}\n`), value]));
    try {
      await rename(tmp, p);
    } catch (e) {
      await unlink(tmp).catch(() => undefined);
      throw this.ioError('write cache', e);
    }
    await this.syncDir(this.blobDir);
  }

  // --- rate limits ---------------------------------------------------------------------------

  async hit(key: string, windowMs: number): Promise<RateHit> {
    assertPositive('windowMs', windowMs);
    if (typeof key !== 'string' || key.length > RATE_KEY_MAX) throw new TasError('INTERNAL', 'bad rate-limit key');
    const now = this.now();
    // Sweep finished windows when there are many, at most once per window length: a sweep visits
    // every window, so it must not run on each hit (that would make each hit O(clients)).
    if (this.windows.size > 10_000 && now >= this.st.nextWindowSweep) {
      for (const [k, w] of this.windows) if (w.resetAt <= now) this.windows.delete(k);
      this.st.nextWindowSweep = now + windowMs;
    }
    let w = this.windows.get(key);
    if (w === undefined || w.resetAt <= now) {
      w = { count: 0, resetAt: now + windowMs };
      this.windows.set(key, w);
    }
    w.count++;
    return { count: w.count, resetMs: Math.max(0, Math.ceil(w.resetAt - now)) };
  }

  // --- life -----------------------------------------------------------------------------------

  async health(): Promise<string | undefined> {
    if (this.closed) return 'store closed';
    try {
      await readdir(this.policyDir);
      return undefined;
    } catch (e) {
      return `state directory unreadable: ${(e as NodeJS.ErrnoException).code ?? String(e)}`;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.policyWatch?.close();
    this.policyWatch = undefined;
    this.nonces.clear();
    this.expiry.rebuild(() => false);
    this.st.live = 0;
    this.consumed.clear();
    this.windows.clear();
  }

  /** writeTemp writes data to a fresh temp file in dir and fsyncs it; returns its path. */
  private async writeTemp(dir: string, data: string | Buffer): Promise<string> {
    const tmp = join(dir, `${TEMP_PREFIX}${randomBytes(8).toString('hex')}`);
    let fh;
    try {
      fh = await open(tmp, 'wx', 0o600);
      await fh.writeFile(data);
      await fh.sync();
    } catch (e) {
      await fh?.close().catch(() => undefined);
      await unlink(tmp).catch(() => undefined);
      throw this.ioError('write temp file', e);
    }
    await fh.close();
    return tmp;
  }

  /** syncDir makes a link, rename or unlink durable. */
  private async syncDir(dir: string): Promise<void> {
    const fh = await open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  }

  private ioError(what: string, e: unknown): TasError {
    return new TasError('STORE_UNAVAILABLE', `embedded store: ${what}: ${(e as Error).message}`, { cause: e });
  }
}

/** parsePolicyFile checks the versioned on-disk form and returns its content. */
export function parsePolicyFile(text: string, id: string, path: string): StoredPolicy {
  let v: { format?: unknown; id?: unknown; doc?: unknown };
  try {
    v = JSON.parse(text) as typeof v;
  } catch (e) {
    throw new TasError('STORE_UNAVAILABLE', `policy file ${path} is not JSON: ${(e as Error).message}`);
  }
  if (v.format !== FORMAT) throw new TasError('STORE_UNAVAILABLE', `policy file ${path} has unknown format ${String(v.format)}`);
  if (v.id !== id || typeof v.doc !== 'string') throw new TasError('STORE_UNAVAILABLE', `policy file ${path} does not hold policy ${id}`);
  return { id, doc: v.doc };
}
