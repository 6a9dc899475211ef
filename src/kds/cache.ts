/**
 * Certificate cache layers: verified chains in memory -> persistent (embedded: files under
 * TAS_CACHE_DIR; Redis: shared by the fleet) -> AMD KDS. A VCEK is immutable for its key
 * (product + hwid + every SPL incl. FMC), so it is kept for good — but whatever comes from a
 * persistent layer is re-verified against the pinned roots before use: a poisoned cache cannot
 * forge trust. CRLs are kept only until their nextUpdate; when no fresh CRL can be had,
 * TAS_CRL_FAIL_MODE decides (closed: 503; open: verify without and say so in the audit record).
 */
import type { BlobStore } from '../store/types';
import { TasError } from '../errors';
import { KdsFetcher, pemToDer } from './fetcher';
import { certChainPath, crlPath, vcekCacheKey, vcekPath, vlekIndexKey, type Product, type ReportedTcb, type VekKind } from './urls';

/** LeafVerifier chains a VCEK/VLEK (DER) to the pinned roots; throws TasError when it does not. */
export type LeafVerifier = (leaf: Buffer, product: Product, kind: VekKind) => Promise<{ notAfter: Date; intermediate?: Buffer; /** SHA-256 of the leaf DER, from the addon. */ sha256: Buffer }>;
/**
 * CrlChecker verifies an ARK-signed CRL and its freshness at `now`; throws when bad or stale. It
 * also returns which of the serials that matter (the trusted intermediates', the leaves') it lists,
 * so that requests can check revocation without re-verifying the CRL's signature every time.
 */
export type CrlChecker = (crl: Buffer, product: Product, kind: VekKind) => Promise<{ nextUpdate: Date; revoked?: readonly string[] }>;

/** FreshCrl is a verified CRL still inside its validity window. */
export interface FreshCrl {
  der: Buffer | undefined;
  /** Serials (lowercase hex) of known intermediates/leaves that the CRL revokes. */
  revoked?: ReadonlySet<string>;
  note?: string;
}

export interface CacheStats {
  hits: Record<'memory' | 'persistent', number>;
  misses: number;
  rejectedPersistent: number;
}

export interface CertCacheDeps {
  fetcher: KdsFetcher;
  blobs: BlobStore;
  verifyLeaf: LeafVerifier;
  checkCrl: CrlChecker;
  crlFailMode: 'closed' | 'open';
  now?: () => number;
  /** Deadline for KDS inside one request. */
  requestBudgetMs?: number;
  onEvent?: (kind: 'hit_memory' | 'hit_persistent' | 'miss' | 'poisoned', detail: string) => void;
  maxMemoryEntries?: number;
}

interface MemEntry {
  leaf: Buffer;
  /** The ASK/ASVK the leaf verified under (saves trying candidates on every request). */
  intermediate: Buffer | undefined;
  notAfter: number;
}

/** VekHit is a verified VCEK/VLEK with the intermediate it chains through. */
export interface VekHit {
  leaf: Buffer;
  intermediate?: Buffer;
  source: string;
}

const INDEX_KEY = 'index/certificates';

export class CertCache {
  private readonly mem = new Map<string, MemEntry>();
  private readonly crls = new Map<string, { der: Buffer; nextUpdate: number; revoked: ReadonlySet<string> }>();
  readonly stats: CacheStats = { hits: { memory: 0, persistent: 0 }, misses: 0, rejectedPersistent: 0 };
  private readonly now: () => number;

  constructor(private readonly d: CertCacheDeps) {
    this.now = d.now ?? Date.now;
  }

  /** deadline is on the real clock (the fetcher's), whatever clock certificate validity is judged by. */
  private deadline(): number {
    return Date.now() + (this.d.requestBudgetMs ?? 8_000);
  }

  /**
   * index lists the certificates this cache (or another instance on the same store) has stored:
   * key -> notAfter (ISO). Informational (`tas kds status`); trust never comes from it.
   */
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

  private async addToIndex(key: string, notAfter: Date): Promise<void> {
    const idx = await this.index();
    idx[key] = notAfter.toISOString();
    await this.d.blobs.putBlob(INDEX_KEY, Buffer.from(JSON.stringify(idx)));
  }

  private readonly pending = new Map<string, Promise<VekHit>>();
  private readonly crlPending = new Map<string, Promise<FreshCrl>>();

