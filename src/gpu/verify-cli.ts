/**
 * `tas verify --gpu-evidence FILE [--nonce HEX] [--at TIME] [--rim PATH]… [--ocsp PATH]…`:
 * offline verification of NVIDIA GPU evidence with the same device checks and NRAS-named claims
 * as get_secret's component appraisal (src/gpu/device.ts), without a daemon and without network.
 *
 * FILE holds one SDK entry (either shape), a JSON array of them, or the agent's whole
 * `component-evidence` object (`{"gpu": [{type, device-index, evidence}, …]}`). RIMs come from
 * `--rim` files (verified with xmlsec1 at --at against the pinned RIM root) and, when it exists,
 * the GPU cache of the configuration (`tas gpu import`); OCSP answers from `--ocsp` files
 * (`<serial hex>.der`) and the cache. Nothing is fetched: a RIM or OCSP answer that is not at hand
 * is reported (`rim.<kind>` fails; revocation `unknown`), never looked up.
 * Exit codes: 0 every GPU valid, 1 invalid, 2 usage.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { CliError, EXIT, filesIn, toolConfig } from '../cli-kit';
import { isTasError } from '../errors';
import { certInfo } from '../native';
import { verifyOcsp } from '../native/gpu';
import { overallClaims } from './appraise';
import { CRL_REASONS, GpuCache } from './cache';
import { verifyGpuDevice, type GpuCheck, type GpuVerdict, type Revocation, type RevocationSource, type RimSource, type VerifiedRim } from './device';
import { GPU_LIMITS, parseComponentEvidence, parseSdkEntry, type GpuEntry } from './evidence';
import { rimIdFromName, verifiedRim } from './rim';
import { loadGpuTrust, type GpuTrust } from './trust';

export interface GpuVerifyArgs {
  readonly file: string;
  readonly nonce?: string | undefined;
  readonly at: Date;
  readonly rims?: readonly string[] | undefined;
  readonly ocsp?: readonly string[] | undefined;
  readonly config?: string | undefined;
}

/** GpuVerifyResult is one GPU's part of the envelope. */
export interface GpuVerifyGpu {
  readonly 'device-index': number;
  readonly valid: boolean;
  readonly claims: Record<string, unknown>;
  readonly checks: GpuCheck[];
  readonly reason?: string;
}

/** GpuVerifyEnvelope is `tas verify`'s envelope for GPU evidence. */
export interface GpuVerifyEnvelope {
  readonly valid: boolean;
  readonly tee: 'nvidia-gpu';
  /** The overall (NRAS overall-token) claims; per-GPU claims are under `gpus`. */
  readonly claims: Record<string, unknown>;
  readonly gpus: GpuVerifyGpu[];
  /** Every GPU's checks, named `gpu[i] <check>`. */
  readonly checks: GpuCheck[];
  readonly reason?: string;
}

/** Input bound: 16 GPUs of at most 32 KiB of base64 each, with room for the JSON around them. */
const MAX_FILE = GPU_LIMITS.maxGpus * GPU_LIMITS.maxEntryB64 * 2;
const MAX_FILES = 256;

function readBounded(path: string, what: string, max: number): Buffer {
  const st = statSync(path, { throwIfNoEntry: false });
  if (!st || !st.isFile()) throw new CliError(EXIT.USAGE, `${what} ${path}: no such file`);
  if (st.size > max) throw new CliError(EXIT.USAGE, `${what} ${path}: larger than ${max} bytes`);
  return readFileSync(path);
}

function filesOf(paths: readonly string[], what: string, keep: (name: string) => boolean): string[] {
  const out = filesIn(paths, keep, what);
  if (out.length > MAX_FILES) throw new CliError(EXIT.USAGE, `${what}: more than ${MAX_FILES} files`);
  return out;
}

/** entriesOf reads the evidence file: SDK entries in device-index order. Malformed input throws TasError (400 semantics). */
export function entriesOf(json: unknown): GpuEntry[] {
  if (Array.isArray(json)) {
    if (json.length === 0 || json.length > GPU_LIMITS.maxGpus) throw new CliError(EXIT.USAGE, `--gpu-evidence: 1..${GPU_LIMITS.maxGpus} SDK entries expected, got ${json.length}`);
    return json.map((e, i) => parseSdkEntry(e, i));
  }
  if (typeof json === 'object' && json !== null && Object.hasOwn(json, 'gpu')) {
    const ce = parseComponentEvidence(json);
    if (!ce) throw new CliError(EXIT.USAGE, '--gpu-evidence: the component-evidence object carries no GPU');
    return [...ce.gpus];
  }
  return [parseSdkEntry(json, 0)];
}

