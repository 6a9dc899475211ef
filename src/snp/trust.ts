/**
 * Trust anchors of the SEV-SNP layer: AMD's pinned ARK per product (./roots.ts), plus — for labs
 * and tests only — the ARKs found in TAS_SNP_EXTRA_TRUST_DIR. Extra anchors are loud: the daemon
 * logs a warning at every start and shows `testRoots: true` in /management/status, `tas config
 * check` and the metric tas_test_roots_enabled (all fed by trustStatus()).
 *
 * The extra directory may also hold ASK/ASVK certificates of those test roots: they are never
 * trusted, only offered as the intermediate when the evidence does not carry one.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { certInfo } from '../native';
import { PINNED_ROOTS } from './roots';
import { PRODUCTS, type Product } from './product';

/** ExtraCert describes one certificate loaded from the extra trust directory. */
export interface ExtraCert {
  readonly file: string;
  readonly product: Product;
  readonly role: 'ARK' | 'ASK' | 'ASVK';
  readonly subjectCN: string;
  readonly sha256: string;
  readonly spkiSha256: string;
  readonly der: Buffer;
}

/** SnpTrust is the immutable set of anchors and candidate intermediates in force. */
export interface SnpTrust {
  readonly extraTrustDir: string | undefined;
  readonly extra: readonly ExtraCert[];
  /** True when anything beyond AMD's pinned roots is trusted. */
  readonly testRoots: boolean;
}

/** TrustStatus is what status pages, `tas config check` and metrics show. */
export interface TrustStatus {
  readonly testRoots: boolean;
  readonly extraTrustDir: string | null;
  readonly pinned: ReadonlyArray<{ product: Product; arkSpkiSha256: string; askSpkiSha256: string; asvkSpkiSha256: string }>;
  readonly extraAnchors: ReadonlyArray<{ file: string; product: Product; subjectCN: string; sha256: string; spkiSha256: string }>;
}

/**
 * pem returns the bytes of an embedded PEM, made once per certificate: every request names its
 * product's anchors, and a fresh copy of each ~2 KB PEM per request was pure allocation. The
 * Buffers are shared: read them, never write to them.
 */
const pemBytes = new Map<string, Buffer>();
const pem = (s: string): Buffer => {
  let b = pemBytes.get(s);
  if (b === undefined) {
    b = Buffer.from(s, 'ascii');
    pemBytes.set(s, b);
  }
  return b;
};

/** PINNED_ONLY trusts AMD's roots and nothing else. */
export const PINNED_ONLY: SnpTrust = Object.freeze({ extraTrustDir: undefined, extra: Object.freeze([]), testRoots: false });

/** pinnedArk / pinnedIntermediate return AMD's embedded certificates (PEM bytes). */
export function pinnedArk(product: Product): Buffer {
  return pem(PINNED_ROOTS[product].ark.pem);
}
export function pinnedIntermediate(product: Product, kind: 'VCEK' | 'VLEK'): Buffer {
  return pem(kind === 'VCEK' ? PINNED_ROOTS[product].ask.pem : PINNED_ROOTS[product].asvk.pem);
}

/**
 * anchorsFor lists the ARKs trusted for a product: the pinned one first, then extra ones. The list
 * is made once per trust set and product (a trust set is immutable; SIGHUP makes a new one) and is
 * shared: read it, never change it.
 */
export function anchorsFor(trust: SnpTrust, product: Product): readonly Buffer[] {
  let byProduct = anchorLists.get(trust);
  if (byProduct === undefined) {
    byProduct = new Map();
    anchorLists.set(trust, byProduct);
  }
  let list = byProduct.get(product);
  if (list === undefined) {
    list = Object.freeze([pinnedArk(product), ...trust.extra.filter((c) => c.product === product && c.role === 'ARK').map((c) => c.der)]);
    byProduct.set(product, list);
  }
  return list;
}
const anchorLists = new WeakMap<SnpTrust, Map<Product, readonly Buffer[]>>();

/** extraIntermediates lists untrusted ASK/ASVK candidates from the extra directory. */
export function extraIntermediates(trust: SnpTrust, product: Product, kind: 'VCEK' | 'VLEK'): Buffer[] {
  const role = kind === 'VCEK' ? 'ASK' : 'ASVK';
  return trust.extra.filter((c) => c.product === product && c.role === role).map((c) => c.der);
}

/**
 * missingIntermediates lists, for every product with an extra ARK, the intermediates the extra
 * directory does not hold (ASK for VCEK chains, ASVK for VLEK chains). They are taken from the KDS
 * `cert_chain` of that product (verified to the ARK, like AMD's own), so a directory of ARKs only
 * works; `tas config check` says so, and what is missing when KDS cannot be reached.
 */
export function missingIntermediates(trust: SnpTrust): Array<{ product: Product; kind: 'VCEK' | 'VLEK'; role: 'ASK' | 'ASVK' }> {
  const out: Array<{ product: Product; kind: 'VCEK' | 'VLEK'; role: 'ASK' | 'ASVK' }> = [];
  for (const product of PRODUCTS) {
    if (!trust.extra.some((c) => c.product === product && c.role === 'ARK')) continue;
    for (const [kind, role] of [['VCEK', 'ASK'], ['VLEK', 'ASVK']] as const) {
      if (!trust.extra.some((c) => c.product === product && c.role === role)) out.push({ product, kind, role });
    }
  }
  return out;
}

