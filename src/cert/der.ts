/**
 * A small, strict DER reader and writer (X.690) for the certificate work of certify: reading
 * PKCS#10 requests and certificate extensions, and writing TBSCertificates that a signer plugin
 * signs. Node's crypto verifies and signs but cannot build certificates, and the product adds no
 * ASN.1 dependency for this.
 *
 * The reader accepts DER only: definite, minimal lengths; no indefinite form; low tag numbers
 * (every tag X.509 and PKCS#10 use); a bounded nesting depth. It never copies input: nodes are
 * views into the caller's buffer. Anything else throws DerError, which callers turn into a 400.
 */

/** DerError is a malformed encoding; the message says where (an offset), never the bytes. */
export class DerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DerError';
  }
}

/** Universal tags used here (X.690 §8). */
export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8String: 0x0c,
  PrintableString: 0x13,
  T61String: 0x14,
  IA5String: 0x16,
  UTCTime: 0x17,
  GeneralizedTime: 0x18,
  BMPString: 0x1e,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/** MAX_DEPTH bounds nesting (X.509 needs about 8; hostile input must not recurse without end). */
const MAX_DEPTH = 32;

/** DerNode is one decoded TLV: a view into the input. */
export interface DerNode {
  /** The full identifier octet (class, constructed bit and tag number), e.g. 0x30, 0xa0, 0x82. */
  readonly tag: number;
  readonly constructed: boolean;
  /** Offset of the identifier octet in the input. */
  readonly offset: number;
  /** The whole TLV. */
  readonly raw: Buffer;
  /** The contents octets. */
  readonly content: Buffer;
}

function readOne(buf: Buffer, pos: number): DerNode {
  if (pos >= buf.length) throw new DerError(`DER: truncated at offset ${pos}`);
  const tag = buf[pos]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError(`DER: high tag number at offset ${pos} is not used by X.509`);
  let p = pos + 1;
  if (p >= buf.length) throw new DerError(`DER: missing length at offset ${p}`);
  const first = buf[p++]!;
  let len: number;
  if (first < 0x80) len = first;
  else if (first === 0x80) throw new DerError(`DER: indefinite length at offset ${pos}`);
  else {
    const n = first & 0x7f;
    if (n > 4) throw new DerError(`DER: length of ${n} octets at offset ${pos}`);
    if (p + n > buf.length) throw new DerError(`DER: truncated length at offset ${pos}`);
    if (buf[p] === 0) throw new DerError(`DER: non-minimal length at offset ${pos}`);
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[p++]!;
    if (len < 0x80) throw new DerError(`DER: non-minimal length at offset ${pos}`);
  }
  if (p + len > buf.length) throw new DerError(`DER: value at offset ${pos} runs past the end (${len} bytes)`);
  return { tag, constructed: (tag & 0x20) !== 0, offset: pos, raw: buf.subarray(pos, p + len), content: buf.subarray(p, p + len) };
}

/** parse decodes exactly one TLV that spans the whole buffer. */
export function parse(buf: Buffer): DerNode {
  const n = readOne(buf, 0);
  if (n.raw.length !== buf.length) throw new DerError(`DER: ${buf.length - n.raw.length} trailing bytes after the value`);
  return n;
}

/** children decodes the contents of a constructed node into its elements. */
export function children(node: DerNode, depth = 0): DerNode[] {
  if (!node.constructed) throw new DerError(`DER: value at offset ${node.offset} is not constructed`);
  if (depth > MAX_DEPTH) throw new DerError('DER: nested too deeply');
  const out: DerNode[] = [];
  let p = 0;
  while (p < node.content.length) {
    const c = readOne(node.content, p);
    out.push({ ...c, offset: node.offset + (node.raw.length - node.content.length) + c.offset });
    p += c.raw.length;
  }
  return out;
}

/** expect checks a node's tag and returns it. */
export function expect(node: DerNode | undefined, tag: number, what: string): DerNode {
  if (!node) throw new DerError(`DER: ${what} is missing`);
  if (node.tag !== tag) throw new DerError(`DER: ${what} has tag 0x${node.tag.toString(16)}, expected 0x${tag.toString(16)}`);
  return node;
}

/** seqOf parses a SEQUENCE (or the given constructed tag) and returns its elements. */
export function seqOf(node: DerNode | undefined, what: string, tag: number = TAG.SEQUENCE): DerNode[] {
  return children(expect(node, tag, what));
}

/** readOid decodes an OBJECT IDENTIFIER to dotted text. */
export function readOid(node: DerNode | undefined, what = 'OID'): string {
  const c = expect(node, TAG.OID, what).content;
  if (c.length === 0 || c.length > 64) throw new DerError(`DER: ${what} has ${c.length} bytes`);
  if (c[c.length - 1]! & 0x80) throw new DerError(`DER: ${what} ends inside a sub-identifier`);
  const arcs: bigint[] = [];
  let v = 0n;
  let start = true;
  for (const b of c) {
    if (start && b === 0x80) throw new DerError(`DER: ${what} has a non-minimal sub-identifier`);
    v = (v << 7n) | BigInt(b & 0x7f);
    start = false;
    if ((b & 0x80) === 0) {
      arcs.push(v);
      v = 0n;
      start = true;
    }
  }
  const first = arcs[0]!;
  const head = first < 40n ? [0n, first] : first < 80n ? [1n, first - 40n] : [2n, first - 80n];
  return [...head, ...arcs.slice(1)].join('.');
}

