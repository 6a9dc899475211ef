/**
 * The GPU endorsement cache: RIM verdicts and OCSP answers for NVIDIA device certificates, kept
 * under `<TAS_CACHE_DIR>/nvidia/` (per host: a fleet imports on every node, or shares the
 * directory).
 *
 *  - RIMs: `rims/<ID>.json` holds the verdict of xmlsec1 (run once, when the RIM was fetched from
 *    TAS_NVIDIA_RIM_URL or imported) with the RIM's SHA-384 and its golden measurements; never
 *    re-decided per request.
 *  - OCSP: `ocsp/<serial>.der` holds the latest answer for a certificate; it is re-verified
 *    (signature to the pinned root, CertID, window) at every use — cheap, native — and used until
 *    its nextUpdate. Without a fresh one, TAS_CRL_FAIL_MODE decides: `closed` = 503 + Retry-After
 *    (nonce kept), `open` = status `unknown` in claims and audit; the policy decides.
 *  - TAS_NVIDIA_OFFLINE=true never contacts NVIDIA: caches and `tas gpu import` only.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TasError } from '../errors';
import { certInfo } from '../native';
import { buildOcspRequest, verifyOcsp, type OcspResult } from '../native/gpu';
import type { Revocation, RevocationSource, RimSource, VerifiedRim } from './device';
import { verifiedRim } from './rim';
import type { GpuTrust } from './trust';

const RIM_ID_RE = /^NV_GPU_[A-Z0-9_.]{1,100}$/;
export const CRL_REASONS = ['unspecified', 'keyCompromise', 'cACompromise', 'affiliationChanged', 'superseded', 'cessationOfOperation', 'certificateHold', '(unused)', 'removeFromCRL', 'privilegeWithdrawn', 'aACompromise'];

export interface GpuCacheOptions {
  readonly dir: string;
  readonly rimUrl: string;
  readonly ocspUrl: string;
  readonly offline: () => boolean;
  readonly failMode: () => 'closed' | 'open';
  readonly trust: () => GpuTrust;
  readonly fetch?: typeof fetch;
  /** Seconds since the epoch. */
  readonly now?: () => number;
  readonly timeoutMs?: number;
}

interface StoredRim extends VerifiedRim {
  readonly sha384: string;
  readonly verifiedAt: string;
  readonly detail: string;
}

function unavailable(reason: string, detail: string): TasError {
  return new TasError('GPU_ENDORSEMENT_UNAVAILABLE', detail, { reason });
}

function writeAtomic(path: string, data: Buffer | string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, data, { mode: 0o640 });
  renameSync(tmp, path);
}

export class GpuCache {
  private readonly rimMem = new Map<string, StoredRim>();
  private readonly ocspMem = new Map<string, { der: Buffer; result: OcspResult }>();
  readonly stats = { rimFetches: 0, ocspFetches: 0, ocspCacheHits: 0 };

  constructor(private readonly o: GpuCacheOptions) {
    mkdirSync(join(o.dir, 'rims'), { recursive: true, mode: 0o750 });
    mkdirSync(join(o.dir, 'ocsp'), { recursive: true, mode: 0o750 });
  }

  private now(): number {
    return Math.floor(this.o.now ? this.o.now() : Date.now() / 1000);
  }

  private async http(url: string, init: RequestInit, what: string, reason: string): Promise<Response> {
    const f = this.o.fetch ?? fetch;
    try {
      return await f(url, { ...init, signal: AbortSignal.timeout(this.o.timeoutMs ?? 10_000) });
    } catch (e) {
      throw unavailable(reason, `${what}: ${(e as Error).message}`);
    }
  }

  // ---- RIMs -------------------------------------------------------------------------------------

