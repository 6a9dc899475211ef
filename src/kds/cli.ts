/**
 * `tas kds prefetch|import|status`: certificates for hosts that cannot (or must not) reach AMD.
 *   prefetch  fetch VCEKs (and CRLs) for given chips and TCBs, or for the chips of given reports,
 *             into the persistent cache, with a progress line; run where KDS is reachable
 *   import    verify certificates and CRLs obtained elsewhere (DER or PEM files, or a directory)
 *             against the pinned roots and store them; works with TAS_KDS_OFFLINE=true
 *   status    what is cached (certificates and their expiry, CRL freshness per product)
 * Everything stored is verified first; the daemon re-verifies whatever it loads again.
 * The API keys are not needed; on an installed host the commands read /etc/tas/tas.yaml and, run as
 * root, hand what they write to the service user (src/cli-kit.ts handOverToService).
 * Exit codes: 0 ok; 1 `import` refused some files (a verdict on them); 2 usage or configuration
 * error; 3 `prefetch` could not fetch some items (KDS down, refusing, answering errors: one FAIL
 * line per item, with the reason) or an internal error.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CliError, defineCommand, EXIT, group, openServiceStore, toolConfig, withFormat } from '../cli-kit';
import { isTasError } from '../errors';
import { certInfo, parseVek } from '../native';
import { loadSnpTrust, peekReport, PRODUCTS, type Product } from '../snp';
import type { Store } from '../store';
import type { CertCache } from './cache';
import { pemToDer } from './fetcher';
import { vcekCacheKey, type ReportedTcb } from './urls';

interface Opened {
  cache: CertCache;
  store: Store;
  close(): Promise<void>;
}

async function open(configFile: string | undefined, opts: { budgetMs?: number } = {}): Promise<Opened> {
  const cfg = toolConfig(configFile);
  const { store, close } = openServiceStore(cfg);
  const trust = loadSnpTrust({ extraTrustDir: cfg.get<string | undefined>('snp.extra_trust_dir') });
  // Loaded lazily: the composition helper lives in src/daemon (it joins kds, native and snp).
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { createCertCache } = require('../daemon/certs') as typeof import('../daemon/certs');
  const { cache, fetcher } = createCertCache({ cfg, blobs: store, trust: () => trust, requestBudgetMs: opts.budgetMs ?? 30_000 });
  return {
    cache,
    store,
    close: () => close(() => fetcher.close()),
  };
}

const why = (e: unknown) => (isTasError(e) ? `${e.reason}: ${e.detail}` : (e as Error).message);

/** progress writes a one-line progress bar to stderr (a TTY redraws it, a log gets lines). */
function progress(done: number, total: number, label: string): void {
  const width = 24;
  const fill = total ? Math.round((done / total) * width) : width;
  const line = `[${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${done}/${total} ${label}`;
  process.stderr.write(process.stderr.isTTY ? `\r${line.padEnd(100)}${done === total ? '\n' : ''}` : `${line}\n`);
}

/** parseTcb reads `bl=10,tee=0,snp=23,ucode=84[,fmc=1]`. */
export function parseTcb(text: string): ReportedTcb {
  const m = new Map<string, number>();
  for (const part of text.split(',')) {
    const [k, v] = part.split('=') as [string, string | undefined];
    if (v === undefined || !/^\d{1,3}$/.test(v) || Number(v) > 255) throw new CliError(EXIT.USAGE, `--tcb: '${part}' is not name=0..255`);
    m.set(k.trim().toLowerCase(), Number(v));
  }
  const get = (...names: string[]) => names.map((n) => m.get(n)).find((x) => x !== undefined);
  const t = { bootloader: get('bl', 'bootloader'), tee: get('tee'), snp: get('snp'), microcode: get('ucode', 'microcode'), fmc: get('fmc') };
  if (t.bootloader === undefined || t.tee === undefined || t.snp === undefined || t.microcode === undefined) {
    throw new CliError(EXIT.USAGE, '--tcb needs bl, tee, snp and ucode (and fmc on Turin)');
  }
  return t as ReportedTcb;
}