/**
 * RimFiles answers RIM lookups from files given on the command line. A file answers for the id
 * its name says (`NV_GPU_…`, `<project>_<sku>_<chip>_<vbios>[_PROD].swidtag`); a name with a
 * suffix (e.g. NVIDIA's `…_measurement_mismatch.xml` test RIMs) answers for the id it extends when
 * it is the only such file. The operator chose these files, so the choice is theirs; the daemon
 * never matches by prefix.
 */
class RimFiles implements RimSource {
  private readonly byId = new Map<string, Promise<VerifiedRim>>();

  constructor(
    private readonly files: Array<{ id: string; path: string }>,
    private readonly roots: readonly Buffer[],
    private readonly at: Date,
    private readonly fallback: RimSource | undefined,
  ) {}

  async get(id: string): Promise<VerifiedRim | undefined> {
    const exact = this.files.filter((f) => f.id === id);
    const pick = exact.length ? exact : this.files.filter((f) => f.id.startsWith(`${id}_`));
    if (pick.length > 1) throw new CliError(EXIT.USAGE, `--rim: ${pick.length} files answer for ${id} (${pick.map((f) => basename(f.path)).join(', ')}): give one`);
    if (pick.length === 0) return this.fallback?.get(id);
    const f = pick[0]!;
    let v = this.byId.get(f.path);
    if (!v) {
      v = (async () => {
        try {
          return await verifiedRim(id, readBounded(f.path, '--rim', 1024 * 1024), this.roots, this.at);
        } catch (e) {
          throw new CliError(EXIT.USAGE, `--rim ${f.path}: ${(e as Error).message}`);
        }
      })();
      this.byId.set(f.path, v);
    }
    return v;
  }
}

/** OcspFiles answers revocation from `<serial hex>.der` files and the cache; nothing at hand is `unknown`. */
class OcspFiles implements RevocationSource {
  constructor(
    private readonly files: Map<string, string>,
    private readonly trust: GpuTrust,
    private readonly atSeconds: number,
    private readonly fallback: RevocationSource | undefined,
  ) {}

  async status(cert: Buffer, issuer: Buffer, chain: readonly Buffer[], deviceIndex: number, serialHex?: string): Promise<Revocation> {
    const serial = (serialHex ?? certInfo(cert).serialHex).toLowerCase();
    const file = this.files.get(serial);
    if (file) {
      const r = await verifyOcsp({ response: readBounded(file, '--ocsp', 16 * 1024), cert, issuer, anchors: [...this.trust.deviceRoots], untrusted: chain.slice(0, 8), atSeconds: this.atSeconds, skewSeconds: 300 }).catch((e: Error) => {
        throw new CliError(EXIT.USAGE, `--ocsp ${file}: ${e.message}`);
      });
      return r.status === 'revoked' ? { status: 'revoked', reason: CRL_REASONS[r.revocationReason ?? 0] ?? 'unspecified' } : { status: r.status };
    }
    return this.fallback ? this.fallback.status(cert, issuer, chain, deviceIndex, serialHex) : { status: 'unknown' };
  }
}