  /** importRim verifies (xmlsec1, now or at `at`) and stores one RIM document under its id. */
  async importRim(id: string, xml: Buffer, at?: Date): Promise<StoredRim> {
    if (!RIM_ID_RE.test(id)) throw new Error(`RIM id ${JSON.stringify(id.slice(0, 120))} is not NV_GPU_…`);
    const v = await verifiedRim(id, xml, this.o.trust().rimRoots, at ?? new Date(this.now() * 1000));
    writeAtomic(join(this.o.dir, 'rims', `${id}.json`), JSON.stringify({ ...v, measurements: v.measurements.map((m) => ({ index: m.index, alternatives: m.alternatives.map((a) => a.toString('hex')) })) }));
    this.rimMem.set(id, v);
    return v;
  }

  private loadRim(id: string): StoredRim | undefined {
    const hit = this.rimMem.get(id);
    if (hit) return hit;
    let raw: string;
    try {
      raw = readFileSync(join(this.o.dir, 'rims', `${id}.json`), 'utf8');
    } catch {
      return undefined;
    }
    const j = JSON.parse(raw) as Omit<StoredRim, "measurements"> & { measurements: Array<{ index: number; alternatives: string[] }> };
    const v: StoredRim = { ...j, measurements: j.measurements.map((m) => ({ index: m.index, alternatives: m.alternatives.map((a) => Buffer.from(a, 'hex')) })) };
    this.rimMem.set(id, v);
    return v;
  }

  /** rims is the RimSource the appraiser uses: cache, then (online) TAS_NVIDIA_RIM_URL. */
  rims(): RimSource {
    return {
      get: async (id) => {
        if (!RIM_ID_RE.test(id)) return undefined;
        const hit = this.loadRim(id);
        if (hit) return hit;
        if (this.o.offline()) throw unavailable('GPU_RIM_UNAVAILABLE', `RIM ${id} is not cached and TAS_NVIDIA_OFFLINE=true: import it with \`tas gpu import\``);
        this.stats.rimFetches++;
        const res = await this.http(`${this.o.rimUrl}${encodeURIComponent(id)}`, { method: 'GET', headers: { accept: 'application/json' } }, `RIM ${id}`, 'GPU_RIM_UNAVAILABLE');
        if (res.status === 404) return undefined;
        if (res.status !== 200) throw unavailable('GPU_RIM_UNAVAILABLE', `RIM ${id}: NVIDIA RIM service answered ${res.status}`);
        const body = Buffer.from(await res.arrayBuffer());
        if (body.length > 1024 * 1024) throw unavailable('GPU_RIM_UNAVAILABLE', `RIM ${id}: answer larger than 1 MiB`);
        // The service answers {"id", "rim": "<base64 of the SWID XML>", …}; a raw XML body is accepted too.
        let xml = body;
        if (body.subarray(0, 1).toString() === '{') {
          const j = JSON.parse(body.toString('utf8')) as { rim?: unknown };
          if (typeof j.rim !== 'string') throw unavailable('GPU_RIM_UNAVAILABLE', `RIM ${id}: answer has no rim`);
          xml = Buffer.from(j.rim, 'base64');
        }
        try {
          return await this.importRim(id, xml);
        } catch (e) {
          throw new TasError('TEE_VERIFICATION_FAILED', `RIM ${id} from the RIM service is unusable: ${(e as Error).message}`, { reason: 'GPU_RIM_INVALID' });
        }
      },
    };
  }

  // ---- OCSP -------------------------------------------------------------------------------------

  /** importOcsp stores an OCSP answer for the certificate with this serial (verified at use). */
  importOcsp(serialHex: string, der: Buffer): void {
    if (!/^[0-9a-f]{1,64}$/.test(serialHex)) throw new Error('serial must be lowercase hex');
    if (der.length === 0 || der.length > 16 * 1024) throw new Error('OCSP answer is empty or larger than 16 KiB');
    writeAtomic(join(this.o.dir, 'ocsp', `${serialHex}.der`), der);
    this.ocspMem.delete(serialHex);
  }

