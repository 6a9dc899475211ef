/**
 * createCertCache builds the KDS certificate cache the daemon and `tas kds` use: the fetcher from
 * the kds.* settings, the persistent layer on the store's blobs, and verification against the SNP
 * trust in force (pinned AMD roots plus explicit extra roots) through the native addon. Whatever
 * the cache serves has just been chained to those anchors.
 */
import type { Config } from '../config';
import { CertCache, KdsFetcher, type FetcherOptions } from '../kds';
import { certInfo, NativeError, nativeToTasError, verifyChain, verifyCrl } from '../native';
import { anchorsFor, pinnedArk, pinnedIntermediate, type Product, type SnpTrust } from '../snp';
import { extraIntermediates, needsChainIntermediates } from '../snp/trust';
import type { BlobStore } from '../store';

export interface CertCacheOptions {
  cfg: Config;
  blobs: BlobStore;
  /** The trust in force (re-read on SIGHUP by the caller). */
  trust: () => SnpTrust;
  /** Overrides for the fetcher (tests shorten spacing and budgets). */
  fetcher?: Partial<FetcherOptions>;
  requestBudgetMs?: number;
  now?: () => number;
  onEvent?: ConstructorParameters<typeof CertCache>[0]['onEvent'];
}

export function createCertCache(o: CertCacheOptions): { cache: CertCache; fetcher: KdsFetcher } {
  const now = o.now ?? Date.now;
  const fetcher = new KdsFetcher({
    baseUrl: o.cfg.get<string>('kds.base_url'),
    proxy: o.cfg.get<string | undefined>('kds.proxy'),
    caFile: o.cfg.get<string | undefined>('kds.ca_file'),
    offline: o.cfg.get<boolean>('kds.offline'),
    ...o.fetcher,
  });
  const toTas = (e: unknown) => (e instanceof NativeError ? nativeToTasError(e) : e);
  // Set below: verifyLeaf may need the cache's KDS cert_chain intermediates (extra roots given as ARKs only).
  const ref: { cache?: CertCache } = {};
  const verifyLeaf = async (leaf: Buffer, product: Product, kind: 'VCEK' | 'VLEK') => {
    const trust = o.trust();
    const anchors = anchorsFor(trust, product);
    let last: unknown;
    const tryAll = async (candidates: Buffer[]) => {
      for (const intermediate of candidates) {
        try {
          const r = await verifyChain({ leaf, intermediate, anchors, product, kind, atSeconds: Math.floor(now() / 1000) });
          return { notAfter: r.vek.notAfter, intermediate, sha256: r.vek.sha256 };
        } catch (e) {
          last = e;
        }
      }
      return undefined;
    };
    const known = [pinnedIntermediate(product, kind), ...extraIntermediates(trust, product, kind), ...(ref.cache?.knownChainIntermediates(product, kind) ?? [])];
    const hit = await tryAll(known);
    if (hit) return hit;
    // An extra root configured without its ASK/ASVK: take the intermediate from KDS cert_chain.
    // It is trusted only through the chain check against the ARK, as AMD's pinned ones are.
    const c = ref.cache;
    if (c && needsChainIntermediates(trust, product, kind) && c.knownChainIntermediates(product, kind).length === 0) {
      const fromKds = await tryAll(await c.chainIntermediates(product, kind));
      if (fromKds) return fromKds;
    }
    throw toTas(last);
  };
  // Serials worth looking up in a CRL: every intermediate we would chain through, and the leaves'
  // serial 0 (AMD issues every VCEK/VLEK with serial 0; a CRL listing it revokes them all).
  const serialsOf = (product: Product, kind: 'VCEK' | 'VLEK'): string[] =>
    [pinnedIntermediate(product, kind), ...extraIntermediates(o.trust(), product, kind), ...(ref.cache?.knownChainIntermediates(product, kind) ?? [])]
      .map((c) => serialHex(c)).concat('00');
  const checkCrl = async (crl: Buffer, product: Product, kind: 'VCEK' | 'VLEK') => {
    let last: unknown;
    for (const ark of [pinnedArk(product), ...anchorsFor(o.trust(), product).slice(1)]) {
      try {
        const r = await verifyCrl(crl, ark, Math.floor(now() / 1000), 300, serialsOf(product, kind));
        return { nextUpdate: r.nextUpdate, revoked: r.revoked.map(normSerial) };
      } catch (e) {
        last = e;
      }
    }
    throw toTas(last);
  };
  const cache = new CertCache({
    fetcher, blobs: o.blobs, verifyLeaf, checkCrl, now,
    crlFailMode: o.cfg.get<'closed' | 'open'>('kds.crl_fail_mode'),
    ...(o.requestBudgetMs ? { requestBudgetMs: o.requestBudgetMs } : {}),
    ...(o.onEvent ? { onEvent: o.onEvent } : {}),
  });
  ref.cache = cache;
  return { cache, fetcher };
}

const serials = new WeakMap<Buffer, string>();

/** normSerial writes a serial as lowercase hex without leading zeros ('00' for zero). */
export function normSerial(hex: string): string {
  const t = hex.toLowerCase().replace(/^0+/, '');
  return t === '' ? '00' : t;
}

/** serialHex returns a certificate's normalised serial (memoised per buffer: the roots are parsed once). */
export function serialHex(cert: Buffer): string {
  let s = serials.get(cert);
  if (s === undefined) {
    s = normSerial(certInfo(cert).serialHex);
    serials.set(cert, s);
  }
  return s;
}
