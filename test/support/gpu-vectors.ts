/** The genuine NVIDIA vectors of test/fixtures/gpu-vectors, one item per GPU, with expected.json. */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { GPU_VECTORS } from './gpu-evidence';

export interface GenuineGpu {
  /** expected.json key: `dir` or `dir[i]`. */
  name: string;
  arch: 'HOPPER' | 'BLACKWELL';
  evidence: Buffer;
  chain: Buffer;
  /** The entry's nonce (SDK entries) or the request's nonce (hex reports). */
  nonce: string;
  expected: { claims: Record<string, unknown>; failed: string[]; valid: boolean };
}

export const GENUINE_AT = Date.parse('2025-06-01T00:00:00Z') / 1000;
export const DEVICE_ROOT = readFileSync(join(GPU_VECTORS, 'roots', 'nvidia_device_identity_ca.pem'));
export const RIM_ROOT = readFileSync(join(GPU_VECTORS, 'roots', 'nvidia_corim_signing_root_ca.pem'));

export function genuineGpus(): GenuineGpu[] {
  const expected = (JSON.parse(readFileSync(join(GPU_VECTORS, 'expected.json'), 'utf8')) as { vectors: Record<string, GenuineGpu['expected']> }).vectors;
  const out: GenuineGpu[] = [];
  for (const d of readdirSync(GPU_VECTORS).sort()) {
    const dir = join(GPU_VECTORS, d);
    if (existsSync(join(dir, 'evidence.bin'))) {
      const evidence = readFileSync(join(dir, 'evidence.bin'));
      out.push({ name: d, arch: d.includes('b100') ? 'BLACKWELL' : 'HOPPER', evidence, chain: readFileSync(join(dir, 'chain.pem')), nonce: evidence.subarray(4, 36).toString('hex'), expected: expected[d]! });
    }
    if (existsSync(join(dir, 'entries.json'))) {
      const es = JSON.parse(readFileSync(join(dir, 'entries.json'), 'utf8')) as Array<{ arch: string; evidence: string; certificate: string; nonce: string }>;
      es.forEach((e, i) => out.push({
        name: `${d}[${i}]`, arch: e.arch.toUpperCase() as GenuineGpu['arch'], evidence: Buffer.from(e.evidence, 'base64'), chain: Buffer.from(e.certificate, 'base64'), nonce: e.nonce.toLowerCase(), expected: expected[`${d}[${i}]`]!,
      }));
    }
  }
  return out;
}