  /**
   * vcek returns a verified VCEK for a chip and REPORTED_TCB. Concurrent misses for one key share
   * one lookup (one persistent read, at most one KDS request, one verification).
   */
  vcek(product: Product, chipId: Uint8Array, tcb: ReportedTcb): Promise<VekHit> {
    const key = vcekCacheKey(product, chipId, tcb);
    const m = this.mem.get(key);
    if (m && m.notAfter > this.now()) {
      this.stats.hits.memory++;
      this.d.onEvent?.('hit_memory', key);
      return Promise.resolve({ leaf: m.leaf, ...(m.intermediate ? { intermediate: m.intermediate } : {}), source: 'memory' });
    }
    const running = this.pending.get(key);
    if (running) return running;
    const p = this.lookup(key, product, chipId, tcb).finally(() => this.pending.delete(key));
    this.pending.set(key, p);
    return p;
  }

  private async lookup(key: string, product: Product, chipId: Uint8Array, tcb: ReportedTcb): Promise<VekHit> {
    const m = this.mem.get(key);
    if (m && m.notAfter > this.now()) {
      this.stats.hits.memory++;
      this.d.onEvent?.('hit_memory', key);
      return { leaf: m.leaf, source: 'memory' };
    }
    const stored = await this.d.blobs.getBlob(key);
    if (stored) {
      try {
        const v = await this.d.verifyLeaf(stored, product, 'VCEK');
        this.remember(key, stored, v.notAfter, v.intermediate);
        this.stats.hits.persistent++;
        this.d.onEvent?.('hit_persistent', key);
        return { leaf: stored, ...(v.intermediate ? { intermediate: v.intermediate } : {}), source: 'persistent' };
      } catch (e) {
        // A cached certificate that no longer chains is poison: never use it, fetch afresh.
        this.stats.rejectedPersistent++;
        this.d.onEvent?.('poisoned', `${key}: ${(e as Error).message}`);
      }
    }
    this.stats.misses++;
    this.d.onEvent?.('miss', key);
    const body = await this.d.fetcher.get(vcekPath(product, chipId, tcb), { deadline: this.deadline() });
    const leaf = pemToDer(body)[0]!;
    const v = await this.d.verifyLeaf(leaf, product, 'VCEK');
    await this.d.blobs.putBlob(key, leaf);
    await this.addToIndex(key, v.notAfter);
    this.remember(key, leaf, v.notAfter, v.intermediate);
    return { leaf, ...(v.intermediate ? { intermediate: v.intermediate } : {}), source: 'kds' };
  }

  /** importLeaf verifies and stores a VCEK obtained elsewhere (`tas kds import`). */
  async importLeaf(key: string, leaf: Buffer, product: Product, kind: VekKind): Promise<void> {
    const v = await this.d.verifyLeaf(leaf, product, kind);
    await this.d.blobs.putBlob(key, leaf);
    await this.addToIndex(key, v.notAfter);
    this.remember(key, leaf, v.notAfter, v.intermediate);
  }

  /** storedCrl returns the stored CRL of a product/kind without fetching (status). */
  async storedCrl(product: Product, kind: VekKind): Promise<{ der: Buffer; nextUpdate: Date } | undefined> {
    const der = await this.d.blobs.getBlob(`crl/${product}/${kind}`);
    if (!der) return undefined;
    try {
      return { der, nextUpdate: (await this.d.checkCrl(der, product, kind)).nextUpdate };
    } catch {
      return undefined;
    }
  }

  /** crl returns a fresh, verified CRL, or undefined when fail-open and none can be had. */
  async crl(product: Product, kind: VekKind): Promise<FreshCrl> {
    const key = `crl/${product}/${kind}`;
    const m = this.crls.get(key);
    if (m && m.nextUpdate > this.now()) return { der: m.der, revoked: m.revoked };
    // Single flight per CRL, like VCEKs: without it a request arriving after the fetch finished
    // but before the CRL was stored found neither, and the per-URL KDS spacing turned its own
    // fetch into a 503 (seen under load at cold start: test/bench/soak, test/hostile).
    const running = this.crlPending.get(key);
    if (running) return running;
    const p = this.loadCrl(product, kind, key).finally(() => this.crlPending.delete(key));
    this.crlPending.set(key, p);
    return p;
  }