/** readInt decodes an INTEGER (two's complement, minimal). */
export function readInt(node: DerNode | undefined, what = 'INTEGER'): bigint {
  const c = expect(node, TAG.INTEGER, what).content;
  if (c.length === 0) throw new DerError(`DER: ${what} is empty`);
  if (c.length > 1 && ((c[0] === 0 && !(c[1]! & 0x80)) || (c[0] === 0xff && c[1]! & 0x80))) throw new DerError(`DER: ${what} is not minimal`);
  let v = 0n;
  for (const b of c) v = (v << 8n) | BigInt(b);
  if (c[0]! & 0x80) v -= 1n << BigInt(c.length * 8);
  return v;
}

/** readBitString returns the bits of a BIT STRING that has no unused bits (keys, signatures). */
export function readBitString(node: DerNode | undefined, what = 'BIT STRING'): Buffer {
  const c = expect(node, TAG.BIT_STRING, what).content;
  if (c.length === 0) throw new DerError(`DER: ${what} is empty`);
  if (c[0] !== 0) throw new DerError(`DER: ${what} has ${c[0]} unused bits`);
  return c.subarray(1);
}

/** readBool decodes a DER BOOLEAN (0x00 or 0xff only). */
export function readBool(node: DerNode | undefined, what = 'BOOLEAN'): boolean {
  const c = expect(node, TAG.BOOLEAN, what).content;
  if (c.length !== 1 || (c[0] !== 0 && c[0] !== 0xff)) throw new DerError(`DER: ${what} is not a DER boolean`);
  return c[0] === 0xff;
}

