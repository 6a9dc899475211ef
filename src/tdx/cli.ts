/**
 * `tas verify --quote` (TDX part of the TEE-neutral `tas verify`, src/verify.ts) and
 * `tas pcs prefetch|import|status`. Collateral comes from `--collateral DIR` (laid out like an
 * entry of test/fixtures/tdx-vectors: tcb_info.json, qe_identity.json, their issuer chains,
 * pck_crl.der + pck_crl_issuer_chain.pem, root_ca_crl.der), else from the cache and PCS.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CliError, defineCommand, EXIT, group, openServiceStore, toolConfig } from '../cli-kit';
import { TasError } from '../errors';
import { cacheKeys, type CollateralCache, type CollateralUpdate, type PckCa } from '../pcs';
import type { RawCollateral } from '../pcs';
import type { Store } from '../store';
import { loadTdxTrust, TDX_PINNED_ONLY, type TdxTrust } from './trust';
import { peekQuote, TdxVerifier, type CollateralSet, type TdxPeek } from './verify';

const MAX_INPUT = 1024 * 1024;

function readFile(path: string, what: string): Buffer {
  const st = statSync(path, { throwIfNoEntry: false });
  if (!st || !st.isFile()) throw new CliError(EXIT.USAGE, `${what} ${path}: no such file`);
  if (st.size > MAX_INPUT) throw new CliError(EXIT.USAGE, `${what} ${path}: larger than ${MAX_INPUT} bytes`);
  return readFileSync(path);
}

/** readCollateralDir reads a directory laid out like a tdx-vectors entry. */
export function readCollateralDir(dir: string, update: CollateralUpdate = 'standard'): CollateralSet & { pckCrl: RawCollateral; rootCrl: RawCollateral; pckCrlChain: Buffer } {
  const f = (n: string) => readFile(join(dir, n), '--collateral');
  const pckCrlChain = f('pck_crl_issuer_chain.pem');
  return {
    tcbInfo: { body: f('tcb_info.json'), chain: f('tcb_info_issuer_chain.pem') },
    qeIdentity: { body: f('qe_identity.json'), chain: f('qe_identity_issuer_chain.pem') },
    pckCrl: { body: f('pck_crl.der'), chain: pckCrlChain },
    rootCrl: { body: f('root_ca_crl.der') },
    update, pckCrlChain,
  };
}

interface Opened {
  cache: CollateralCache;
  store: Store;
  trust: TdxTrust;
  update: CollateralUpdate;
  minEval: number;
  close(): Promise<void>;
}

async function openCache(configFile: string | undefined, opts: { budgetMs?: number; crlFailMode?: 'closed' | 'open' } = {}): Promise<Opened> {
  const cfg = toolConfig(configFile);
  const { store, close } = openServiceStore(cfg);
  const trust = loadTdxTrust({ extraTrustDir: cfg.get<string | undefined>('tdx.extra_trust_dir') });
  // Loaded lazily: the composition helper lives in src/daemon (it joins pcs, native and tdx).
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { createCollateralCache } = require('../daemon/collateral') as typeof import('../daemon/collateral');
  const { cache, fetcher } = createCollateralCache({
    cfg, blobs: store, trust: () => trust, requestBudgetMs: opts.budgetMs ?? 30_000,
    ...(opts.crlFailMode ? { crlFailMode: () => opts.crlFailMode! } : {}),
  });
  return {
    cache, store, trust,
    update: cfg.get<CollateralUpdate>('tdx.collateral_update'),
    minEval: cfg.get<number>('tdx.min_tcb_eval_number'),
    close: () => close(() => fetcher.close()),
  };
}

export interface QuoteVerifyArgs {
  quote: string;
  collateral?: string | undefined;
  at: Date;
  config?: string | undefined;
}

/** TdxEnvelope is the `tas verify --quote` result (the TEE-neutral envelope plus `tcb`). */
export interface TdxEnvelope {
  valid: boolean;
  tee: 'intel-tdx';
  claims: Record<string, unknown> | null;
  tcb: Record<string, unknown> | null;
  checks: Array<{ name: string; ok: boolean; detail: string }>;
  reason?: string;
}

