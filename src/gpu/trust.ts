/**
 * NVIDIA trust: the pinned roots (src/gpu/roots.ts) plus, for labs and tests only, the roots in
 * TAS_NVIDIA_EXTRA_TRUST_DIR — loudly flagged. A file there whose subject names "RIM" or "CoRIM"
 * is a RIM root; every other one a device identity root.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { NVIDIA_DEVICE_IDENTITY_ROOT, NVIDIA_RIM_ROOT } from './roots';

export interface GpuTrust {
  readonly deviceRoots: readonly Buffer[];
  readonly rimRoots: readonly Buffer[];
  readonly extraTrustDir: string | undefined;
  readonly testRoots: boolean;
}

const PEM_RE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\s*/g;

export function loadGpuTrust(extraTrustDir: string | undefined): GpuTrust {
  const deviceRoots = [Buffer.from(NVIDIA_DEVICE_IDENTITY_ROOT.pem)];
  const rimRoots = [Buffer.from(NVIDIA_RIM_ROOT.pem)];
  if (!extraTrustDir) return { deviceRoots, rimRoots, extraTrustDir: undefined, testRoots: false };
  const st = statSync(extraTrustDir, { throwIfNoEntry: false });
  if (!st) throw new Error(`TAS_NVIDIA_EXTRA_TRUST_DIR ${extraTrustDir} does not exist`);
  const files = st.isDirectory() ? readdirSync(extraTrustDir).filter((f) => /\.(pem|crt)$/i.test(f)).sort().map((f) => join(extraTrustDir, f)) : [extraTrustDir];
  if (files.length === 0 || files.length > 64) throw new Error(`TAS_NVIDIA_EXTRA_TRUST_DIR ${extraTrustDir} holds no (or more than 64) .pem/.crt files`);
  for (const f of files) {
    const text = readFileSync(f, 'utf8');
    const blocks = text.match(PEM_RE) ?? [];
    if (blocks.length === 0) throw new Error(`${f}: no PEM certificate`);
    const rim = /rim/i.test(f);
    for (const b of blocks) (rim ? rimRoots : deviceRoots).push(Buffer.from(b));
  }
  return { deviceRoots, rimRoots, extraTrustDir, testRoots: true };
}

export function gpuTestRootsWarning(t: GpuTrust): string | undefined {
  return t.testRoots ? `TAS_NVIDIA_EXTRA_TRUST_DIR=${t.extraTrustDir}: extra NVIDIA roots are trusted besides the pinned ones (labs and tests only)` : undefined;
}
