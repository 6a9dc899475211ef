/**
 * Genuine AMD SEV-SNP vectors (test/fixtures/snp-vectors, provenance in its PROVENANCE.md) and
 * the pinned AMD roots (test/fixtures/amd-roots), loaded for the native addon tests.
 */
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Product, VekKind, VerifyInput } from '../../src/native/index.js';

export const FIXTURES = join(__dirname, '..', 'fixtures');
export const VECTORS_DIR = join(FIXTURES, 'snp-vectors');
export const ROOTS_DIR = join(FIXTURES, 'amd-roots');

/** Expected is one entry of expected.json (only the members the tests read are typed). */
export interface Expected {
  [k: string]: unknown;
  product: Product;
  signing_key: VekKind;
  vek_file: string;
  vek_not_before: string;
  vek_not_after: string;
  vek_extensions: Record<string, number | string>;
}

export interface Vector {
  name: string;
  expected: Expected;
  report: Buffer;
  leaf: Buffer;
  intermediate: Buffer;
  ark: Buffer;
  product: Product;
  kind: VekKind;
  /** A verification time inside every certificate's validity (the VLEK expired 2025-12-10). */
  atSeconds: number;
}

const expectedAll = JSON.parse(readFileSync(join(VECTORS_DIR, 'expected.json'), 'utf8')) as Record<string, Expected>;

export function root(product: Product, file: 'ark.pem' | 'ask.pem' | 'asvk.pem'): Buffer {
  return readFileSync(join(ROOTS_DIR, product.toLowerCase(), file));
}

export const VECTORS: Vector[] = Object.keys(expectedAll).sort().map((name) => {
  const expected = expectedAll[name]!;
  const dir = join(VECTORS_DIR, name);
  const kind = expected.signing_key;
  const inter = kind === 'VLEK' ? 'asvk.pem' : 'ask.pem';
  if (!existsSync(join(dir, inter))) throw new Error(`vector ${name} lacks ${inter}`);
  return {
    name,
    expected,
    report: readFileSync(join(dir, 'report.bin')),
    leaf: readFileSync(join(dir, expected.vek_file)),
    intermediate: readFileSync(join(dir, inter)),
    ark: readFileSync(join(dir, 'ark.pem')),
    product: expected.product,
    kind,
    atSeconds: Math.floor(Date.parse(expected.vek_not_before) / 1000) + 86400,
  };
});

export function vector(name: string): Vector {
  const v = VECTORS.find((x) => x.name === name);
  if (!v) throw new Error(`no vector ${name}`);
  return v;
}

export function input(v: Vector, over: Partial<VerifyInput> = {}): VerifyInput {
  return { report: v.report, leaf: v.leaf, intermediate: v.intermediate, anchors: [v.ark], product: v.product, kind: v.kind, atSeconds: v.atSeconds, ...over };
}

/** mutate copies the report and applies f to the copy. */
export function mutate(report: Buffer, f: (b: Buffer) => void): Buffer {
  const b = Buffer.from(report);
  f(b);
  return b;
}

/** expectCode asserts that `p` rejects (or `f` throws) with the given native code. */
export async function expectCode(p: Promise<unknown> | (() => unknown), code: string): Promise<void> {
  let err: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    err = e;
  }
  if (err === undefined) throw new Error(`expected rejection with ${code}, but it succeeded`);
  const got = (err as { code?: string }).code;
  if (got !== code) throw new Error(`expected ${code}, got ${got}: ${(err as Error).message}`);
}