interface Target {
  product: Product;
  chip: Buffer;
  tcb: ReportedTcb;
  label: string;
}

const prefetch = defineCommand<{ config?: string; product?: string; chipId?: string[]; tcb?: string[]; report?: string[]; crl: boolean; timeout: number; format: string }>({
  command: 'prefetch',
  describe: 'Fetch VCEKs (and CRLs) into the persistent cache for given chips/TCBs or reports',
  builder: (y) =>
    withFormat(y)
      .example('$0 kds prefetch --report vm1.bin --report vm2.bin', 'cache the VCEKs (and CRLs) of two VMs\' chips')
      .option('config', { type: 'string', describe: 'Config file (default $TAS_CONFIG_FILE, else /etc/tas/tas.yaml when installed)' })
      .option('timeout', { type: 'number', default: 30, describe: 'Seconds per item (retries included) before it counts as failed' })
      .option('product', { type: 'string', choices: PRODUCTS as unknown as string[], describe: 'Product of --chip-id' })
      .option('chip-id', { type: 'string', array: true, describe: 'CHIP_ID, 128 hex characters (repeatable; pairs with --tcb)' })
      .option('tcb', { type: 'string', array: true, describe: 'REPORTED_TCB as bl=N,tee=N,snp=N,ucode=N[,fmc=N] (one, or one per --chip-id)' })
      .option('report', { type: 'string', array: true, describe: 'Attestation report file(s): their product, CHIP_ID and REPORTED_TCB' })
      .option('crl', { type: 'boolean', default: true, describe: 'Also fetch the CRLs of the products involved' }) as never,
  async run(argv) {
    const targets: Target[] = [];
    if (!(argv.timeout > 0)) throw new CliError(EXIT.USAGE, '--timeout must be a positive number of seconds');
    const cfg = toolConfig(argv.config);
    for (const file of argv.report ?? []) {
      const p = peekReport(readFileSync(file), { v2Product: cfg.get<Product | undefined>('snp.v2_product') });
      if (!p.product || !p.reportedTcb) throw new CliError(EXIT.USAGE, `${file}: ${p.productError?.detail ?? 'product unknown'}`);
      if (p.chipIdMasked) throw new CliError(EXIT.USAGE, `${file}: CHIP_ID is masked; no VCEK can be fetched for it`);
      targets.push({ product: p.product, chip: Buffer.from(p.chipId, 'hex'), tcb: p.reportedTcb, label: file });
    }
    const chips = argv.chipId ?? [];
    const tcbs = argv.tcb ?? [];
    if (chips.length) {
      if (!argv.product) throw new CliError(EXIT.USAGE, '--chip-id needs --product');
      if (tcbs.length !== 1 && tcbs.length !== chips.length) throw new CliError(EXIT.USAGE, 'give one --tcb, or one per --chip-id');
      chips.forEach((c, i) => {
        if (!/^[0-9a-fA-F]{128}$/.test(c)) throw new CliError(EXIT.USAGE, `--chip-id ${c.slice(0, 20)}…: 128 hex characters expected`);
        targets.push({ product: argv.product as Product, chip: Buffer.from(c, 'hex'), tcb: parseTcb(tcbs[tcbs.length === 1 ? 0 : i]!), label: `${c.slice(0, 16)}…` });
      });
    }
    if (!targets.length) throw new CliError(EXIT.USAGE, 'name chips (--product, --chip-id, --tcb) or --report files');
    const o = await open(argv.config, { budgetMs: Math.round(argv.timeout * 1000) });
    let failed = 0;
    const results: Array<{ item: string; ok: boolean; detail: string }> = [];
    const say = (ok: boolean | 'warn', item: string, detail: string): void => {
      results.push({ item, ok: ok !== false, detail });
      if (argv.format === 'json') return;
      process.stdout.write(`${ok === true ? 'ok  ' : ok === 'warn' ? 'warn' : 'FAIL'} ${item}${detail ? `${ok === true ? ' ' : ': '}${detail}` : ''}\n`);
    };
    try {
      const products = new Set<Product>();
      for (let i = 0; i < targets.length; i++) {
        const t = targets[i]!;
        progress(i, targets.length, t.label);
        try {
          const r = await o.cache.vcek(t.product, t.chip, t.tcb);
          products.add(t.product);
          say(true, t.product, `${vcekCacheKey(t.product, t.chip, t.tcb)} (${r.source})`);
        } catch (e) {
          failed++;
          say(false, t.label, why(e));
        }
      }
      progress(targets.length, targets.length, 'done');
      if (argv.crl) {
        for (const p of products) {
          try {
            const c = await o.cache.crl(p, 'VCEK');
            if (c.der) say(true, `CRL ${p} VCEK`, '');
            else say('warn', `CRL ${p} VCEK`, c.note ?? 'none');
          } catch (e) {
            failed++;
            say(false, `CRL ${p}`, why(e));
          }
        }
      }
    } finally {
      await o.close();
    }
    if (argv.format === 'json') process.stdout.write(`${JSON.stringify({ ok: failed === 0, failed, results }, null, 2)}\n`);
    else if (failed) process.stderr.write(`tas: ${failed} of ${results.length} items could not be fetched (see the FAIL lines)\n`);
    // Nothing fetched is a runtime failure (KDS down, refusing, erroring), not a verdict: exit 3.
    return failed ? EXIT.STARTUP : EXIT.OK;
  },
});