/** needsChainIntermediates tells whether a product's extra roots lack their intermediate for a kind. */
export function needsChainIntermediates(trust: SnpTrust, product: Product, kind: 'VCEK' | 'VLEK'): boolean {
  return missingIntermediates(trust).some((m) => m.product === product && m.kind === kind);
}

const MAX_FILES = 64;
const MAX_FILE_SIZE = 1024 * 1024;

function splitCerts(buf: Buffer): Buffer[] {
  const text = buf.toString('latin1');
  if (!text.includes('-----BEGIN')) return [buf]; // DER
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => Buffer.from(b + '\n', 'latin1'));
}

function roleOf(subjectCN: string, issuerCN: string): { role: ExtraCert['role']; product: Product } | undefined {
  for (const p of PRODUCTS) {
    if (subjectCN === `ARK-${p}` && issuerCN === subjectCN) return { role: 'ARK', product: p };
    if (subjectCN === `SEV-${p}` && issuerCN === `ARK-${p}`) return { role: 'ASK', product: p };
    if (subjectCN === `SEV-VLEK-${p}` && issuerCN === `ARK-${p}`) return { role: 'ASVK', product: p };
  }
  return undefined;
}

/**
 * loadSnpTrust reads TAS_SNP_EXTRA_TRUST_DIR (a directory of PEM/DER files, or one file). Anything
 * that is not an AMD-shaped ARK/ASK/ASVK stops startup with a message naming the file: a typo in a
 * trust setting must never silently trust less — or more — than the operator meant.
 */
export function loadSnpTrust(opts: { extraTrustDir?: string | undefined } = {}): SnpTrust {
  const dir = opts.extraTrustDir;
  if (dir === undefined || dir === '') return PINNED_ONLY;
  let files: string[];
  const st = statSync(dir, { throwIfNoEntry: false });
  if (!st) throw new Error(`TAS_SNP_EXTRA_TRUST_DIR ${dir} does not exist`);
  if (st.isDirectory()) {
    files = readdirSync(dir).filter((f) => /\.(pem|crt|cer|der)$/i.test(f)).sort().map((f) => join(dir, f));
  } else files = [dir];
  if (files.length === 0) throw new Error(`TAS_SNP_EXTRA_TRUST_DIR ${dir} holds no .pem/.crt/.cer/.der files`);
  if (files.length > MAX_FILES) throw new Error(`TAS_SNP_EXTRA_TRUST_DIR ${dir} holds more than ${MAX_FILES} files`);
  const extra: ExtraCert[] = [];
  for (const file of files) {
    const buf = readFileSync(file);
    if (buf.length > MAX_FILE_SIZE) throw new Error(`${file}: larger than ${MAX_FILE_SIZE} bytes`);
    const certs = splitCerts(buf);
    if (certs.length === 0) throw new Error(`${file}: no certificate found`);
    for (const c of certs) {
      let info;
      try {
        info = certInfo(c);
      } catch (e) {
        throw new Error(`${file}: not a certificate (${(e as Error).message})`, { cause: e });
      }
      const r = roleOf(info.subjectCN, info.issuerCN);
      if (!r) throw new Error(`${file}: ${info.subjectCN} (issuer ${info.issuerCN}) is not an ARK-<P>, SEV-<P> or SEV-VLEK-<P> certificate`);
      extra.push({
        file, product: r.product, role: r.role, subjectCN: info.subjectCN, sha256: info.sha256.toString('hex'),
        spkiSha256: info.spkiSha256.toString('hex'), der: info.der,
      });
    }
  }
  if (!extra.some((c) => c.role === 'ARK')) throw new Error(`TAS_SNP_EXTRA_TRUST_DIR ${dir} holds no ARK certificate`);
  return Object.freeze({ extraTrustDir: dir, extra: Object.freeze(extra), testRoots: true });
}

/** trustStatus summarises the trust in force (for /management/status, `tas config check`, metrics). */
export function trustStatus(trust: SnpTrust): TrustStatus {
  return {
    testRoots: trust.testRoots,
    extraTrustDir: trust.extraTrustDir ?? null,
    pinned: PRODUCTS.map((product) => ({
      product,
      arkSpkiSha256: PINNED_ROOTS[product].ark.spkiSha256,
      askSpkiSha256: PINNED_ROOTS[product].ask.spkiSha256,
      asvkSpkiSha256: PINNED_ROOTS[product].asvk.spkiSha256,
    })),
    extraAnchors: trust.extra
      .filter((c) => c.role === 'ARK')
      .map((c) => ({ file: c.file, product: c.product, subjectCN: c.subjectCN, sha256: c.sha256, spkiSha256: c.spkiSha256 })),
  };
}

/** TEST_ROOTS_WARNING is the start-up warning text (logged at every start while extra roots are set). */
export function testRootsWarning(trust: SnpTrust): string | undefined {
  if (!trust.testRoots) return undefined;
  const arks = trust.extra.filter((c) => c.role === 'ARK').map((c) => `${c.subjectCN} (SPKI sha256 ${c.spkiSha256.slice(0, 16)}…)`);
  return `TAS_SNP_EXTRA_TRUST_DIR=${trust.extraTrustDir}: trusting ${arks.length} NON-AMD test root(s) besides the pinned AMD roots: ${arks.join(', ')}. Labs and tests only.`;
}

/** snpTrustFromConfig loads the trust named by snp.extra_trust_dir (TAS_SNP_EXTRA_TRUST_DIR). */
export function snpTrustFromConfig(cfg: { get<T>(path: string): T }): SnpTrust {
  return loadSnpTrust({ extraTrustDir: cfg.get<string | undefined>('snp.extra_trust_dir') });
}