  private async check(der: Buffer, cert: Buffer, issuer: Buffer, chain: readonly Buffer[], at: number): Promise<OcspResult> {
    const t = this.o.trust();
    return verifyOcsp({ response: der, cert, issuer, anchors: [...t.deviceRoots], untrusted: chain.slice(0, 8), atSeconds: at, skewSeconds: 300 });
  }

  private toRevocation(r: OcspResult): Revocation {
    return r.status === 'revoked' ? { status: 'revoked', reason: CRL_REASONS[r.revocationReason ?? 0] ?? 'unspecified' } : { status: r.status };
  }

  /** revocation is the RevocationSource: a fresh cached answer, else (online) the responder, else TAS_CRL_FAIL_MODE. */
  revocation(): RevocationSource {
    return {
      status: async (cert, issuer, chain, deviceIndex, serialHex) => {
        const serial = serialHex ?? certInfo(cert).serialHex;
        const at = this.now();
        const mem = this.ocspMem.get(serial);
        if (mem && mem.result.nextUpdate.getTime() / 1000 > at) {
          this.stats.ocspCacheHits++;
          return this.toRevocation(mem.result);
        }
        const file = join(this.o.dir, 'ocsp', `${serial}.der`);
        try {
          const der = readFileSync(file);
          const result = await this.check(der, cert, issuer, chain, at);
          if (result.nextUpdate.getTime() / 1000 > at) {
            this.ocspMem.set(serial, { der, result });
            this.stats.ocspCacheHits++;
            return this.toRevocation(result);
          }
        } catch {
          // missing, stale or not for this certificate: ask the responder (or fail mode)
        }
        let why: string;
        if (this.o.offline()) {
          why = 'no fresh OCSP answer cached and TAS_NVIDIA_OFFLINE=true (import one with `tas gpu import`)';
        } else {
          this.stats.ocspFetches++;
          try {
            const res = await this.http(this.o.ocspUrl, { method: 'POST', headers: { 'content-type': 'application/ocsp-request', accept: 'application/ocsp-response' }, body: new Uint8Array(buildOcspRequest(cert, issuer)) }, 'NVIDIA OCSP', 'GPU_REVOCATION_UNAVAILABLE');
            if (res.status !== 200) throw new Error(`responder answered HTTP ${res.status}`);
            const der = Buffer.from(await res.arrayBuffer());
            const result = await this.check(der, cert, issuer, chain, at);
            this.importOcsp(serial, der);
            this.ocspMem.set(serial, { der, result });
            return this.toRevocation(result);
          } catch (e) {
            why = `OCSP for gpu[${deviceIndex}] certificate ${serial}: ${isTas(e) ? e.detail : (e as Error).message}`;
          }
        }
        if (this.o.failMode() === 'open') return { status: 'unknown' };
        throw unavailable('GPU_REVOCATION_UNAVAILABLE', `gpu[${deviceIndex}]: ${why} (TAS_CRL_FAIL_MODE=closed)`);
      },
    };
  }

  /** status summarises the cache for `tas gpu status` and /management/status. */
  status(): Record<string, unknown> {
    const rims = readdirSync(join(this.o.dir, 'rims')).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5)).sort();
    const at = this.now();
    const ocsp: Array<Record<string, unknown>> = [];
    for (const f of readdirSync(join(this.o.dir, 'ocsp')).filter((x) => x.endsWith('.der')).sort()) {
      const mem = this.ocspMem.get(f.slice(0, -4));
      ocsp.push({ serial: f.slice(0, -4), bytes: statSync(join(this.o.dir, 'ocsp', f)).size, ...(mem ? { next_update: mem.result.nextUpdate.toISOString(), fresh: mem.result.nextUpdate.getTime() / 1000 > at } : {}) });
    }
    return { dir: this.o.dir, offline: this.o.offline(), rim_url: this.o.rimUrl, ocsp_url: this.o.ocspUrl, rims, ocsp, stats: { ...this.stats } };
  }
}

function isTas(e: unknown): e is TasError {
  return e instanceof TasError;
}