function files(path: string): string[] {
  const st = statSync(path);
  if (!st.isDirectory()) return [path];
  return readdirSync(path).sort().map((f) => join(path, f)).filter((f) => statSync(f).isFile());
}

const importCmd = defineCommand<{ config?: string; paths: string[]; format: string }>({
  command: 'import <paths..>',
  describe: 'Verify and store VCEK/VLEK certificates and CRLs obtained elsewhere (files or directories)',
  builder: (y) =>
    withFormat(y)
      .example('$0 kds import /media/usb/amd-certs', 'verify and cache every certificate and CRL in a directory')
      .positional('paths', { type: 'string', array: true })
      .option('config', { type: 'string', describe: 'Config file (default $TAS_CONFIG_FILE, else /etc/tas/tas.yaml when installed)' }) as never,
  async run(argv) {
    const json = argv.format === 'json';
    const results: Array<{ file: string; ok: boolean; detail: string }> = [];
    const o = await open(argv.config);
    let ok = 0;
    let failed = 0;
    try {
      const all = argv.paths.flatMap(files);
      for (let i = 0; i < all.length; i++) {
        const f = all[i]!;
        progress(i, all.length, f);
        for (const der of pemToDer(readFileSync(f))) {
          try {
            const detail = await importOne(o.cache, der);
            results.push({ file: f, ok: true, detail });
            if (!json) process.stdout.write(`ok   ${f}: ${detail}\n`);
            ok++;
          } catch (e) {
            failed++;
            results.push({ file: f, ok: false, detail: why(e) });
            if (!json) process.stdout.write(`FAIL ${f}: ${why(e)}\n`);
          }
        }
      }
      progress(all.length, all.length, 'done');
    } finally {
      await o.close();
    }
    if (json) process.stdout.write(`${JSON.stringify({ ok: failed === 0, imported: ok, refused: failed, results }, null, 2)}\n`);
    else process.stdout.write(`${ok} imported, ${failed} refused\n`);
    return failed ? EXIT.CHECK_FAILED : EXIT.OK;
  },
});

