/**
 * TTLV codec (KMIP 1.x / 2.0 "Tag-Type-Length-Value", OASIS KMIP Spec 1.2 §9.1, 2.0 §9.1).
 *
 * Every item is a 3-byte tag, a 1-byte type, a 4-byte big-endian length (of the value, without
 * padding) and the value padded with zero bytes to a multiple of 8. Structures hold items.
 *
 * Decoding is strict on purpose: the bytes come from a network peer and one of the values is key
 * material, so anything the spec does not allow (wrong fixed length, non-zero padding, a Boolean
 * other than 0/1, invalid UTF-8, trailing bytes, absurd size or nesting) is rejected with a
 * TtlvError rather than guessed at.
 */

/** TtlvType holds the one-byte item type codes. */
export const TtlvType = {
  Structure: 0x01,
  Integer: 0x02,
  LongInteger: 0x03,
  BigInteger: 0x04,
  Enumeration: 0x05,
  Boolean: 0x06,
  TextString: 0x07,
  ByteString: 0x08,
  DateTime: 0x09,
  Interval: 0x0a,
} as const;

/** TtlvItem is one decoded (or to-be-encoded) item. */
export type TtlvItem =
  | { tag: number; type: typeof TtlvType.Structure; value: TtlvItem[] }
  | { tag: number; type: typeof TtlvType.Integer; value: number }
  | { tag: number; type: typeof TtlvType.LongInteger; value: bigint }
  | { tag: number; type: typeof TtlvType.BigInteger; value: bigint }
  | { tag: number; type: typeof TtlvType.Enumeration; value: number }
  | { tag: number; type: typeof TtlvType.Boolean; value: boolean }
  | { tag: number; type: typeof TtlvType.TextString; value: string }
  | { tag: number; type: typeof TtlvType.ByteString; value: Buffer }
  | { tag: number; type: typeof TtlvType.DateTime; value: bigint }
  | { tag: number; type: typeof TtlvType.Interval; value: number };

/** TtlvError reports malformed TTLV (decoding) or an unencodable value (encoding). */
export class TtlvError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TtlvError';
  }
}

/** TTLV_HEADER_SIZE is the size of tag + type + length. */
export const TTLV_HEADER_SIZE = 8;
/** TTLV_MAX_MESSAGE_SIZE bounds one message (our replies are a few hundred bytes). */
export const TTLV_MAX_MESSAGE_SIZE = 1024 * 1024;
/** TTLV_MAX_DEPTH bounds structure nesting (a Get reply nests 6 deep). */
export const TTLV_MAX_DEPTH = 16;
/** TTLV_MAX_ITEMS bounds the number of items in one message (guards against item floods). */
export const TTLV_MAX_ITEMS = 10_000;

// --- constructors (keep request building terse and type-checked) --------------------------------

export const structure = (tag: number, value: TtlvItem[]): TtlvItem => ({ tag, type: TtlvType.Structure, value });
export const integer = (tag: number, value: number): TtlvItem => ({ tag, type: TtlvType.Integer, value });
export const longInteger = (tag: number, value: bigint): TtlvItem => ({ tag, type: TtlvType.LongInteger, value });
export const bigInteger = (tag: number, value: bigint): TtlvItem => ({ tag, type: TtlvType.BigInteger, value });
export const enumeration = (tag: number, value: number): TtlvItem => ({ tag, type: TtlvType.Enumeration, value });
export const boolean = (tag: number, value: boolean): TtlvItem => ({ tag, type: TtlvType.Boolean, value });
export const textString = (tag: number, value: string): TtlvItem => ({ tag, type: TtlvType.TextString, value });
export const byteString = (tag: number, value: Buffer): TtlvItem => ({ tag, type: TtlvType.ByteString, value });
export const dateTime = (tag: number, value: bigint): TtlvItem => ({ tag, type: TtlvType.DateTime, value });
export const interval = (tag: number, value: number): TtlvItem => ({ tag, type: TtlvType.Interval, value });

