/**
 * Intel collateral cache: memory → persistent (embedded: the store's blobs under TAS_CACHE_DIR's
 * store; Redis: shared by the fleet) → PCS. Every piece (TCB Info per FMSPC and update mode, QE
 * identity per update mode, PCK CRL per CA, root CA CRL) is checked by `check` — signatures over
 * the exact bytes, issuer chain to the pinned root, freshness — when it is fetched AND when it is
 * loaded from the persistent layer (a poisoned cache cannot forge trust). A piece is refreshed in
 * the background once it is within `refreshAheadMs` of its nextUpdate, and never used past it:
 * with nothing fresh to be had the caller gets PCS_UNAVAILABLE (503 + Retry-After; the agent's
 * nonce survives). Concurrent misses for one key share one lookup.
 *
 * The two CRLs follow TAS_CRL_FAIL_MODE as AMD's do (src/kds/cache.ts): `closed` (default) is the
 * 503 above; `open` passes a stale or unobtainable CRL over — the quote is verified without it
 * (revocation by that CRL unknown) and `notes` says so for the audit record. TCB Info and the QE
 * identity are never passed over: without them there is no TCB status to judge.
 */
import { TasError } from '../errors';
import type { BlobStore } from '../store/types';
import type { PcsFetcher, RawCollateral } from './fetcher';
import { cacheKeys, type CollateralUpdate, type PckCa } from './urls';

export type CollateralKind = 'tcbInfo' | 'qeIdentity' | 'pckCrl' | 'rootCrl';

/**
 * CollateralChecker verifies one piece at the cache's clock and returns its nextUpdate; throws
 * when it is bad or stale. `rootCrl` is the fresh root CA CRL (absent only for the root CRL itself).
 */
export type CollateralChecker = (kind: CollateralKind, raw: RawCollateral, rootCrl: Buffer | undefined, want: CollateralWant) => Promise<{ nextUpdate: Date }>;

/** CollateralWant is what the cache key promises about a piece (checked on every load). */
export interface CollateralWant {
  fmspc?: string;
  ca?: PckCa;
  update?: CollateralUpdate;
}

/** Collateral is everything one TDX quote needs besides the quote, fresh and verified. */
export interface Collateral {
  tcbInfo: RawCollateral;
  qeIdentity: RawCollateral;
  pckCrl: RawCollateral;
  rootCrl: RawCollateral;
  update: CollateralUpdate;
  /** Where each piece came from this time: memory, persistent, pcs, import. */
  source: Record<CollateralKind, string>;
  /** Operator notes for the audit record: a CRL passed over (TAS_CRL_FAIL_MODE=open). */
  notes?: string[];
}

/**
 * CollateralOrOpen is Collateral in which a CRL may be missing: only TAS_CRL_FAIL_MODE=open gives
 * one (the missing piece's source is 'none' and `notes` names why).
 */
export type CollateralOrOpen = Omit<Collateral, 'rootCrl' | 'pckCrl'> & { rootCrl: RawCollateral | undefined; pckCrl: RawCollateral | undefined };

export interface PcsCacheStats {
  hits: Record<'memory' | 'persistent', number>;
  misses: number;
  rejectedPersistent: number;
  refreshes: number;
  refreshFailures: number;
}

export interface CollateralCacheDeps {
  fetcher: PcsFetcher;
  blobs: BlobStore;
  check: CollateralChecker;
  now?: () => number;
  /** TAS_CRL_FAIL_MODE, read per lookup (reloadable); default closed. */
  crlFailMode?: () => 'closed' | 'open';
  /** Deadline for PCS inside one request. */
  requestBudgetMs?: number;
  /** Refresh this long before nextUpdate (default 24 h, at most half the remaining window). */
  refreshAheadMs?: number;
  onEvent?: (kind: 'hit_memory' | 'hit_persistent' | 'miss' | 'poisoned' | 'refresh' | 'refresh_failed', detail: string) => void;
}

interface Entry {
  raw: RawCollateral;
  nextUpdate: number;
}

const INDEX_KEY = 'pcs/index';

function encode(raw: RawCollateral): Buffer {
  return Buffer.from(JSON.stringify({ body: raw.body.toString('base64'), ...(raw.chain ? { chain: raw.chain.toString('base64') } : {}) }));
}

function decode(b: Buffer): RawCollateral {
  const v = JSON.parse(b.toString('utf8')) as { body?: unknown; chain?: unknown };
  if (typeof v.body !== 'string' || (v.chain !== undefined && typeof v.chain !== 'string')) throw new Error('malformed cache entry');
  return { body: Buffer.from(v.body, 'base64'), ...(typeof v.chain === 'string' ? { chain: Buffer.from(v.chain, 'base64') } : {}) };
}