  private async loadCrl(product: Product, kind: VekKind, key: string): Promise<FreshCrl> {
    let why = '';
    try {
      const stored = await this.d.blobs.getBlob(key);
      if (stored) {
        try {
          const r = await this.d.checkCrl(stored, product, kind);
          return this.rememberCrl(key, stored, r);
        } catch (e) {
          why = `cached CRL unusable: ${(e as Error).message}; `;
        }
      }
      const body = await this.d.fetcher.get(crlPath(product, kind), { deadline: this.deadline() });
      const der = pemToDer(body)[0]!;
      const r = await this.d.checkCrl(der, product, kind);
      const ttl = Math.floor((r.nextUpdate.getTime() - this.now()) / 1000);
      if (ttl > 0) await this.d.blobs.putBlob(key, der, ttl);
      return this.rememberCrl(key, der, r);
    } catch (e) {
      why += (e as Error).message;
      if (this.d.crlFailMode === 'open') return { der: undefined, note: `no fresh CRL (fail-open): ${why}` };
      const retry = e instanceof TasError ? e.retryAfterSeconds : undefined;
      throw new TasError('KDS_UNAVAILABLE', `no fresh CRL for ${product} ${kind}: ${why}`, { reason: 'CRL_UNAVAILABLE', retryAfterSeconds: retry ?? 30 });
    }
  }

  private rememberCrl(key: string, der: Buffer, r: { nextUpdate: Date; revoked?: readonly string[] }): FreshCrl {
    const revoked = new Set((r.revoked ?? []).map((x) => x.toLowerCase()));
    this.crls.set(key, { der, nextUpdate: r.nextUpdate.getTime(), revoked });
    return { der, revoked };
  }

  /** importCrl verifies and stores a CRL obtained elsewhere. */
  async importCrl(der: Buffer, product: Product, kind: VekKind): Promise<Date> {
    const r = await this.d.checkCrl(der, product, kind);
    const ttl = Math.floor((r.nextUpdate.getTime() - this.now()) / 1000);
    if (ttl <= 0) throw new Error('CRL is past its nextUpdate');
    await this.d.blobs.putBlob(`crl/${product}/${kind}`, der, ttl);
    this.rememberCrl(`crl/${product}/${kind}`, der, r);
    return r.nextUpdate;
  }

  /**
   * importVlek verifies (ASVK -> ARK) and stores a VLEK obtained from a CSP (`tas kds import`),
   * listed under its product and TCB (several CSPs may share one).
   */
  async importVlek(leaf: Buffer, product: Product, tcb: ReportedTcb): Promise<string> {
    const v = await this.d.verifyLeaf(leaf, product, 'VLEK');
    const index = vlekIndexKey(product, tcb);
    const key = `${index}/${v.sha256.toString('hex').slice(0, 32)}`;
    await this.d.blobs.putBlob(key, leaf);
    const list = await this.vlekKeys(index);
    if (!list.includes(key)) await this.d.blobs.putBlob(index, Buffer.from(JSON.stringify([...list, key])));
    await this.addToIndex(key, v.notAfter);
    this.vlekMem.delete(index);
    return key;
  }

  private async vlekKeys(index: string): Promise<string[]> {
    const b = await this.d.blobs.getBlob(index);
    if (!b) return [];
    try {
      const v = JSON.parse(b.toString('utf8')) as unknown;
      return Array.isArray(v) ? v.filter((k): k is string => typeof k === 'string' && k.startsWith(`${index}/`)) : [];
    } catch {
      return [];
    }
  }

  private readonly vlekMem = new Map<string, { hits: VekHit[]; notAfter: number }>();

  /**
   * vleks returns the provisioned VLEKs of a product and REPORTED_TCB, each re-verified against the
   * roots in force (a poisoned store forges nothing). Empty when none was imported.
   */
  async vleks(product: Product, tcb: ReportedTcb): Promise<VekHit[]> {
    const index = vlekIndexKey(product, tcb);
    const m = this.vlekMem.get(index);
    if (m && m.notAfter > this.now()) return m.hits;
    const hits: VekHit[] = [];
    let notAfter = Number.POSITIVE_INFINITY;
    for (const key of await this.vlekKeys(index)) {
      const leaf = await this.d.blobs.getBlob(key);
      if (!leaf) continue;
      try {
        const v = await this.d.verifyLeaf(leaf, product, 'VLEK');
        hits.push({ leaf, ...(v.intermediate ? { intermediate: v.intermediate } : {}), source: 'persistent' });
        notAfter = Math.min(notAfter, v.notAfter.getTime());
      } catch (e) {
        this.stats.rejectedPersistent++;
        this.d.onEvent?.('poisoned', `${key}: ${(e as Error).message}`);
      }
    }
    if (hits.length > 0) this.vlekMem.set(index, { hits: hits.map((h) => ({ ...h, source: 'memory' })), notAfter });
    return hits;
  }

