/**
 * NVIDIA RIMs (reference integrity manifests: SWID tags carrying golden measurements of a driver
 * or VBIOS, XML-DSig signed with ecdsa-sha384 and C14N 1.1).
 *
 * Why xmlsec1: no maintained npm XML-DSig library verifies ECDSA with C14N 1.1, and writing an XML
 * canonicaliser here would be the riskiest code in tas. Debian's xmlsec1 (a package dependency)
 * does, in a child process, once — when a RIM is fetched or imported; the verdict and the RIM's
 * SHA-384 are cached with it and never re-decided per request. xmlsec1 is told to trust only the
 * pinned NVIDIA RIM root (and lab roots) and to take keys from X.509 certificates only, and the
 * document must carry exactly one enveloped signature over the whole document (Reference URI="").
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { GoldenMeasurement, VerifiedRim } from './device';

export const RIM_LIMITS = { maxXmlBytes: 256 * 1024, maxResources: 1024, maxAlternatives: 16 } as const;

/** ParsedRim is the content tas reads from a RIM (after, or without, its signature check). */
export interface ParsedRim {
  readonly version: string;
  readonly product: string;
  readonly manufacturerId?: string;
  readonly measurements: readonly GoldenMeasurement[];
}

function attrs(tag: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const a of tag.matchAll(/([A-Za-z_][\w.:-]*)\s*=\s*"([^"]*)"/g)) m.set(a[1]!.replace(/^[\w-]+:/, ''), a[2]!);
  return m;
}

/** parseRim reads version, manufacturer and the active golden measurements. Throws Error on anything odd. */
export function parseRim(xml: string): ParsedRim {
  if (Buffer.byteLength(xml) > RIM_LIMITS.maxXmlBytes) throw new Error(`RIM larger than ${RIM_LIMITS.maxXmlBytes} bytes`);
  if (/<!DOCTYPE|<!ENTITY/i.test(xml)) throw new Error('RIM has a DOCTYPE/ENTITY declaration');
  const sigs = xml.match(/<(\w+:)?Signature[\s>]/g) ?? [];
  if (sigs.length !== 1) throw new Error(`RIM has ${sigs.length} signatures, expected 1`);
  const refs = [...xml.matchAll(/<(?:\w+:)?Reference\b([^>]*)>/g)];
  if (refs.length !== 1 || attrs(refs[0]![1]!).get('URI') !== '') throw new Error('RIM signature must have exactly one Reference, over the whole document (URI="")');
  const meta = /<(?:\w+:)?Meta\b([^>]*)\/?>/.exec(xml);
  if (!meta) throw new Error('RIM has no Meta element');
  const ma = attrs(meta[1]!);
  const version = ma.get('colloquialVersion');
  if (!version) throw new Error('RIM Meta has no colloquialVersion');
  const measurements: GoldenMeasurement[] = [];
  const seen = new Set<number>();
  for (const r of xml.matchAll(/<(?:\w+:)?Resource\b([^>]*)\/?>/g)) {
    const a = attrs(r[1]!);
    if (a.get('type') !== 'Measurement') continue;
    if (measurements.length >= RIM_LIMITS.maxResources) throw new Error('RIM has too many measurements');
    const index = Number(a.get('index'));
    if (!Number.isInteger(index) || index < 0 || index > 255) throw new Error(`RIM measurement index ${a.get('index')} is not 0..255`);
    if (seen.has(index)) throw new Error(`RIM measurement index ${index} repeats`);
    seen.add(index);
    if (a.get('active') !== 'True' && a.get('active') !== 'true') continue;
    const n = Number(a.get('alternatives') ?? '1');
    const size = Number(a.get('size'));
    if (!Number.isInteger(n) || n < 1 || n > RIM_LIMITS.maxAlternatives) throw new Error(`RIM measurement ${index}: alternatives ${a.get('alternatives')}`);
    if (!Number.isInteger(size) || size < 1 || size > 64) throw new Error(`RIM measurement ${index}: size ${a.get('size')}`);
    const alternatives: Buffer[] = [];
    for (let i = 0; i < n; i++) {
      const h = a.get(`Hash${i}`);
      if (h === undefined || !new RegExp(`^[0-9a-fA-F]{${size * 2}}$`).test(h)) throw new Error(`RIM measurement ${index}: Hash${i} is not ${size} bytes of hex`);
      alternatives.push(Buffer.from(h, 'hex'));
    }
    measurements.push({ index, alternatives });
  }
  return { version, product: ma.get('product') ?? '', ...(ma.get('FirmwareManufacturerId') ? { manufacturerId: ma.get('FirmwareManufacturerId') } : {}), measurements };
}