// Arithmetic, not bitwise: lengths up to 2^32-1 must not wrap around in 32-bit operators.
const pad8 = (n: number): number => n + ((8 - (n % 8)) % 8);

/** isValidTag accepts the KMIP tag space 0x42xxxx and the extension space 0x54xxxx. */
export function isValidTag(tag: number): boolean {
  return Number.isInteger(tag) && ((tag >= 0x420000 && tag <= 0x42ffff) || (tag >= 0x540000 && tag <= 0x54ffff));
}

// --- encoding ------------------------------------------------------------------------------------

function bigIntToTwosComplement(v: bigint): Buffer {
  // Minimal two's-complement width, then sign-extended to a multiple of 8 bytes (KMIP 1.2 §9.1.1.4).
  let bytes = 1;
  while (v < -(1n << BigInt(bytes * 8 - 1)) || v >= 1n << BigInt(bytes * 8 - 1)) bytes++;
  const len = pad8(bytes);
  const out = Buffer.alloc(len);
  let x = v < 0n ? (1n << BigInt(len * 8)) + v : v;
  for (let i = len - 1; i >= 0; i--) {
    out[i] = Number(x & 0xffn);
    x >>= 8n;
  }
  return out;
}

function valueBytes(item: TtlvItem, depth: number): Buffer {
  switch (item.type) {
    case TtlvType.Structure: {
      if (depth >= TTLV_MAX_DEPTH) throw new TtlvError('structure nesting too deep');
      return Buffer.concat(item.value.map((c) => encodeItem(c, depth + 1)));
    }
    case TtlvType.Integer: {
      if (!Number.isInteger(item.value) || item.value < -0x80000000 || item.value > 0x7fffffff) {
        throw new TtlvError(`Integer out of range for tag 0x${item.tag.toString(16)}`);
      }
      const b = Buffer.alloc(4);
      b.writeInt32BE(item.value);
      return b;
    }
    case TtlvType.Enumeration:
    case TtlvType.Interval: {
      if (!Number.isInteger(item.value) || item.value < 0 || item.value > 0xffffffff) {
        throw new TtlvError(`Enumeration/Interval out of range for tag 0x${item.tag.toString(16)}`);
      }
      const b = Buffer.alloc(4);
      b.writeUInt32BE(item.value);
      return b;
    }
    case TtlvType.LongInteger:
    case TtlvType.DateTime: {
      if (item.value < -(1n << 63n) || item.value >= 1n << 63n) {
        throw new TtlvError(`LongInteger/DateTime out of range for tag 0x${item.tag.toString(16)}`);
      }
      const b = Buffer.alloc(8);
      b.writeBigInt64BE(item.value);
      return b;
    }
    case TtlvType.BigInteger:
      return bigIntToTwosComplement(item.value);
    case TtlvType.Boolean: {
      const b = Buffer.alloc(8);
      b.writeBigUInt64BE(item.value ? 1n : 0n);
      return b;
    }
    case TtlvType.TextString:
      return Buffer.from(item.value, 'utf8');
    case TtlvType.ByteString:
      return item.value;
    default:
      throw new TtlvError('unknown item type');
  }
}

function encodeItem(item: TtlvItem, depth: number): Buffer {
  if (!isValidTag(item.tag)) throw new TtlvError(`invalid tag 0x${Number(item.tag).toString(16)}`);
  const v = valueBytes(item, depth);
  const out = Buffer.alloc(TTLV_HEADER_SIZE + pad8(v.length));
  out.writeUIntBE(item.tag, 0, 3);
  out[3] = item.type;
  out.writeUInt32BE(v.length, 4);
  v.copy(out, TTLV_HEADER_SIZE);
  return out;
}

