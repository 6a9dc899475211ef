/**
 * Trust anchors of the TDX layer: Intel's pinned SGX Root CA (./roots.ts), plus — for labs and
 * tests only — the self-signed root certificates in TAS_TDX_EXTRA_TRUST_DIR (the fake DCAP signer
 * of test/support). Extra anchors are loud, like SNP's: a warning at every start, `testRoots: true`
 * in /management/status and `tas config check`, the metric tas_test_roots_enabled.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { certInfo } from '../native';
import { INTEL_SGX_ROOT_CA, intelRootDer } from './roots';

export interface TdxTrust {
  readonly extraTrustDir: string | undefined;
  /** Pinned root first (DER), then the extra roots (PEM bytes as read). */
  readonly roots: readonly Buffer[];
  readonly extra: ReadonlyArray<{ file: string; subjectCN: string; sha256: string }>;
  readonly testRoots: boolean;
}

/** TDX_PINNED_ONLY trusts Intel's root and nothing else. */
export const TDX_PINNED_ONLY: TdxTrust = Object.freeze({ extraTrustDir: undefined, roots: Object.freeze([intelRootDer()]), extra: Object.freeze([]), testRoots: false });

/** loadTdxTrust reads the extra directory (PEM/DER self-signed roots; at most 7 besides the pin). */
export function loadTdxTrust(o: { extraTrustDir?: string | undefined }): TdxTrust {
  if (!o.extraTrustDir) return TDX_PINNED_ONLY;
  const roots: Buffer[] = [intelRootDer()];
  const extra: Array<{ file: string; subjectCN: string; sha256: string }> = [];
  for (const name of readdirSync(o.extraTrustDir).sort()) {
    const p = join(o.extraTrustDir, name);
    if (!statSync(p).isFile() || statSync(p).size > 1024 * 1024) continue;
    const buf = readFileSync(p);
    const blocks = buf.toString('latin1').includes('-----BEGIN')
      ? (buf.toString('latin1').match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []).map((b) => Buffer.from(`${b}\n`, 'latin1'))
      : [buf];
    for (const cert of blocks) {
      const info = certInfo(cert);
      // Only self-signed certificates are anchors (intermediates come from the evidence).
      if (info.subjectCN !== info.issuerCN) continue;
      roots.push(cert);
      extra.push({ file: name, subjectCN: info.subjectCN, sha256: info.sha256.toString('hex') });
    }
  }
  if (roots.length > 8) throw new Error(`TAS_TDX_EXTRA_TRUST_DIR holds ${roots.length - 1} roots; at most 7 are supported`);
  return { extraTrustDir: o.extraTrustDir, roots, extra, testRoots: extra.length > 0 };
}

/** tdxTestRootsWarning is the start-up warning when extra roots are trusted. */
export function tdxTestRootsWarning(t: TdxTrust): string | undefined {
  return t.testRoots
    ? `TAS_TDX_EXTRA_TRUST_DIR=${t.extraTrustDir}: ${t.extra.length} extra Intel root(s) trusted (${t.extra.map((e) => e.subjectCN).join(', ')}) — labs and tests only`
    : undefined;
}

/** tdxTrustStatus is what /management/status shows. */
export function tdxTrustStatus(t: TdxTrust): Record<string, unknown> {
  return {
    testRoots: t.testRoots, extraTrustDir: t.extraTrustDir ?? null,
    pinned: { subjectCN: INTEL_SGX_ROOT_CA.subjectCN, sha256: INTEL_SGX_ROOT_CA.sha256, spkiSha256: INTEL_SGX_ROOT_CA.spkiSha256 },
    extraAnchors: t.extra,
  };
}
