/**
 * Helpers to build `component-evidence` the way tas_agent does (PROTOCOL.md §2.1) from SDK JSON
 * entries (genuine ones from test/fixtures/gpu-vectors, or the fake signer's), and the
 * component_hashes it binds into REPORT_DATA.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const GPU_VECTORS = join(__dirname, '..', 'fixtures', 'gpu-vectors');

/** SdkEntry is one GPU's SDK JSON entry (4-key C++ shape or 7-key Python/nvtrust shape). */
export type SdkEntry = Record<string, unknown> & { arch: string; certificate: string; evidence: string; nonce?: string };

/** genuineEntries reads a vector directory's entries.json. */
export function genuineEntries(dir: string): SdkEntry[] {
  return JSON.parse(readFileSync(join(GPU_VECTORS, dir, 'entries.json'), 'utf8')) as SdkEntry[];
}

/** componentEvidence wraps SDK entries as the agent does: outer evidence = base64(JSON(entry)). */
export function componentEvidence(entries: readonly SdkEntry[], order?: readonly number[]): { gpu: Array<{ type: string; 'device-index': number; evidence: string }> } {
  const idx = order ?? entries.map((_, i) => i);
  return {
    gpu: idx.map((i) => ({ type: 'gpu-nvidia', 'device-index': i, evidence: Buffer.from(JSON.stringify(entries[i])).toString('base64') })),
  };
}

/** componentHashes = SHA-512(raw_0) ‖ SHA-512(raw_1) ‖ … where raw_i is entry i's decoded SPDM evidence. */
export function componentHashes(entries: readonly SdkEntry[]): Buffer {
  return Buffer.concat(entries.map((e) => createHash('sha512').update(Buffer.from(e.evidence, 'base64')).digest()));
}