function gmt(d: Date): string {
  return d.toISOString().replace('T', ' ').slice(0, 19);
}

/**
 * verifyRimSignature runs `xmlsec1 --verify` on the document with only the given roots trusted, at
 * `at`. Resolves true/false for a verdict; rejects when xmlsec1 itself cannot run (a deployment
 * fault, never a verdict).
 */
export function verifyRimSignature(xml: Buffer, roots: readonly Buffer[], at: Date): Promise<{ ok: boolean; detail: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'tas-rim-'));
  const file = join(dir, 'rim.xml');
  writeFileSync(file, xml);
  const args = ['--verify', '--enabled-key-data', 'x509', '--verification-gmt-time', gmt(at)];
  roots.forEach((r, i) => {
    const p = join(dir, `root${i}.pem`);
    writeFileSync(p, r);
    args.push('--trusted-pem', p);
  });
  args.push(file);
  return new Promise((resolve, reject) => {
    execFile('xmlsec1', args, { timeout: 20_000, maxBuffer: 1024 * 1024 }, (err, _stdout, stderr) => {
      rmSync(dir, { recursive: true, force: true });
      const e = err as (NodeJS.ErrnoException & { code?: unknown; killed?: boolean }) | null;
      if (e && (e.code === 'ENOENT' || e.killed)) {
        reject(new Error(`xmlsec1 could not run (${e.code === 'ENOENT' ? 'not installed: apt-get install xmlsec1' : 'timed out'})`));
        return;
      }
      const last = String(stderr).trim().split('\n').filter((l) => /error|fail|verif/i.test(l)).slice(-3).join(' | ').slice(0, 400);
      resolve(e ? { ok: false, detail: last || `xmlsec1 exit ${String(e.code)}` } : { ok: true, detail: 'XML-DSig ecdsa-sha384 verified by xmlsec1' });
    });
  });
}

/** rimIdFromName derives the NVIDIA RIM id from a file name (NV_GPU_…, or the VBIOS project_sku_chip_version form). */
export function rimIdFromName(name: string): string | undefined {
  const base = name.replace(/^.*\//, '');
  const nv = /^(NV_GPU_[A-Z0-9_.]+?)(?:\.xml|\.swidtag)?$/i.exec(base);
  if (nv) return nv[1]!.toUpperCase().replace(/(_[0-9.]+)$/, (v) => v);
  const vb = /^([0-9A-Z]{4}_[0-9A-Z]{4}_[0-9A-Z]{3}_[0-9A-F]{10})(?:_PROD)?\.(?:xml|swidtag)$/i.exec(base);
  if (vb) return `NV_GPU_VBIOS_${vb[1]!.toUpperCase()}`;
  return undefined;
}

/** verifiedRim checks and parses one RIM document; the verdict is what the cache keeps. */
export async function verifiedRim(id: string, xml: Buffer, roots: readonly Buffer[], at: Date): Promise<VerifiedRim & { sha384: string; verifiedAt: string; detail: string }> {
  const parsed = parseRim(xml.toString('utf8'));
  const sig = await verifyRimSignature(xml, roots, at);
  return {
    id, version: parsed.version, signatureVerified: sig.ok, certStatus: sig.ok ? 'valid' : 'invalid',
    ...(parsed.manufacturerId ? { manufacturerId: parsed.manufacturerId } : {}),
    measurements: parsed.measurements, sha384: createHash('sha384').update(xml).digest('hex'), verifiedAt: at.toISOString(), detail: sig.detail,
  };
}
