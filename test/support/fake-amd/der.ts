/**
 * A minimal DER encoder, enough to build AMD-shaped X.509 certificates and CRLs in tests.
 * Node's crypto can sign bytes but cannot build arbitrary certificates (KDS extensions, serial 0,
 * exact DN string types), so test code assembles the TBS structures itself. Test-only code.
 */

/** tlv encodes one tag-length-value with a definite DER length. */
export function tlv(tag: number, content: Buffer): Buffer {
  const len = content.length;
  let lenBytes: Buffer;
  if (len < 0x80) lenBytes = Buffer.from([len]);
  else {
    const parts: number[] = [];
    for (let n = len; n > 0; n = Math.floor(n / 256)) parts.unshift(n & 0xff);
    lenBytes = Buffer.from([0x80 | parts.length, ...parts]);
  }
  return Buffer.concat([Buffer.from([tag]), lenBytes, content]);
}

export const seq = (...items: Buffer[]): Buffer => tlv(0x30, Buffer.concat(items));
export const set = (...items: Buffer[]): Buffer => tlv(0x31, Buffer.concat(items));
export const nul = (): Buffer => Buffer.from([0x05, 0x00]);
export const bool = (v: boolean): Buffer => Buffer.from([0x01, 0x01, v ? 0xff : 0x00]);
export const octets = (b: Buffer): Buffer => tlv(0x04, b);
export const utf8 = (s: string): Buffer => tlv(0x0c, Buffer.from(s, 'utf8'));
export const printable = (s: string): Buffer => tlv(0x13, Buffer.from(s, 'ascii'));
export const ia5 = (s: string): Buffer => tlv(0x16, Buffer.from(s, 'ascii'));
/** bitString wraps bytes with zero unused bits. */
export const bitString = (b: Buffer): Buffer => tlv(0x03, Buffer.concat([Buffer.from([0]), b]));
/** explicit is a constructed context tag [n] EXPLICIT. */
export const explicit = (n: number, inner: Buffer): Buffer => tlv(0xa0 | n, inner);

/** integer encodes a non-negative integer as a DER INTEGER (leading 00 when the top bit is set). */
export function integer(v: number | bigint | Buffer): Buffer {
  let bytes: Buffer;
  if (Buffer.isBuffer(v)) {
    let i = 0;
    while (i < v.length - 1 && v[i] === 0) i++;
    bytes = v.subarray(i);
    if (bytes.length === 0) bytes = Buffer.from([0]);
  } else {
    let n = BigInt(v);
    if (n < 0n) throw new Error('negative INTEGER not supported');
    const parts: number[] = [];
    do {
      parts.unshift(Number(n & 0xffn));
      n >>= 8n;
    } while (n > 0n);
    bytes = Buffer.from(parts);
  }
  if (bytes[0]! & 0x80) bytes = Buffer.concat([Buffer.from([0]), bytes]);
  return tlv(0x02, bytes);
}

/** oid encodes a dotted OBJECT IDENTIFIER. */
export function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map((a) => BigInt(a));
  const first = arcs[0]! * 40n + arcs[1]!;
  const out: number[] = [];
  for (const arc of [first, ...arcs.slice(2)]) {
    const group: number[] = [];
    let n = arc;
    do {
      group.unshift(Number(n & 0x7fn));
      n >>= 7n;
    } while (n > 0n);
    for (let i = 0; i < group.length - 1; i++) group[i]! |= 0x80;
    out.push(...group);
  }
  return tlv(0x06, Buffer.from(out));
}

/** time encodes UTCTime before 2050 and GeneralizedTime from 2050 on (RFC 5280 §4.1.2.5). */
export function time(d: Date): Buffer {
  const iso = d.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const y = d.getUTCFullYear();
  const body = iso.slice(5, 7) + iso.slice(8, 10) + iso.slice(11, 13) + iso.slice(14, 16) + iso.slice(17, 19) + 'Z';
  if (y >= 1950 && y < 2050) return tlv(0x17, Buffer.from(String(y).slice(2) + body, 'ascii'));
  return tlv(0x18, Buffer.from(String(y).padStart(4, '0') + body, 'ascii'));
}
