/**
 * createCollateralCache builds the Intel collateral cache the daemon and `tas pcs` use: the PCS
 * fetcher from the pcs.* settings, the persistent layer on the store's blobs, and a checker that
 * verifies every piece against the TDX trust in force through the native addon (issuer chain to
 * the pinned root, signature over the exact bytes, CRL windows) and its content (TDX v3 / TD_QE v2,
 * the FMSPC and CA the key promises, issueDate..nextUpdate) at the cache's clock.
 */
import type { Config } from '../config';
import { NativeError, nativeToTasError, verifyTdxCollateral, type PcsSignedJson } from '../native';
import { CollateralCache, PcsFetcher, signedSpan, type CollateralChecker, type PcsFetcherOptions } from '../pcs';
import type { BlobStore } from '../store';
import { checkFresh, parseQeIdentity, parseTcbInfo } from '../tdx/tcb';
import type { TdxTrust } from '../tdx/trust';

export interface CollateralCacheOptions {
  cfg: Config;
  blobs: BlobStore;
  trust: () => TdxTrust;
  fetcher?: Partial<PcsFetcherOptions>;
  requestBudgetMs?: number;
  now?: () => number;
  /** TAS_CRL_FAIL_MODE (reloadable); default: this cfg's kds.crl_fail_mode. */
  crlFailMode?: () => 'closed' | 'open';
  onEvent?: ConstructorParameters<typeof CollateralCache>[0]['onEvent'];
}

/** collateralChecker is the cache's checker (exported for `tas pcs import` and tests). */
export function collateralChecker(trust: () => TdxTrust, now: () => number): CollateralChecker {
  return async (kind, raw, rootCrl, want) => {
    const at = Math.floor(now() / 1000);
    const trustRoots = [...trust().roots];
    try {
      if (kind === 'rootCrl') {
        const r = await verifyTdxCollateral({ trustRoots, rootCrl: raw.body, at });
        return { nextUpdate: r.rootCrl!.nextUpdate };
      }
      // Without a root CA CRL (the cache passed it over: TAS_CRL_FAIL_MODE=open) the piece is
      // still checked for everything else; the cache never gets here without one when closed.
      const root = rootCrl ?? null;
      if (!raw.chain) throw new Error(`${kind} has no issuer chain`);
      if (kind === 'pckCrl') {
        const r = await verifyTdxCollateral({ trustRoots, rootCrl: root, pckCrl: raw.body, pckCrlChain: raw.chain, at });
        const cn = r.pckCa?.subjectCN ?? '';
        const ca = /Processor/.test(cn) ? 'processor' : /Platform/.test(cn) ? 'platform' : undefined;
        if (!ca || (want.ca && ca !== want.ca)) throw new Error(`PCK CRL is issued by ${JSON.stringify(cn)}, expected the ${want.ca ?? 'platform or processor'} CA`);
        return { nextUpdate: r.pckCrl!.nextUpdate };
      }
      const member = kind === 'tcbInfo' ? 'tcbInfo' : 'enclaveIdentity';
      const s = signedSpan(raw.body, member);
      const signed: PcsSignedJson = { bodyBytes: s.bodyBytes, signature: s.signature, chain: raw.chain };
      await verifyTdxCollateral({ trustRoots, rootCrl: root, ...(kind === 'tcbInfo' ? { tcbInfo: signed } : { qeIdentity: signed }), at });
      const v = kind === 'tcbInfo' ? parseTcbInfo(s.value) : parseQeIdentity(s.value);
      if (kind === 'tcbInfo' && want.fmspc && (v as ReturnType<typeof parseTcbInfo>).fmspc !== want.fmspc.toLowerCase()) {
        throw new Error(`tcbInfo is for FMSPC ${(v as ReturnType<typeof parseTcbInfo>).fmspc}, expected ${want.fmspc}`);
      }
      checkFresh(member, v.issueDate, v.nextUpdate, new Date(now()));
      return { nextUpdate: v.nextUpdate };
    } catch (e) {
      throw e instanceof NativeError ? nativeToTasError(e) : e;
    }
  };
}

export function createCollateralCache(o: CollateralCacheOptions): { cache: CollateralCache; fetcher: PcsFetcher } {
  const now = o.now ?? Date.now;
  const fetcher = new PcsFetcher({
    baseUrl: o.cfg.get<string>('pcs.base_url'),
    rootCrlUrl: o.cfg.get<string>('pcs.root_crl_url'),
    proxy: o.cfg.get<string | undefined>('pcs.proxy'),
    caFile: o.cfg.get<string | undefined>('pcs.ca_file'),
    offline: o.cfg.get<boolean>('pcs.offline'),
    ...o.fetcher,
  });
  const cache = new CollateralCache({
    fetcher, blobs: o.blobs, check: collateralChecker(o.trust, now), now,
    crlFailMode: o.crlFailMode ?? (() => o.cfg.get<'closed' | 'open'>('kds.crl_fail_mode')),
    ...(o.requestBudgetMs ? { requestBudgetMs: o.requestBudgetMs } : {}),
    ...(o.onEvent ? { onEvent: o.onEvent } : {}),
  });
  return { cache, fetcher };
}
