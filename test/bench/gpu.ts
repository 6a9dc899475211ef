/**
 * Benchmark: one NVIDIA GPU verification vs one SEV-SNP report verification, measured in ONE run
 * on genuine vectors, one verification thread (UV_THREADPOOL_SIZE=1), one verification at a time.
 *  - SNP: mstav-turin-v5 with its VCEK chain cached (warm) and uncached (cold).
 *  - GPU (native device checks: SPDM parse, chain to the pinned NVIDIA root, ECDSA P-384 over
 *    request ‖ response, FWID): sdk-h100-590-ppcie with the verified device chain cached (warm)
 *    and uncached (cold: five certificate signatures each time).
 *  - GPU appraisal (src/gpu/device.ts: the native checks plus nonce, arch, claims), warm chain.
 *  - The early per-GPU work of get_secret on the event loop: component-evidence parse (both
 *    base64 layers, JSON, SPDM parse) and the SHA-512 binding hash.
 * Prints milliseconds per verification and the GPU/SNP ratios. Never asserts a time.
 * Run: `node --import tsx test/bench/gpu.ts [seconds per measurement]`.
 */
process.env['UV_THREADPOOL_SIZE'] = '1'; // before the first pool job: one verification thread

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { clearChainCache, opensslVersion, verify, type VerifyInput } from '../../src/native/index.js';
import { verifyGpu } from '../../src/native/gpu.js';
import { verifyGpuDevice } from '../../src/gpu/device.js';
import { NVIDIA_DEVICE_IDENTITY_ROOT } from '../../src/gpu/roots.js';
import { bindingSuffix, parseComponentEvidence, type GpuArch } from '../../src/gpu/evidence.js';

const SNP_DIR = join(__dirname, '..', 'fixtures', 'snp-vectors', 'mstav-turin-v5');
const GPU_DIR = join(__dirname, '..', 'fixtures', 'gpu-vectors', 'sdk-h100-590-ppcie');

export interface GpuBenchRow {
  readonly name: string;
  readonly n: number;
  readonly msPerOp: number;
  /** How many of the n verifications took their chain from the cache (-1: not reported). */
  readonly chainCached: number;
}

async function measure(name: string, seconds: number, op: () => Promise<boolean | undefined>): Promise<GpuBenchRow> {
  for (let i = 0; i < 3; i++) await op(); // warm up (JIT, addon, first cache fill)
  const end = performance.now() + seconds * 1000;
  const t0 = performance.now();
  let n = 0;
  let cached = 0;
  let told = true;
  while (performance.now() < end) {
    const hit = await op();
    if (hit === undefined) told = false;
    if (hit) cached++;
    n++;
  }
  return { name, n, msPerOp: (performance.now() - t0) / n, chainCached: told ? cached : -1 };
}

/** runGpuBench measures, alternately (so both sides see the same load), and keeps each row's best of `rounds`. */
export async function runGpuBench(o: { seconds: number; rounds?: number }): Promise<GpuBenchRow[]> {
  const snp: VerifyInput = {
    report: readFileSync(join(SNP_DIR, 'report.bin')),
    leaf: readFileSync(join(SNP_DIR, 'vcek.pem')),
    intermediate: readFileSync(join(SNP_DIR, 'ask.pem')),
    anchors: [readFileSync(join(SNP_DIR, 'ark.pem'))],
    product: 'Turin',
    kind: 'VCEK',
    atSeconds: Math.floor(Date.parse('2026-06-01T00:00:00Z') / 1000),
  };
  const e = (JSON.parse(readFileSync(join(GPU_DIR, 'entries.json'), 'utf8')) as Array<{ arch: string; certificate: string; evidence: string; nonce: string }>)[0]!;
  const anchors = [Buffer.from(NVIDIA_DEVICE_IDENTITY_ROOT.pem)];
  const atSeconds = Math.floor(Date.parse('2025-06-01T00:00:00Z') / 1000);
  const gpu = { evidence: Buffer.from(e.evidence, 'base64'), chain: Buffer.from(e.certificate, 'base64'), anchors, atSeconds };
  const entry = { deviceIndex: 0, arch: e.arch.toUpperCase() as GpuArch, spdm: gpu.evidence, chainPem: gpu.chain, entryNonce: e.nonce };
  const ce = { gpu: [{ type: 'gpu-nvidia', 'device-index': 0, evidence: Buffer.from(JSON.stringify(e)).toString('base64') }] };
  const ops: Array<[string, () => Promise<boolean | undefined>]> = [
    ['SNP report, chain cached', async () => (await verify(snp)).chainCached],
    ['SNP report, chain uncached', async () => (clearChainCache(), (await verify(snp)).chainCached)],
    ['GPU device checks, chain cached', async () => (await verifyGpu(gpu)).chainCached === true],
    ['GPU device checks, chain uncached', async () => (clearChainCache(), (await verifyGpu(gpu)).chainCached === true)],
    ['GPU appraisal (device.ts), chain cached', async () => {
      const v = await verifyGpuDevice(entry, { nonce: e.nonce, atSeconds, anchors });
      if (v.hardFailure) throw new Error(v.hardFailure.detail);
      return undefined; // device.ts does not say where the chain verdict came from
    }],
    ['GPU component-evidence parse + binding hash', async () => {
      bindingSuffix(parseComponentEvidence(ce)!);
      return undefined;
    }],
  ];
  const best = new Map<string, GpuBenchRow>();
  for (let r = 0; r < (o.rounds ?? 3); r++) {
    for (const [name, op] of ops) {
      const row = await measure(name, o.seconds, op);
      const prev = best.get(name);
      if (!prev || row.msPerOp < prev.msPerOp) best.set(name, row);
    }
  }
  return ops.map(([name]) => best.get(name)!);
}

/** formatGpuBench prints the rows and the GPU/SNP ratios. */
export function formatGpuBench(rows: readonly GpuBenchRow[]): string {
  const by = (n: string) => rows.find((r) => r.name === n)!.msPerOp;
  const lines = rows.map((r) => `${r.name.padEnd(42)} ${r.msPerOp.toFixed(3).padStart(8)} ms/verification  (n=${r.n}${r.chainCached >= 0 ? `, chain cached ${r.chainCached}/${r.n}` : ''})`);
  const snpWarm = by('SNP report, chain cached');
  const snpCold = by('SNP report, chain uncached');
  lines.push(
    `ratio GPU/SNP, both chains cached:    ${(by('GPU device checks, chain cached') / snpWarm).toFixed(2)}`,
    `ratio GPU/SNP, both chains uncached:  ${(by('GPU device checks, chain uncached') / snpCold).toFixed(2)}`,
    `ratio GPU uncached / SNP cached:      ${(by('GPU device checks, chain uncached') / snpWarm).toFixed(2)}  (the figure before the GPU chain cache)`,
    `ratio GPU appraisal / SNP cached:     ${(by('GPU appraisal (device.ts), chain cached') / snpWarm).toFixed(2)}`,
    `GPU chain cache speed-up:             ${(by('GPU device checks, chain uncached') / by('GPU device checks, chain cached')).toFixed(2)}x`,
  );
  return lines.join('\n');
}

if (require.main === module) {
  const seconds = Number(process.argv[2] ?? 2);
  void (async () => {
    console.log(`node ${process.version}, addon on ${opensslVersion()}, ${seconds} s per measurement (best of 3), 1 verification thread`);
    console.log(formatGpuBench(await runGpuBench({ seconds })));
  })();
}