/** gpuVerify runs every check on every GPU of the file; the envelope is what `tas verify` prints. */
export async function gpuVerify(a: GpuVerifyArgs): Promise<GpuVerifyEnvelope> {
  if (a.nonce !== undefined && !/^[0-9a-fA-F]{64}$/.test(a.nonce)) throw new CliError(EXIT.USAGE, '--nonce must be 64 hex characters (the TAS nonce)');
  const text = readBounded(a.file, '--gpu-evidence', MAX_FILE);
  let json: unknown;
  try {
    json = JSON.parse(text.toString('utf8'));
  } catch {
    throw new CliError(EXIT.USAGE, `--gpu-evidence ${a.file}: not JSON (one SDK entry, an array of them, or a component-evidence object)`);
  }
  const cfg = toolConfig(a.config);
  let trust: GpuTrust;
  try {
    trust = loadGpuTrust(cfg.get<string | undefined>('nvidia.extra_trust_dir'));
  } catch (e) {
    throw new CliError(EXIT.USAGE, (e as Error).message);
  }
  const atSeconds = Math.floor(a.at.getTime() / 1000);
  // The configured cache (tas gpu import), read only and never online; used when it exists.
  const cacheDir = join(cfg.get<string>('kds.cache_dir'), 'nvidia');
  let cache: GpuCache | undefined;
  if (existsSync(join(cacheDir, 'rims')) && existsSync(join(cacheDir, 'ocsp'))) {
    cache = new GpuCache({ dir: cacheDir, rimUrl: cfg.get<string>('nvidia.rim_url'), ocspUrl: cfg.get<string>('nvidia.ocsp_url'), offline: () => true, failMode: () => 'open', trust: () => trust, now: () => atSeconds });
  }
  const cachedRims: RimSource | undefined = cache && {
    get: async (id) => {
      try {
        return await cache.rims().get(id);
      } catch (e) {
        if (isTasError(e) && e.status === 503) return undefined; // not cached: offline, nothing to fetch
        throw e;
      }
    },
  };
  // In a directory, files whose name says no RIM id are skipped; a file named on its own must say one.
  const named = new Set((a.rims ?? []).filter((p) => statSync(p, { throwIfNoEntry: false })?.isFile()));
  const rimFiles = filesOf(a.rims ?? [], '--rim', (n) => /\.(xml|swidtag)$/i.test(n) && rimIdFromName(n) !== undefined).map((path) => {
    const id = rimIdFromName(path);
    if (!id && named.has(path)) throw new CliError(EXIT.USAGE, `--rim ${path}: cannot tell the RIM id from the file name (NV_GPU_<…>.xml or <project>_<sku>_<chip>_<vbios>[_PROD].swidtag)`);
    return { id: id ?? '', path };
  });
  const ocspFiles = new Map(filesOf(a.ocsp ?? [], '--ocsp', (n) => /\.der$/i.test(n)).map((p) => [basename(p).replace(/\.der$/i, '').toLowerCase(), p] as const));
  const rims = new RimFiles(rimFiles, trust.rimRoots, a.at, cachedRims);
  const revocation = new OcspFiles(ocspFiles, trust, atSeconds, cache?.revocation());

  const gpus: GpuVerifyGpu[] = [];
  const verdicts: GpuVerdict[] = [];
  let entries: GpuEntry[] | undefined;
  let malformed: string | undefined;
  try {
    entries = entriesOf(json);
  } catch (e) {
    if (!isTasError(e)) throw e;
    malformed = e.detail;
  }
  for (const g of entries ?? []) {
    // Without --nonce the SPDM nonce is compared with the entry's own (unsigned) nonce, as
    // NVIDIA's verifiers do; the TAS nonce is the one that counts in get_secret.
    const nonce = a.nonce?.toLowerCase() ?? g.entryNonce;
    try {
      const v = await verifyGpuDevice(g, { nonce, nonceName: a.nonce !== undefined ? 'the --nonce' : "the entry's own nonce", atSeconds, anchors: trust.deviceRoots, revocation, rims });
      verdicts.push(v);
      const failed = v.checks.find((c) => !c.ok);
      gpus.push({ 'device-index': g.deviceIndex, valid: v.ok, claims: v.claims, checks: v.checks, ...(v.ok ? {} : { reason: v.hardFailure?.detail ?? `gpu[${g.deviceIndex}] ${failed?.name ?? 'measres'}: ${failed?.detail ?? 'measurements not appraised'}` }) });
    } catch (e) {
      if (!isTasError(e)) throw e;
      const v: GpuVerdict = { deviceIndex: g.deviceIndex, claims: { 'x-nvidia-gpu-attestation-report-parsed': false }, checks: [{ name: 'evidence', ok: false, detail: e.detail }], ok: false };
      verdicts.push(v);
      gpus.push({ 'device-index': g.deviceIndex, valid: false, claims: v.claims, checks: v.checks, reason: e.detail });
    }
  }
  const checks = malformed
    ? [{ name: 'evidence', ok: false, detail: malformed }]
    : gpus.flatMap((g) => g.checks.map((c) => ({ name: `gpu[${g['device-index']}] ${c.name}`, ok: c.ok, detail: c.detail })));
  const valid = !malformed && gpus.length > 0 && gpus.every((g) => g.valid);
  const reason = malformed ?? gpus.find((g) => !g.valid)?.reason;
  return { valid, tee: 'nvidia-gpu', claims: overallClaims(verdicts), gpus, checks, ...(reason ? { reason } : {}) };
}

/** renderGpuText is the `--format text` form of the envelope. */
export function renderGpuText(env: GpuVerifyEnvelope): string {
  const lines = [`NVIDIA GPU evidence (${env.gpus.length} GPU${env.gpus.length === 1 ? '' : 's'}): ${env.valid ? 'VALID' : `INVALID (${env.reason ?? 'unknown'})`}`];
  for (const g of env.gpus) {
    lines.push('', `gpu[${g['device-index']}]: ${g.valid ? 'valid' : 'INVALID'}`, '  checks:');
    for (const c of g.checks) lines.push(`    ${c.ok ? 'ok  ' : 'FAIL'}  ${c.name}  ${c.detail}`);
    lines.push('  claims:');
    for (const [k, v] of Object.entries(g.claims)) lines.push(`    ${k}  ${typeof v === 'string' ? v : JSON.stringify(v)}`);
  }
  if (env.gpus.length === 0) for (const c of env.checks) lines.push(`  FAIL  ${c.name}  ${c.detail}`);
  return `${lines.join('\n')}\n`;
}
