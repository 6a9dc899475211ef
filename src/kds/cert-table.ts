/**
 * `tee-certificates` (PROTOCOL.md §2): either the SEV extended-report certificate table (an array
 * of 24-byte entries {GUID, offset u32 LE, length u32 LE} ended by an all-zero entry, offsets from
 * the table start; SNP.md §1.7) or a PEM bundle. Only parsing happens here (bounds-checked, DER
 * framing checked); every certificate is still chained to the pinned roots by the verifier.
 */
import { TasError } from '../errors';

const GUID = {
  VCEK: '63da758d-e664-4564-adc5-f4b93be8accd',
  VLEK: 'a8074bc2-a25a-483e-aae6-39c045a0b8a1',
  ASK: '4ab7b379-bbac-4fe4-a02f-05aef327c782', // also used for ASVK
  ARK: 'c0b406a4-a803-4952-9743-3fb6014cd0ae',
} as const;

/** EvidenceCerts are the DER certificates found in tee-certificates. */
export interface EvidenceCerts {
  vcek?: Buffer;
  vlek?: Buffer;
  /** ASK or ASVK. */
  ask?: Buffer;
  ark?: Buffer;
  /** PEM bundles do not say which certificate is which; the caller classifies by subject. */
  unclassified: Buffer[];
}

const MAX_ENTRIES = 16;
const MAX_CERT = 16 * 1024;

function bad(detail: string): TasError {
  return new TasError('HTTP_BAD_REQUEST', `tee-certificates: ${detail}`, { reason: 'CERT_TABLE_MALFORMED' });
}

/** guidString formats a 16-byte GUID as in the spec (first three groups little-endian). */
export function guidString(b: Buffer): string {
  const h = (x: Buffer) => x.toString('hex');
  const le = (x: Buffer) => h(Buffer.from(x).reverse());
  return `${le(b.subarray(0, 4))}-${le(b.subarray(4, 6))}-${le(b.subarray(6, 8))}-${h(b.subarray(8, 10))}-${h(b.subarray(10, 16))}`;
}

/** guidBytes is the inverse of guidString (for tests and the fake host). */
export function guidBytes(s: string): Buffer {
  const [a, b, c, d, e] = s.split('-') as [string, string, string, string, string];
  const le = (x: string) => Buffer.from(x, 'hex').reverse();
  return Buffer.concat([le(a), le(b), le(c), Buffer.from(d, 'hex'), Buffer.from(e, 'hex')]);
}

/** derLength returns the total length of a DER SEQUENCE at the start of b, or -1. */
function derLength(b: Buffer): number {
  if (b.length < 2 || b[0] !== 0x30) return -1;
  const l0 = b[1]!;
  if (l0 < 0x80) return 2 + l0;
  const n = l0 & 0x7f;
  if (n === 0 || n > 3 || b.length < 2 + n) return -1;
  let len = 0;
  for (let i = 0; i < n; i++) len = len * 256 + b[2 + i]!;
  return 2 + n + len;
}

/** parseTeeCertificates accepts a certificate table or a PEM bundle. */
export function parseTeeCertificates(buf: Buffer): EvidenceCerts {
  const text = buf.subarray(0, 64).toString('latin1');
  if (text.includes('-----BEGIN')) return parsePem(buf.toString('latin1'));
  return parseTable(buf);
}

function parsePem(text: string): EvidenceCerts {
  const out: EvidenceCerts = { unclassified: [] };
  const re = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----/g;
  for (const m of text.matchAll(re)) {
    const der = Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64');
    if (der.length > MAX_CERT || derLength(der) !== der.length) throw bad('a PEM certificate is not one DER SEQUENCE');
    out.unclassified.push(der);
    if (out.unclassified.length > MAX_ENTRIES) throw bad('too many certificates');
  }
  if (out.unclassified.length === 0) throw bad('no certificate in the PEM bundle');
  return out;
}

function parseTable(buf: Buffer): EvidenceCerts {
  const out: EvidenceCerts = { unclassified: [] };
  for (let i = 0; ; i++) {
    const at = i * 24;
    if (i > MAX_ENTRIES) throw bad('too many entries');
    if (at + 24 > buf.length) throw bad('table is not terminated by an all-zero entry');
    const entry = buf.subarray(at, at + 24);
    if (entry.every((x) => x === 0)) break;
    const guid = guidString(entry.subarray(0, 16));
    const off = entry.readUInt32LE(16);
    const len = entry.readUInt32LE(20);
    if (len === 0 || len > MAX_CERT || off + len > buf.length || off < (i + 1) * 24) throw bad(`entry ${i} (${guid}) points outside the table`);
    const der = buf.subarray(off, off + len);
    // Hosts pad entries; take the DER SEQUENCE and require the rest to be zero padding.
    const dl = derLength(der);
    if (dl < 0 || dl > der.length || !der.subarray(dl).every((x) => x === 0)) throw bad(`entry ${i} (${guid}) is not DER`);
    const cert = Buffer.from(der.subarray(0, dl));
    switch (guid) {
      case GUID.VCEK: out.vcek = cert; break;
      case GUID.VLEK: out.vlek = cert; break;
      case GUID.ASK: out.ask = cert; break;
      case GUID.ARK: out.ark = cert; break;
      default: break; // other entries (e.g. platform-specific) are not ours to interpret
    }
  }
  if (!out.vcek && !out.vlek) throw bad('no VCEK or VLEK entry');
  return out;
}

export const CERT_TABLE_GUIDS = GUID;