/** encodeTtlv encodes one item (normally a RequestMessage structure). */
export function encodeTtlv(item: TtlvItem): Buffer {
  const out = encodeItem(item, 0);
  if (out.length > TTLV_MAX_MESSAGE_SIZE) throw new TtlvError('message too large');
  return out;
}

// --- decoding ------------------------------------------------------------------------------------

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

interface DecodeState {
  items: number;
}

function checkPadding(buf: Buffer, from: number, to: number, tag: number): void {
  for (let i = from; i < to; i++) {
    if (buf[i] !== 0) throw new TtlvError(`non-zero padding after tag 0x${tag.toString(16)}`);
  }
}

function fixedLength(tag: number, type: number, len: number, want: number): void {
  if (len !== want) {
    throw new TtlvError(`tag 0x${tag.toString(16)} type ${type}: length ${len}, want ${want}`);
  }
}

/** decodeAt decodes the item at `off` within buf[..end]; returns the item and the offset after it. */
function decodeAt(buf: Buffer, off: number, end: number, depth: number, st: DecodeState): [TtlvItem, number] {
  if (end - off < TTLV_HEADER_SIZE) throw new TtlvError(`truncated header at offset ${off}`);
  if (++st.items > TTLV_MAX_ITEMS) throw new TtlvError('too many items');
  const tag = buf.readUIntBE(off, 3);
  const type = buf[off + 3]!;
  const len = buf.readUInt32BE(off + 4);
  if (!isValidTag(tag)) throw new TtlvError(`invalid tag 0x${tag.toString(16)} at offset ${off}`);
  const vStart = off + TTLV_HEADER_SIZE;
  const padded = pad8(len);
  // len <= 2^32-1 so padded cannot overflow a double; compare against the remaining bytes.
  if (padded > end - vStart) throw new TtlvError(`tag 0x${tag.toString(16)}: length ${len} exceeds the enclosing item`);
  const vEnd = vStart + len;
  const next = vStart + padded;
  checkPadding(buf, vEnd, next, tag);

  switch (type) {
    case TtlvType.Structure: {
      if (depth >= TTLV_MAX_DEPTH) throw new TtlvError('structure nesting too deep');
      if (len % 8 !== 0) throw new TtlvError(`structure 0x${tag.toString(16)} length ${len} is not a multiple of 8`);
      const children: TtlvItem[] = [];
      let p = vStart;
      while (p < vEnd) {
        const [child, after] = decodeAt(buf, p, vEnd, depth + 1, st);
        children.push(child);
        p = after;
      }
      return [{ tag, type, value: children }, next];
    }
    case TtlvType.Integer:
      fixedLength(tag, type, len, 4);
      return [{ tag, type, value: buf.readInt32BE(vStart) }, next];
    case TtlvType.Enumeration:
      fixedLength(tag, type, len, 4);
      return [{ tag, type, value: buf.readUInt32BE(vStart) }, next];
    case TtlvType.Interval:
      fixedLength(tag, type, len, 4);
      return [{ tag, type, value: buf.readUInt32BE(vStart) }, next];
    case TtlvType.LongInteger:
      fixedLength(tag, type, len, 8);
      return [{ tag, type, value: buf.readBigInt64BE(vStart) }, next];
    case TtlvType.DateTime:
      fixedLength(tag, type, len, 8);
      return [{ tag, type, value: buf.readBigInt64BE(vStart) }, next];
    case TtlvType.BigInteger: {
      if (len === 0 || len % 8 !== 0) throw new TtlvError(`BigInteger 0x${tag.toString(16)} length ${len} is not a positive multiple of 8`);
      let v = 0n;
      for (let i = vStart; i < vEnd; i++) v = (v << 8n) | BigInt(buf[i]!);
      if (buf[vStart]! & 0x80) v -= 1n << BigInt(len * 8);
      return [{ tag, type, value: v }, next];
    }
    case TtlvType.Boolean: {
      fixedLength(tag, type, len, 8);
      const v = buf.readBigUInt64BE(vStart);
      if (v > 1n) throw new TtlvError(`Boolean 0x${tag.toString(16)} is neither 0 nor 1`);
      return [{ tag, type, value: v === 1n }, next];
    }
    case TtlvType.TextString: {
      let s: string;
      try {
        s = utf8.decode(buf.subarray(vStart, vEnd));
      } catch {
        throw new TtlvError(`TextString 0x${tag.toString(16)} is not valid UTF-8`);
      }
      return [{ tag, type, value: s }, next];
    }
    case TtlvType.ByteString: {
      // Copy out: the caller zeroes the receive buffer after decoding, and key material must
      // then live only in buffers whose life time we control.
      const b = Buffer.alloc(len);
      buf.copy(b, 0, vStart, vEnd);
      return [{ tag, type, value: b }, next];
    }
    default:
      throw new TtlvError(`unknown item type 0x${type.toString(16)} for tag 0x${tag.toString(16)}`);
  }
}