/** checkQuote verifies one quote with given collateral and never throws for a negative verdict. */
export async function checkQuote(quote: Buffer, c: CollateralSet, at: Date, trust: TdxTrust = TDX_PINNED_ONLY, minEval = 0): Promise<TdxEnvelope> {
  const checks: TdxEnvelope['checks'] = [];
  let peek: TdxPeek;
  try {
    peek = peekQuote(quote);
    checks.push({ name: 'quote_structure', ok: true, detail: `quote v${peek.quote.version}, body type ${peek.quote.bodyType}, FMSPC ${peek.fmspc}, PCK ${peek.ca} CA` });
  } catch (e) {
    const t = e as TasError;
    checks.push({ name: 'quote_structure', ok: false, detail: t.detail ?? String(e) });
    return { valid: false, tee: 'intel-tdx', claims: null, tcb: null, checks, reason: t.reason ?? 'TDX_ERR_QUOTE_SIZE' };
  }
  try {
    const v = await new TdxVerifier({ trustRoots: () => [...trust.roots], minEvalNumber: () => minEval }).verify(quote, peek, c, at);
    const n = v.native;
    checks.push(
      { name: 'pck_chain', ok: true, detail: `PCK leaf ${n.pck.leaf.serialHex} by ${n.pck.ca.subjectCN}, root sha256 ${n.pck.rootSha256.toString('hex')}` },
      { name: 'revocation', ok: true, detail: `root CA CRL until ${n.crls.root?.nextUpdate.toISOString() ?? 'NOT CHECKED'}, PCK CRL until ${n.crls.pck?.nextUpdate.toISOString() ?? 'NOT CHECKED'}` },
      { name: 'signatures', ok: true, detail: 'QE report (PCK key), attestation key binding, quote (attestation key), tcbInfo and QE identity (TCB Signing)' },
      { name: 'collateral', ok: true, detail: `TDX TCB Info eval ${v.tcb.evalNumber} and TD_QE identity fresh until ${v.tcb.nextUpdate.toISOString()}` },
      { name: 'tcb', ok: true, detail: `${v.tcb.status} (platform ${v.tcb.platform}, module ${v.tcb.module}, QE ${v.tcb.qe})` },
    );
    return {
      valid: true, tee: 'intel-tdx', claims: v.claims, checks,
      tcb: { status: v.tcb.status, advisory_ids: v.tcb.advisoryIds, platform: v.tcb.platform, module: v.tcb.module, qe: v.tcb.qe, update: c.update, eval_number: v.tcb.evalNumber },
    };
  } catch (e) {
    const t = e instanceof TasError ? e : new TasError('TEE_VERIFICATION_FAILED', String(e));
    checks.push({ name: 'verification', ok: false, detail: t.detail });
    return { valid: false, tee: 'intel-tdx', claims: null, tcb: null, checks, reason: t.reason };
  }
}

/** runQuoteVerify is `tas verify --quote`; returns the envelope. */
export async function runQuoteVerify(a: QuoteVerifyArgs): Promise<TdxEnvelope> {
  const quote = readFile(a.quote, '--quote');
  if (a.collateral !== undefined) {
    const st = statSync(a.collateral, { throwIfNoEntry: false });
    if (!st || !st.isDirectory()) throw new CliError(EXIT.USAGE, `--collateral ${a.collateral}: no such directory`);
    return checkQuote(quote, readCollateralDir(a.collateral), a.at);
  }
  const o = await openCache(a.config);
  try {
    let peek: TdxPeek;
    try {
      peek = peekQuote(quote);
    } catch {
      return checkQuote(quote, undefined as never, a.at, o.trust);
    }
    let c;
    try {
      c = await o.cache.collateral(peek.fmspc, peek.ca, o.update);
    } catch (e) {
      throw new CliError(EXIT.USAGE, `no collateral for FMSPC ${peek.fmspc}: ${(e as Error).message} (use --collateral DIR or \`tas pcs import\`)`);
    }
    return checkQuote(quote, c, a.at, o.trust, o.minEval);
  } finally {
    await o.close();
  }
}

// --- tas pcs ----------------------------------------------------------------------------------------

async function importDir(o: Opened, dir: string): Promise<Array<{ key: string; next_update: string }>> {
  const c = readCollateralDir(dir, o.update);
  const root = await o.cache.importPiece('rootCrl', cacheKeys.rootCrl(), c.rootCrl, undefined);
  const info = JSON.parse(c.tcbInfo.body.toString('utf8')) as { tcbInfo?: { fmspc?: string } };
  const fmspc = String(info.tcbInfo?.fmspc ?? '').toLowerCase();
  const chainText = c.pckCrlChain.toString('latin1');
  const ca: PckCa = chainText.includes('Processor') && !chainText.includes('Platform') ? 'processor' : 'platform';
  const out = [{ key: cacheKeys.rootCrl(), next_update: root.toISOString() }];
  const put = async (kind: 'tcbInfo' | 'qeIdentity' | 'pckCrl', key: string, raw: RawCollateral, want: Record<string, string>) => {
    out.push({ key, next_update: (await o.cache.importPiece(kind, key, raw, c.rootCrl.body, want)).toISOString() });
  };
  await put('tcbInfo', cacheKeys.tcbInfo(fmspc, o.update), c.tcbInfo, { fmspc, update: o.update });
  await put('qeIdentity', cacheKeys.qeIdentity(o.update), c.qeIdentity, { update: o.update });
  await put('pckCrl', cacheKeys.pckCrl(ca), c.pckCrl, { ca });
  return out;
}

function print(format: string | undefined, v: unknown, text: string): void {
  process.stdout.write(format === 'text' ? `${text}\n` : `${JSON.stringify(v, null, 2)}\n`);
}