export class CollateralCache {
  private readonly mem = new Map<string, Entry>();
  private readonly pending = new Map<string, Promise<Entry & { source: string }>>();
  private readonly refreshing = new Set<string>();
  readonly stats: PcsCacheStats = { hits: { memory: 0, persistent: 0 }, misses: 0, rejectedPersistent: 0, refreshes: 0, refreshFailures: 0 };
  private readonly now: () => number;

  constructor(private readonly d: CollateralCacheDeps) {
    this.now = d.now ?? Date.now;
  }

  /** deadline is on the real clock (the fetcher's). */
  private deadline(): number {
    return Date.now() + (this.d.requestBudgetMs ?? 8_000);
  }

  /**
   * collateral returns fresh, verified collateral for one FMSPC and PCK CA. With
   * TAS_CRL_FAIL_MODE=open a CRL that cannot be had fresh is left out (see the module comment).
   */
  async collateral(fmspc: string, ca: PckCa, update: CollateralUpdate): Promise<CollateralOrOpen> {
    const notes: string[] = [];
    const root = await this.crl('rootCrl', cacheKeys.rootCrl(), undefined, {}, (dl) => this.d.fetcher.rootCrl(dl), notes, 'Intel SGX Root CA CRL');
    const rootBody = root?.raw.body;
    const [tcb, qe, pck] = await Promise.all([
      this.piece('tcbInfo', cacheKeys.tcbInfo(fmspc, update), rootBody, { fmspc, update }, (dl) => this.d.fetcher.tcbInfo(fmspc, update, dl)),
      this.piece('qeIdentity', cacheKeys.qeIdentity(update), rootBody, { update }, (dl) => this.d.fetcher.qeIdentity(update, dl)),
      this.crl('pckCrl', cacheKeys.pckCrl(ca), rootBody, { ca }, (dl) => this.d.fetcher.pckCrl(ca, dl), notes, `Intel PCK CRL (ca=${ca})`),
    ]);
    return {
      tcbInfo: tcb.raw, qeIdentity: qe.raw, pckCrl: pck?.raw, rootCrl: root?.raw, update,
      source: { rootCrl: root?.source ?? 'none', tcbInfo: tcb.source, qeIdentity: qe.source, pckCrl: pck?.source ?? 'none' },
      ...(notes.length ? { notes } : {}),
    };
  }

  /** crl is piece() for a CRL: with TAS_CRL_FAIL_MODE=open a failure is a note, not an error. */
  private async crl(
    kind: 'rootCrl' | 'pckCrl', key: string, rootCrl: Buffer | undefined, want: CollateralWant, fetch: (deadline: number) => Promise<RawCollateral>,
    notes: string[], name: string,
  ): Promise<(Entry & { source: string }) | undefined> {
    try {
      return await this.piece(kind, key, rootCrl, want, fetch);
    } catch (e) {
      if ((this.d.crlFailMode?.() ?? 'closed') !== 'open') throw e;
      const detail = e instanceof TasError ? e.detail : (e as Error).message;
      notes.push(`no fresh ${name} (fail-open): revocation by it not checked: ${detail}`);
      return undefined;
    }
  }

  private fresh(e: Entry | undefined): e is Entry {
    return e !== undefined && e.nextUpdate > this.now();
  }

  private async piece(
    kind: CollateralKind, key: string, rootCrl: Buffer | undefined, want: CollateralWant, fetch: (deadline: number) => Promise<RawCollateral>,
  ): Promise<Entry & { source: string }> {
    const m = this.mem.get(key);
    if (this.fresh(m)) {
      this.stats.hits.memory++;
      this.d.onEvent?.('hit_memory', key);
      this.maybeRefresh(kind, key, m, rootCrl, want, fetch);
      return { ...m, source: 'memory' };
    }
    const running = this.pending.get(key);
    if (running) return running;
    const p = this.lookup(kind, key, rootCrl, want, fetch).finally(() => this.pending.delete(key));
    this.pending.set(key, p);
    return p;
  }

  private async lookup(
    kind: CollateralKind, key: string, rootCrl: Buffer | undefined, want: CollateralWant, fetch: (deadline: number) => Promise<RawCollateral>,
  ): Promise<Entry & { source: string }> {
    let why = '';
    const stored = await this.d.blobs.getBlob(key);
    if (stored) {
      try {
        const raw = decode(stored);
        const r = await this.d.check(kind, raw, rootCrl, want);
        const e = this.remember(key, raw, r.nextUpdate);
        this.stats.hits.persistent++;
        this.d.onEvent?.('hit_persistent', key);
        return { ...e, source: 'persistent' };
      } catch (err) {
        // Unusable (stale, or no longer verifying): never used; fetched afresh.
        this.stats.rejectedPersistent++;
        why = `cached ${kind} unusable: ${(err as Error).message}; `;
        this.d.onEvent?.('poisoned', `${key}: ${(err as Error).message}`);
      }
    }
    this.stats.misses++;
    this.d.onEvent?.('miss', key);
    try {
      const raw = await fetch(this.deadline());
      const e = await this.store(kind, key, raw, rootCrl, want);
      return { ...e, source: 'pcs' };
    } catch (err) {
      const retry = err instanceof TasError ? err.retryAfterSeconds : undefined;
      const detail = `no fresh ${kind} (${key}): ${why}${(err as Error).message}`;
      if (err instanceof TasError && err.code === 'PCS_UNAVAILABLE') throw new TasError('PCS_UNAVAILABLE', detail, { reason: err.reason, retryAfterSeconds: retry ?? 30 });
      // Fetched but did not verify: PCS (or a PCCS) served bad collateral; a retry may get better.
      throw new TasError('PCS_UNAVAILABLE', detail, { reason: 'PCS_COLLATERAL_INVALID', retryAfterSeconds: 60 });
    }
  }

