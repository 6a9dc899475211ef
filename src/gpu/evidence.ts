/**
 * `component-evidence` (PROTOCOL.md §2.1): parsing, bounds and the REPORT_DATA binding suffix.
 *
 * The agent sends `{"gpu": [{"type": "gpu-nvidia", "device-index": i, "evidence": "<b64>"}, …]}`;
 * each outer `evidence` is standard base64 of the NVIDIA attestation SDK's JSON entry for one GPU:
 * `{"arch", "certificate" (b64 PEM chain), "evidence" (b64 SPDM request ‖ signed response),
 * "nonce"}` (C++ SDK, 4 keys) or the same plus `driver_version`, `vbios_version`, `version`
 * (Python SDK, nvtrust). Unknown keys are ignored; the unsigned version strings are never used.
 *
 * Everything here runs before any state changes: malformed input is a 400 that keeps the nonce.
 * No crypto beyond the binding hashes; the device checks run at appraisal (src/gpu/appraise.ts).
 */
import { createHash } from 'node:crypto';
import { TasError } from '../errors';
import { checkSpdm } from '../native/gpu';

/** Bounds. A genuine H100 entry is ~12 KiB of JSON (SPDM ~4.3 KiB, PEM chain ~4.8 KiB). */
export const GPU_LIMITS = {
  maxGpus: 16,
  /** Outer `evidence` (base64 of the SDK JSON entry), in characters. */
  maxEntryB64: 32 * 1024,
  /** Decoded SPDM request ‖ response (Hopper ~4.3 KiB; Blackwell about the same). */
  maxSpdmBytes: 16 * 1024,
  /** Decoded PEM chain (five certificates, ~4.8 KiB). */
  maxChainBytes: 16 * 1024,
  maxArchChars: 32,
} as const;

/** GPU_TYPE is the only component type tas knows. */
export const GPU_TYPE = 'gpu-nvidia';

/** GpuArch is the SDK's `arch` (the C++ SDK writes HOPPER / BLACKWELL). */
export type GpuArch = 'HOPPER' | 'BLACKWELL';

/** GpuEntry is one bound GPU: the bytes hashed into REPORT_DATA and the SDK entry around them. */
export interface GpuEntry {
  readonly deviceIndex: number;
  readonly arch: GpuArch;
  /** The SDK entry's `evidence`, decoded: SPDM GET_MEASUREMENTS request ‖ signed response (raw_i). */
  readonly spdm: Buffer;
  /** The SDK entry's `certificate`, decoded: the PEM chain, leaf first. */
  readonly chainPem: Buffer;
  /** The SDK entry's unsigned `nonce` (hex), when present; the signed SPDM nonce is what counts. */
  readonly entryNonce: string | undefined;
}

/** ComponentEvidence is the parsed `component-evidence`: GPUs in device-index order. */
export interface ComponentEvidence {
  readonly gpus: readonly GpuEntry[];
}

const B64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const HEX_RE = /^[0-9a-fA-F]*$/;