/** importOne stores one VCEK/VLEK (keyed like the daemon keys it) or one CRL. */
async function importOne(cache: CertCache, der: Buffer): Promise<string> {
  let vek;
  try {
    vek = parseVek(der);
  } catch {
    vek = undefined;
  }
  if (vek) {
    const product = PRODUCTS.find((p) => vek.productName.startsWith(p));
    if (!product) throw new Error(`productName '${vek.productName}' is not Milan, Genoa or Turin`);
    if (vek.kind === 'VLEK') {
      // One VLEK per CSP and TCB (not per chip): listed under product + TCB, the report's signature picks.
      const vtcb = { bootloader: vek.spl.bl, tee: vek.spl.tee, snp: vek.spl.snp, microcode: vek.spl.ucode, fmc: vek.spl.fmc };
      const key = await cache.importVlek(der, product, vtcb);
      return `VLEK ${key} (CSP ${vek.cspId ?? '?'}, valid until ${vek.notAfter.toISOString()})`;
    }
    const hw = vek.hwId!;
    const chip = Buffer.alloc(64);
    hw.copy(chip);
    const tcb = { bootloader: vek.spl.bl, tee: vek.spl.tee, snp: vek.spl.snp, microcode: vek.spl.ucode, fmc: vek.spl.fmc };
    const key = vcekCacheKey(product, chip, tcb);
    await cache.importLeaf(key, der, product, 'VCEK');
    return `VCEK ${key} (valid until ${vek.notAfter.toISOString()})`;
  }
  // Not a certificate with AMD extensions: a CRL? Try each product's roots.
  let info;
  try {
    info = certInfo(der);
  } catch {
    info = undefined;
  }
  if (info) throw new Error(`certificate '${info.subjectCN}' is not a VCEK (ASK/ARK are pinned; nothing to import)`);
  let last: unknown;
  for (const p of PRODUCTS) {
    for (const kind of ['VCEK', 'VLEK'] as const) {
      try {
        const next = await cache.importCrl(der, p, kind);
        return `CRL ${p} ${kind} (next update ${next.toISOString()})`;
      } catch (e) {
        last = e;
      }
    }
  }
  throw new Error(`neither a VCEK nor a CRL signed by a trusted ARK (${why(last)})`);
}

const status = defineCommand<{ config?: string; format: string }>({
  command: 'status',
  describe: 'Show cached certificates and CRL freshness',
  builder: (y) =>
    withFormat(y)
      .example('$0 kds status --format json', 'cached certificates and CRL freshness as JSON')
      .option('config', { type: 'string', describe: 'Config file (default $TAS_CONFIG_FILE, else /etc/tas/tas.yaml when installed)' }) as never,
  async run(argv) {
    const o = await open(argv.config);
    try {
      const certs = await o.cache.index();
      const crls: Record<string, string | null> = {};
      for (const p of PRODUCTS) for (const k of ['VCEK', 'VLEK'] as const) crls[`${p} ${k}`] = (await o.cache.storedCrl(p, k))?.nextUpdate.toISOString() ?? null;
      const now = Date.now();
      if (argv.format === 'json') {
        process.stdout.write(`${JSON.stringify({ store: o.store.info, certificates: certs, crls }, null, 2)}\n`);
      } else {
        process.stdout.write(`store: ${o.store.info.backend} (${o.store.info.persistence})\n\ncertificates (${Object.keys(certs).length}):\n`);
        for (const [k, v] of Object.entries(certs).sort()) process.stdout.write(`  ${k}  valid until ${v}${Date.parse(v) < now ? '  EXPIRED' : ''}\n`);
        process.stdout.write('\nCRLs:\n');
        for (const [k, v] of Object.entries(crls)) process.stdout.write(`  ${k.padEnd(12)} ${v === null ? 'none (or stale)' : `fresh until ${v}`}\n`);
      }
    } finally {
      await o.close();
    }
  },
});

export const kdsCommand = group('kds <command>', 'Prefetch, import and inspect AMD certificates (offline hosts)', [prefetch, importCmd, status] as never);