export const pcsCommand = group('pcs <command>', 'Prefetch, import and inspect Intel TDX collateral (offline hosts)', [
  defineCommand<{ fmspc: string[]; ca?: string; update?: string; timeout: number; config?: string; format?: string }>({
    command: 'prefetch',
    describe: 'Fetch, verify and cache the collateral of FMSPCs (TCB Info, QE identity, PCK and root CA CRLs)',
    builder: (y) => y.example('$0 pcs prefetch --fmspc 00806f050000', 'caches the Intel collateral (TCB Info, QE identity, CRLs) of one platform family')
      .option('fmspc', { type: 'string', array: true, demandOption: true, describe: 'FMSPC (12 hex digits), repeatable' })
      .option('ca', { type: 'string', choices: ['platform', 'processor'], default: 'platform' })
      .option('update', { type: 'string', choices: ['standard', 'early'], describe: 'TCB collateral update mode (default: TAS_TDX_COLLATERAL_UPDATE)' })
      .option('timeout', { type: 'number', default: 30, describe: 'Seconds per FMSPC (retries included) before it counts as failed' })
      .option('format', { type: 'string', choices: ['json', 'text'], default: 'json' }) as never,
    // Like `tas kds prefetch`: every FMSPC is tried; each failure (PCS down, refusing, throttling,
    // answering errors or collateral that does not verify) is one FAIL line / result with its
    // reason, and any failure makes the exit code 3 (a runtime failure, not a verdict).
    run: async (a) => {
      if (!(a.timeout > 0)) throw new CliError(EXIT.USAGE, '--timeout must be a positive number of seconds');
      for (const f of a.fmspc) if (!/^[0-9a-fA-F]{12}$/.test(f)) throw new CliError(EXIT.USAGE, `--fmspc ${f}: need 12 hex digits`);
      // The CRLs are part of what an offline host needs: prefetch never passes one over, whatever
      // TAS_CRL_FAIL_MODE says for requests.
      const o = await openCache(a.config, { budgetMs: Math.round(a.timeout * 1000), crlFailMode: 'closed' });
      const update = (a.update ?? o.update) as CollateralUpdate;
      const results: Array<{ item: string; ok: boolean; detail: string; source?: unknown }> = [];
      try {
        for (const f of a.fmspc.map((x) => x.toLowerCase())) {
          try {
            const c = await o.cache.collateral(f, (a.ca ?? 'platform') as PckCa, update);
            results.push({ item: f, ok: true, detail: `update=${update}`, source: c.source });
          } catch (e) {
            results.push({ item: f, ok: false, detail: e instanceof TasError ? `${e.reason}: ${e.detail}` : (e as Error).message });
          }
        }
      } finally {
        await o.close();
      }
      const failed = results.filter((r) => !r.ok).length;
      print(a.format, { ok: failed === 0, failed, update, results },
        results.map((r) => (r.ok ? `ok   ${r.item}: ${r.detail} ${JSON.stringify(r.source)}` : `FAIL ${r.item}: ${r.detail}`)).join('\n'));
      if (failed && a.format === 'text') process.stderr.write(`tas: ${failed} of ${results.length} FMSPCs could not be fetched (see the FAIL lines)\n`);
      return failed ? EXIT.STARTUP : EXIT.OK;
    },
  }),
  defineCommand<{ dir: string[]; config?: string; format?: string }>({
    command: 'import <dir..>',
    describe: 'Verify and store collateral directories laid out like a tdx-vectors entry (offline hosts)',
    builder: (y) => y.example('$0 pcs import /media/usb/intel-collateral', 'verifies and caches collateral fetched on another host').positional('dir', { type: 'string', array: true }).option('format', { type: 'string', choices: ['json', 'text'], default: 'json' }) as never,
    run: async (a) => {
      const o = await openCache(a.config);
      const results: Array<{ dir: string; ok: boolean; stored?: unknown; error?: string }> = [];
      try {
        for (const d of a.dir) {
          try {
            results.push({ dir: d, ok: true, stored: await importDir(o, d) });
          } catch (e) {
            if (e instanceof CliError) throw e;
            results.push({ dir: d, ok: false, error: (e as Error).message });
          }
        }
      } finally {
        await o.close();
      }
      print(a.format, { results }, results.map((r) => `${r.ok ? 'ok  ' : 'FAIL'} ${r.dir} ${r.error ?? ''}`).join('\n'));
      return results.every((r) => r.ok) ? EXIT.OK : EXIT.CHECK_FAILED;
    },
  }),
  defineCommand<{ config?: string; format?: string }>({
    command: 'status',
    describe: 'List the stored collateral and its nextUpdate',
    builder: (y) => y.example('$0 pcs status --format text', 'cached Intel collateral and its freshness').option('format', { type: 'string', choices: ['json', 'text'], default: 'json' }) as never,
    run: async (a) => {
      const o = await openCache(a.config);
      try {
        const idx = await o.cache.index();
        const now = Date.now();
        const entries = Object.entries(idx).map(([key, nu]) => ({ key, next_update: nu, fresh: Date.parse(nu) > now }));
        print(a.format, { collateral_update: o.update, entries }, entries.map((e) => `${e.fresh ? 'fresh' : 'STALE'} ${e.key} until ${e.next_update}`).join('\n'));
        return EXIT.OK;
      } finally {
        await o.close();
      }
    },
  }),
] as never);