function malformed(why: string, index?: number): TasError {
  const where = index === undefined ? 'component-evidence' : `component-evidence gpu[${index}]`;
  return new TasError('HTTP_FIELD_INVALID', `${where}: ${why}`, { params: { field: 'component-evidence' }, reason: 'GPU_EVIDENCE_MALFORMED' });
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** strictBase64 decodes canonical standard base64 (no whitespace, padding exact, zero trailing bits). */
export function strictBase64(v: unknown, maxBytes: number, what: string, index?: number): Buffer {
  if (typeof v !== 'string') throw malformed(`${what} must be a base64 string`, index);
  if (v.length === 0) throw malformed(`${what} is empty`, index);
  if (Math.ceil(v.length / 4) * 3 > maxBytes + 2) throw malformed(`${what} is larger than ${maxBytes} bytes`, index);
  // Decoding then re-encoding reproduces v exactly only for canonical standard base64 (Node's
  // decoder skips foreign characters and accepts base64url, its encoder never does), so the
  // round trip alone decides; the regular expression (a third of the cost on 16 KiB) only picks
  // the message for input that failed it.
  const buf = Buffer.from(v, 'base64');
  if (buf.toString('base64') !== v) {
    if (!B64_RE.test(v)) throw malformed(`${what} is not standard base64 (alphabet or padding)`, index);
    throw malformed(`${what} is not canonical base64 (non-zero trailing bits)`, index);
  }
  if (buf.length > maxBytes) throw malformed(`${what} is larger than ${maxBytes} bytes`, index);
  return buf;
}

/**
 * parseSdkEntry reads one SDK JSON entry (either shape). `index` names the GPU in messages.
 * Exported for `tas verify --gpu-evidence`, which reads entries without the outer envelope.
 */
export function parseSdkEntry(entry: unknown, deviceIndex: number): GpuEntry {
  if (!isObj(entry)) throw malformed('the SDK entry is not a JSON object', deviceIndex);
  const arch = entry.arch;
  if (typeof arch !== 'string' || arch.length > GPU_LIMITS.maxArchChars) throw malformed('arch must be a short string', deviceIndex);
  const a = arch.toUpperCase();
  if (a !== 'HOPPER' && a !== 'BLACKWELL') throw malformed(`arch ${JSON.stringify(arch)} is not HOPPER or BLACKWELL`, deviceIndex);
  const spdm = strictBase64(entry.evidence, GPU_LIMITS.maxSpdmBytes, 'evidence', deviceIndex);
  const chainPem = strictBase64(entry.certificate, GPU_LIMITS.maxChainBytes, 'certificate', deviceIndex);
  let entryNonce: string | undefined;
  if (entry.nonce !== undefined) {
    if (typeof entry.nonce !== 'string' || entry.nonce.length !== 64 || !HEX_RE.test(entry.nonce)) throw malformed('nonce must be 64 hex characters', deviceIndex);
    entryNonce = entry.nonce.toLowerCase();
  }
  // The SPDM messages are parsed now (bytes only, no crypto) so that malformed evidence is a 400
  // before any state changes; the device checks run at appraisal. checkSpdm builds no JS result.
  try {
    checkSpdm(spdm);
  } catch (e) {
    throw malformed(`evidence: ${(e as Error).message}`, deviceIndex);
  }
  return { deviceIndex, arch: a, spdm, chainPem, entryNonce };
}

/**
 * parseComponentEvidence bound-checks the raw `component-evidence` JSON value. It returns
 * undefined for an empty GPU list (nothing to bind: the agent sends the field only with GPUs,
 * and an empty list binds no suffix either way). Entries may arrive in any order; they are
 * returned in device-index order, which must be exactly 0..n-1.
 */
export function parseComponentEvidence(raw: unknown): ComponentEvidence | undefined {
  if (!isObj(raw)) throw malformed('must be a JSON object');
  for (const k of Object.keys(raw)) if (k !== 'gpu') throw malformed(`unknown component class '${k.slice(0, 32)}' (tas knows: gpu)`);
  const list = raw.gpu;
  if (list === undefined) return undefined;
  if (!Array.isArray(list)) throw malformed('gpu must be an array');
  if (list.length === 0) return undefined;
  if (list.length > GPU_LIMITS.maxGpus) throw malformed(`${list.length} GPUs (at most ${GPU_LIMITS.maxGpus})`);
  const byIndex = new Map<number, GpuEntry>();
  for (const item of list) {
    if (!isObj(item)) throw malformed('every gpu entry must be a JSON object');
    const idx = item['device-index'];
    if (typeof idx !== 'number' || !Number.isInteger(idx) || idx < 0 || idx >= list.length) {
      throw malformed(`device-index must be an integer 0..${list.length - 1}`);
    }
    if (byIndex.has(idx)) throw malformed('device-index appears twice', idx);
    if (item.type !== GPU_TYPE) throw malformed(`type must be '${GPU_TYPE}'`, idx);
    const json = strictBase64(item.evidence, (GPU_LIMITS.maxEntryB64 / 4) * 3, 'evidence', idx);
    let entry: unknown;
    try {
      entry = JSON.parse(json.toString('utf8'));
    } catch {
      throw malformed('evidence is not base64 of a JSON document', idx);
    }
    byIndex.set(idx, parseSdkEntry(entry, idx));
  }
  // Indexes are distinct and each < n, so all of 0..n-1 are present.
  const gpus = [...byIndex.keys()].sort((x, y) => x - y).map((i) => byIndex.get(i)!);
  return { gpus };
}

/** bindingSuffix is component_hashes = SHA-512(raw_0) ‖ SHA-512(raw_1) ‖ … (device-index order). */
export function bindingSuffix(c: ComponentEvidence): Buffer {
  return Buffer.concat(c.gpus.map((g) => createHash('sha512').update(g.spdm).digest()));
}