/** ttlvMessageLength reads the total size (header + padded value) announced by a header. */
export function ttlvMessageLength(header: Buffer): number {
  if (header.length < TTLV_HEADER_SIZE) throw new TtlvError('truncated header');
  return TTLV_HEADER_SIZE + pad8(header.readUInt32BE(4));
}

/** decodeTtlv decodes exactly one item spanning all of buf (no trailing bytes). */
export function decodeTtlv(buf: Buffer): TtlvItem {
  if (buf.length > TTLV_MAX_MESSAGE_SIZE) throw new TtlvError('message too large');
  const [item, end] = decodeAt(buf, 0, buf.length, 0, { items: 0 });
  if (end !== buf.length) throw new TtlvError(`${buf.length - end} trailing bytes after the message`);
  return item;
}

// --- navigation helpers (used when reading responses) -------------------------------------------

/** children returns the items of a structure (error when the item is not one). */
export function children(item: TtlvItem): TtlvItem[] {
  if (item.type !== TtlvType.Structure) throw new TtlvError(`tag 0x${item.tag.toString(16)} is not a Structure`);
  return item.value;
}

/** findAll returns every direct child with this tag. */
export function findAll(item: TtlvItem, tag: number): TtlvItem[] {
  return children(item).filter((c) => c.tag === tag);
}

/** find returns the single direct child with this tag, or undefined; more than one is an error. */
export function find(item: TtlvItem, tag: number): TtlvItem | undefined {
  const all = findAll(item, tag);
  if (all.length > 1) throw new TtlvError(`tag 0x${tag.toString(16)} occurs ${all.length} times`);
  return all[0];
}

type ValueOf<T extends number> = Extract<TtlvItem, { type: T }>['value'];

/** expect returns the value of the single direct child with this tag and type (error if absent). */
export function expect<T extends (typeof TtlvType)[keyof typeof TtlvType]>(item: TtlvItem, tag: number, type: T): ValueOf<T> {
  const c = find(item, tag);
  if (c === undefined) throw new TtlvError(`missing tag 0x${tag.toString(16)} in 0x${item.tag.toString(16)}`);
  if (c.type !== type) throw new TtlvError(`tag 0x${tag.toString(16)} has type ${c.type}, want ${type}`);
  return c.value as ValueOf<T>;
}

/** optional is expect() for a child that may be absent. */
export function optional<T extends (typeof TtlvType)[keyof typeof TtlvType]>(item: TtlvItem, tag: number, type: T): ValueOf<T> | undefined {
  if (find(item, tag) === undefined) return undefined;
  // (TS cannot relate the Extract<> of a generic to itself | undefined; the value is expect()'s.)
  return expect(item, tag, type) as unknown as ValueOf<T> | undefined;
}

/** wipe zeroes every ByteString inside an item (key material after use). */
export function wipe(item: TtlvItem): void {
  if (item.type === TtlvType.Structure) item.value.forEach(wipe);
  else if (item.type === TtlvType.ByteString) item.value.fill(0);
}