/** readString decodes the string types names use; anything else throws. */
export function readString(node: DerNode | undefined, what = 'string'): string {
  if (!node) throw new DerError(`DER: ${what} is missing`);
  const c = node.content;
  switch (node.tag) {
    case TAG.UTF8String: {
      const s = c.toString('utf8');
      if (!Buffer.from(s, 'utf8').equals(c)) throw new DerError(`DER: ${what} is not valid UTF-8`);
      return s;
    }
    case TAG.PrintableString:
      if (!/^[A-Za-z0-9 '()+,\-./:=?]*$/.test(c.toString('latin1'))) throw new DerError(`DER: ${what} has characters outside PrintableString`);
      return c.toString('latin1');
    case TAG.IA5String:
      if (c.some((b) => b > 0x7f)) throw new DerError(`DER: ${what} has characters outside IA5String`);
      return c.toString('latin1');
    default:
      throw new DerError(`DER: ${what} has unsupported string tag 0x${node.tag.toString(16)}`);
  }
}

/** readTime decodes UTCTime or GeneralizedTime in the RFC 5280 forms (Z, whole seconds). */
export function readTime(node: DerNode | undefined, what = 'time'): Date {
  if (!node) throw new DerError(`DER: ${what} is missing`);
  const s = node.content.toString('latin1');
  let m: RegExpMatchArray | null;
  let year: number;
  if (node.tag === TAG.UTCTime && (m = s.match(/^(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/))) {
    const yy = Number(m[1]);
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
  } else if (node.tag === TAG.GeneralizedTime && (m = s.match(/^(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/))) {
    year = Number(m[1]);
  } else throw new DerError(`DER: ${what} is not an RFC 5280 UTCTime/GeneralizedTime`);
  const d = new Date(Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
  if (Number.isNaN(d.getTime()) || d.getUTCDate() !== Number(m[3])) throw new DerError(`DER: ${what} is not a calendar date`);
  return d;
}

// ------------------------------------------------------------------------------------------------
// Writer

function lengthOctets(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** tlv encodes one value with the given identifier octet. */
export function tlv(tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), lengthOctets(content.length), content]);
}

export const seq = (...items: Buffer[]): Buffer => tlv(TAG.SEQUENCE, Buffer.concat(items));

/** set encodes a SET OF with its elements in DER order (sorted by encoding, X.690 §11.6). */
export const set = (...items: Buffer[]): Buffer => tlv(TAG.SET, Buffer.concat([...items].sort(Buffer.compare)));

/** int encodes a non-negative integer (bigint, number, or unsigned big-endian bytes). */
export function int(v: bigint | number | Buffer): Buffer {
  let bytes: Buffer;
  if (Buffer.isBuffer(v)) {
    let i = 0;
    while (i < v.length - 1 && v[i] === 0) i++;
    bytes = v.subarray(i);
    if (bytes.length === 0) bytes = Buffer.from([0]);
  } else {
    const b = BigInt(v);
    if (b < 0n) throw new RangeError('der.int: negative integers are not used here');
    const hex = b.toString(16);
    bytes = Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex');
  }
  if (bytes[0]! & 0x80) bytes = Buffer.concat([Buffer.from([0]), bytes]);
  return tlv(TAG.INTEGER, bytes);
}

/** oid encodes dotted text. */
export function oid(dotted: string): Buffer {
  if (!/^[012]\.(0|[1-9]\d*)(\.(0|[1-9]\d*))*$/.test(dotted)) throw new RangeError(`der.oid: not a dotted OID: ${dotted}`);
  const arcs = dotted.split('.').map((a) => BigInt(a));
  if (arcs[0]! < 2n && arcs[1]! >= 40n) throw new RangeError(`der.oid: second arc too large: ${dotted}`);
  const subs = [arcs[0]! * 40n + arcs[1]!, ...arcs.slice(2)];
  const out: number[] = [];
  for (const s of subs) {
    const groups: number[] = [];
    let v = s;
    do {
      groups.unshift(Number(v & 0x7fn));
      v >>= 7n;
    } while (v > 0n);
    for (let i = 0; i < groups.length - 1; i++) groups[i]! |= 0x80;
    out.push(...groups);
  }
  return tlv(TAG.OID, Buffer.from(out));
}

export const nul = (): Buffer => Buffer.from([TAG.NULL, 0]);
export const bool = (b: boolean): Buffer => tlv(TAG.BOOLEAN, Buffer.from([b ? 0xff : 0]));
export const octets = (b: Buffer): Buffer => tlv(TAG.OCTET_STRING, b);
export const utf8 = (s: string): Buffer => tlv(TAG.UTF8String, Buffer.from(s, 'utf8'));
export const ia5 = (s: string): Buffer => {
  // eslint-disable-next-line no-control-regex
  if (!/^[\x00-\x7f]*$/.test(s)) throw new RangeError('der.ia5: non-ASCII text');
  return tlv(TAG.IA5String, Buffer.from(s, 'latin1'));
};

/** bits encodes a BIT STRING holding whole bytes (keys, signatures). */
export const bits = (b: Buffer): Buffer => tlv(TAG.BIT_STRING, Buffer.concat([Buffer.from([0]), b]));

/**
 * namedBits encodes a named-bit BIT STRING (KeyUsage) from bit numbers (0 = most significant bit
 * of the first byte), with trailing zero bits removed as DER requires (X.690 §11.2.2).
 */
export function namedBits(set: readonly number[]): Buffer {
  if (set.length === 0) return tlv(TAG.BIT_STRING, Buffer.from([0]));
  const max = Math.max(...set);
  const bytes = Buffer.alloc(Math.floor(max / 8) + 1);
  for (const n of set) bytes[Math.floor(n / 8)]! |= 0x80 >> n % 8;
  const unused = 7 - (max % 8);
  return tlv(TAG.BIT_STRING, Buffer.concat([Buffer.from([unused]), bytes]));
}

function pad(n: number, w: number): string {
  return String(n).padStart(w, '0');
}

/** time encodes a certificate time: UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 §4.1.2.5). */
export function time(d: Date): Buffer {
  const y = d.getUTCFullYear();
  const rest = `${pad(d.getUTCMonth() + 1, 2)}${pad(d.getUTCDate(), 2)}${pad(d.getUTCHours(), 2)}${pad(d.getUTCMinutes(), 2)}${pad(d.getUTCSeconds(), 2)}Z`;
  if (y >= 1950 && y < 2050) return tlv(TAG.UTCTime, Buffer.from(`${pad(y % 100, 2)}${rest}`, 'latin1'));
  return generalizedTime(d);
}

/** generalizedTime always uses GeneralizedTime (whole seconds, Z). */
export function generalizedTime(d: Date): Buffer {
  const s = `${pad(d.getUTCFullYear(), 4)}${pad(d.getUTCMonth() + 1, 2)}${pad(d.getUTCDate(), 2)}${pad(d.getUTCHours(), 2)}${pad(d.getUTCMinutes(), 2)}${pad(d.getUTCSeconds(), 2)}Z`;
  return tlv(TAG.GeneralizedTime, Buffer.from(s, 'latin1'));
}

/** explicit wraps a value in a context-specific constructed tag [n]. */
export const explicit = (n: number, inner: Buffer): Buffer => tlv(0xa0 | n, inner);

/** implicit re-tags contents as context-specific primitive [n] (IMPLICIT of a primitive type). */
export const implicit = (n: number, content: Buffer): Buffer => tlv(0x80 | n, content);

/** pem wraps DER in PEM armour with 64-column lines. */
export function pem(label: string, der: Buffer): string {
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

/** unpem extracts every block with the given label from PEM text, in order. */
export function unpem(text: string, label: string): Buffer[] {
  const out: Buffer[] = [];
  const re = new RegExp(`-----BEGIN ${label}-----([A-Za-z0-9+/=\\s]*?)-----END ${label}-----`, 'g');
  for (const m of text.matchAll(re)) out.push(Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'));
  return out;
}