  private async store(kind: CollateralKind, key: string, raw: RawCollateral, rootCrl: Buffer | undefined, want: CollateralWant): Promise<Entry> {
    const r = await this.d.check(kind, raw, rootCrl, want);
    const ttl = Math.floor((r.nextUpdate.getTime() - this.now()) / 1000);
    if (ttl <= 0) throw new Error(`${kind} is past its nextUpdate ${r.nextUpdate.toISOString()}`);
    await this.d.blobs.putBlob(key, encode(raw), ttl);
    await this.addToIndex(key, r.nextUpdate);
    return this.remember(key, raw, r.nextUpdate);
  }

  /** maybeRefresh fetches a replacement in the background once nextUpdate is near (serving the current one meanwhile). */
  private maybeRefresh(
    kind: CollateralKind, key: string, e: Entry, rootCrl: Buffer | undefined, want: CollateralWant, fetch: (deadline: number) => Promise<RawCollateral>,
  ): void {
    const left = e.nextUpdate - this.now();
    const ahead = this.d.refreshAheadMs ?? 24 * 3600_000;
    if (left > ahead || this.refreshing.has(key)) return;
    this.refreshing.add(key);
    this.stats.refreshes++;
    this.d.onEvent?.('refresh', key);
    void fetch(this.deadline())
      .then(async (raw) => {
        const r = await this.d.check(kind, raw, rootCrl, want);
        // Only a newer piece replaces the current one (a PCCS may still serve the same).
        if (r.nextUpdate.getTime() > e.nextUpdate) await this.store(kind, key, raw, rootCrl, want);
      })
      .catch((err: unknown) => {
        this.stats.refreshFailures++;
        this.d.onEvent?.('refresh_failed', `${key}: ${(err as Error).message}`);
      })
      .finally(() => this.refreshing.delete(key));
  }

  /** importPiece verifies and stores a piece obtained elsewhere (`tas pcs import`). */
  async importPiece(kind: CollateralKind, key: string, raw: RawCollateral, rootCrl: Buffer | undefined, want: CollateralWant = {}): Promise<Date> {
    const e = await this.store(kind, key, raw, rootCrl, want);
    return new Date(e.nextUpdate);
  }

  /** stored reads a piece from the persistent layer without fetching or checking (status). */
  async stored(key: string): Promise<RawCollateral | undefined> {
    const b = await this.d.blobs.getBlob(key);
    if (!b) return undefined;
    try {
      return decode(b);
    } catch {
      return undefined;
    }
  }

  /** index lists stored pieces: key -> nextUpdate (ISO). Informational (`tas pcs status`); trust never comes from it. */
  async index(): Promise<Record<string, string>> {
    const b = await this.d.blobs.getBlob(INDEX_KEY);
    if (!b) return {};
    try {
      const v = JSON.parse(b.toString('utf8')) as unknown;
      return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, string>) : {};
    } catch {
      return {};
    }
  }

  private indexWrites: Promise<void> = Promise.resolve();

  /**
   * addToIndex is a read-modify-write of one blob: the pieces of one collateral() are stored
   * concurrently, so the writes are chained (unchained, the last writer dropped the others' keys
   * and `tas pcs status` missed pieces that were cached).
   */
  private addToIndex(key: string, nextUpdate: Date): Promise<void> {
    const write = this.indexWrites.then(async () => {
      const idx = await this.index();
      idx[key] = nextUpdate.toISOString();
      await this.d.blobs.putBlob(INDEX_KEY, Buffer.from(JSON.stringify(idx)));
    });
    this.indexWrites = write.catch(() => undefined);
    return write;
  }

  private remember(key: string, raw: RawCollateral, nextUpdate: Date): Entry {
    const e = { raw, nextUpdate: nextUpdate.getTime() };
    this.mem.set(key, e);
    return e;
  }

  /** earliestNextUpdate of the pieces in memory (metric), epoch ms. */
  earliestNextUpdate(): number | undefined {
    let min: number | undefined;
    for (const e of this.mem.values()) if (min === undefined || e.nextUpdate < min) min = e.nextUpdate;
    return min;
  }

  memorySize(): number {
    return this.mem.size;
  }

  clearMemory(): void {
    this.mem.clear();
  }
}
