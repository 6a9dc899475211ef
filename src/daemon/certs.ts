/**
 * createCertCache builds the KDS certificate cache the daemon and `tas kds` use: the fetcher from
 * the kds.* settings, the persistent layer on the store's blobs, and verification against the SNP
 * trust in force (pinned AMD roots plus explicit extra roots) through the native addon. Whatever
 * the cache serves has just been chained to those anchors.
 */
import type { Config } from '../config';
import { CertCache, KdsFetcher, type FetcherOptions } from '../kds';
import { NativeError, nativeToTasError, verifyChain, verifyCrl } from '../native';
import { anchorsFor, pinnedArk, pinnedIntermediate, type Product, type SnpTrust } from '../snp';
import { extraIntermediates } from '../snp/trust';
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
  const verifyLeaf = async (leaf: Buffer, product: Product, kind: 'VCEK' | 'VLEK') => {
    const trust = o.trust();
    const anchors = anchorsFor(trust, product);
    let last: unknown;
    for (const intermediate of [pinnedIntermediate(product, kind), ...extraIntermediates(trust, product, kind)]) {
      try {
        const r = await verifyChain({ leaf, intermediate, anchors, product, kind, atSeconds: Math.floor(now() / 1000) });
        return { notAfter: r.vek.notAfter };
      } catch (e) {
        last = e;
      }
    }
    throw toTas(last);
  };
  const checkCrl = async (crl: Buffer, product: Product) => {
    let last: unknown;
    for (const ark of [pinnedArk(product), ...anchorsFor(o.trust(), product).slice(1)]) {
      try {
        const r = await verifyCrl(crl, ark, Math.floor(now() / 1000), 300, []);
        return { nextUpdate: r.nextUpdate };
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
  return { cache, fetcher };
}