  private readonly chains = new Map<string, Buffer[]>();
  private readonly chainPending = new Map<string, Promise<Buffer[]>>();

  /** knownChainIntermediates returns the cert_chain intermediates learned so far (no I/O). */
  knownChainIntermediates(product: Product, kind: VekKind): Buffer[] {
    return this.chains.get(`chain/${product}/${kind}`) ?? [];
  }

  /**
   * chainIntermediates returns the ASK (VCEK) or ASVK (VLEK) that KDS serves in `cert_chain` for
   * a product, for roots whose intermediate is not configured (TAS_SNP_EXTRA_TRUST_DIR with ARKs
   * only). They are UNTRUSTED candidates: whoever uses one chains it to a trusted ARK, exactly as
   * for AMD's pinned roots. Fetched once (single flight), kept in the store (the cert_chain changes
   * only with a new root) and in memory. Learning one drops the product's CRL from memory, so that
   * its next check also looks for this intermediate's serial.
   */
  async chainIntermediates(product: Product, kind: VekKind): Promise<Buffer[]> {
    const key = `chain/${product}/${kind}`;
    const m = this.chains.get(key);
    if (m) return m;
    const running = this.chainPending.get(key);
    if (running) return running;
    const p = (async () => {
      let body = await this.d.blobs.getBlob(key);
      const fetched = body === undefined;
      if (body === undefined) body = await this.d.fetcher.get(certChainPath(product, kind), { deadline: this.deadline() });
      // cert_chain is the intermediate then the ARK; the root is never taken from here.
      const certs = pemToDer(body);
      if (certs.length < 2) throw new TasError('KDS_UNAVAILABLE', `KDS cert_chain for ${product} ${kind} holds ${certs.length} certificate(s), expected the intermediate and the ARK`, { reason: 'KDS_CHAIN_MALFORMED', retryAfterSeconds: 30 });
      const ints = certs.slice(0, -1);
      if (fetched) await this.d.blobs.putBlob(key, body);
      this.chains.set(key, ints);
      this.crls.delete(`crl/${product}/${kind}`);
      return ints;
    })().finally(() => this.chainPending.delete(key));
    this.chainPending.set(key, p);
    return p;
  }

  /** certChain fetches the KDS cert_chain (intermediate, ARK) — used only as a cross-check. */
  async certChain(product: Product, kind: VekKind): Promise<Buffer[]> {
    return pemToDer(await this.d.fetcher.get(certChainPath(product, kind), { deadline: this.deadline() }));
  }

  /** Earliest notAfter of the certificates in memory (metric), in epoch ms. */
  earliestExpiry(): number | undefined {
    let min: number | undefined;
    for (const e of this.mem.values()) if (min === undefined || e.notAfter < min) min = e.notAfter;
    return min;
  }

  /** Earliest CRL nextUpdate in memory (metric), in epoch ms. */
  earliestCrlUpdate(): number | undefined {
    let min: number | undefined;
    for (const e of this.crls.values()) if (min === undefined || e.nextUpdate < min) min = e.nextUpdate;
    return min;
  }

  memorySize(): number {
    return this.mem.size;
  }

  clearMemory(): void {
    this.mem.clear();
    this.crls.clear();
    this.chains.clear();
    this.vlekMem.clear();
  }

  private remember(key: string, leaf: Buffer, notAfter: Date, intermediate?: Buffer): void {
    if (this.mem.size >= (this.d.maxMemoryEntries ?? 50_000)) {
      const oldest = this.mem.keys().next().value;
      if (oldest !== undefined) this.mem.delete(oldest);
    }
    this.mem.set(key, { leaf, intermediate, notAfter: notAfter.getTime() });
  }
}
