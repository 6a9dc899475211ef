/**
 * TTLV codec unit tests: every item type round-trips with the KMIP encodings (known answers from
 * the KMIP 1.2 spec §9.1.2 examples), and the strict decoder refuses each kind of malformed input.
 */
import assert from 'node:assert/strict';
import {
  TTLV_MAX_DEPTH,
  TTLV_MAX_MESSAGE_SIZE,
  TtlvError,
  TtlvType,
  bigInteger,
  boolean,
  byteString,
  dateTime,
  decodeTtlv,
  encodeTtlv,
  enumeration,
  expect,
  integer,
  interval,
  longInteger,
  optional,
  structure,
  textString,
  ttlvMessageLength,
  wipe,
  type TtlvItem,
} from '../../../plugins/tas_kbm_kmip/ttlv';
import { readGet, readResponse } from '../../../plugins/tas_kbm_kmip/messages';

const T = 0x420020;
const hex = (item: TtlvItem): string => encodeTtlv(item).toString('hex');
const bad = (h: string, re: RegExp): void => {
  assert.throws(() => decodeTtlv(Buffer.from(h.replace(/\s/g, ''), 'hex')), (e: unknown) => e instanceof TtlvError && re.test(e.message));
};

describe('TTLV codec', () => {
  it('encodes the KMIP 1.2 §9.1.2 examples exactly', () => {
    // Integer 8, Long 123456789000000000, BigInteger, Enumeration 255, Boolean true, TextString, ByteString, DateTime, Interval 10 days.
    assert.equal(hex(integer(T, 8)), '42002002000000040000000800000000');
    assert.equal(hex(longInteger(T, 123456789000000000n)), '420020030000000801b69b4ba5749200');
    assert.equal(hex(bigInteger(T, 1234567890000000000000000000n)), '42002004000000100000000003fd35eb6bc2df4618080000');
    assert.equal(hex(enumeration(T, 255)), '4200200500000004000000ff00000000');
    assert.equal(hex(boolean(T, true)), '42002006000000080000000000000001');
    assert.equal(hex(textString(T, 'Hello World')), '420020070000000b48656c6c6f20576f726c640000000000');
    assert.equal(hex(byteString(T, Buffer.from('010203', 'hex'))), '42002008000000030102030000000000');
    assert.equal(hex(dateTime(T, 0x47da67f8n)), '42002009000000080000000047da67f8');
    assert.equal(hex(interval(T, 864000)), '4200200a00000004000d2f0000000000');
    assert.equal(
      hex(structure(T, [enumeration(0x420004, 254), integer(0x420005, 255)])),
      '42002001000000204200040500000004000000fe000000004200050200000004000000ff00000000',
    );
  });

  it('round-trips every type, negative numbers and nested structures', () => {
    const item = structure(0x420078, [
      integer(T, -1),
      integer(T, 0x7fffffff),
      longInteger(T, -(1n << 63n)),
      bigInteger(T, -1n),
      bigInteger(T, 1n << 64n),
      bigInteger(T, -(1n << 63n)),
      enumeration(T, 0xffffffff),
      boolean(T, false),
      textString(T, 'grüße, 鍵'),
      textString(T, ''),
      byteString(T, Buffer.alloc(0)),
      byteString(T, Buffer.alloc(17, 0xab)),
      dateTime(T, 1_800_000_000n),
      interval(T, 0),
      structure(0x420079, [structure(0x42007a, [])]),
    ]);
    const bytes = encodeTtlv(item);
    assert.equal(bytes.length % 8, 0);
    assert.deepEqual(decodeTtlv(bytes), item);
    assert.equal(ttlvMessageLength(bytes), bytes.length);
  });

  it('encodes BigInteger in two\'s complement padded to 8 bytes', () => {
    assert.equal(encodeTtlv(bigInteger(T, -1n)).subarray(8).toString('hex'), 'ffffffffffffffff');
    assert.equal(encodeTtlv(bigInteger(T, 0x80n)).subarray(8).toString('hex'), '0000000000000080');
    assert.equal(encodeTtlv(bigInteger(T, 1n << 63n)).length, 8 + 16);
  });

  it('refuses to encode out-of-range values and bad tags', () => {
    assert.throws(() => encodeTtlv(integer(T, 2 ** 31)), TtlvError);
    assert.throws(() => encodeTtlv(integer(T, 1.5)), TtlvError);
    assert.throws(() => encodeTtlv(enumeration(T, -1)), TtlvError);
    assert.throws(() => encodeTtlv(longInteger(T, 1n << 63n)), TtlvError);
    assert.throws(() => encodeTtlv(integer(0x430000, 1)), /invalid tag/);
    let deep: TtlvItem = integer(T, 1);
    for (let i = 0; i <= TTLV_MAX_DEPTH; i++) deep = structure(T, [deep]);
    assert.throws(() => encodeTtlv(deep), /too deep/);
  });

  it('strict decoding: lengths, padding, booleans, UTF-8, types, tags', () => {
    bad('420020020000000800000008 00000000', /length 8, want 4/); // Integer with length 8
    bad('42002005000000030000000000000000', /length 3, want 4/);
    bad('420020030000000400000008 00000000', /length 4, want 8/);
    bad('42002002000000040000000800000001', /non-zero padding/);
    bad('42002008000000030102030000000100', /non-zero padding/);
    bad('42002006000000080000000000000002', /neither 0 nor 1/);
    bad('420020070000000280ff000000000000', /not valid UTF-8/);
    bad('42002004000000050000000000000000', /BigInteger/);
    bad('420020040000000000000000', /BigInteger|length/);
    bad('4200200b000000040000000000000000', /unknown item type/);
    bad('43002002000000040000000800000000', /invalid tag/);
    bad('420020010000000442002002', /not a multiple of 8|exceeds/);
    bad('4200200100000008420020020000000400000008', /exceeds the enclosing item/); // child longer than parent
  });

  it('strict decoding: truncation, trailing bytes, announced lengths beyond the buffer', () => {
    bad('4200200200000004', /exceeds/);
    bad('42002002000000', /truncated header/);
    bad('42002002000000040000000800000000 00', /trailing bytes/);
    bad('420020020000000400000008000000004200200200000004', /trailing bytes/);
    bad('42002008ffffffff00', /exceeds/); // 2^32-1 must not wrap around when padded
    assert.equal(ttlvMessageLength(Buffer.from('42002008ffffffff', 'hex')), 8 + 2 ** 32);
  });

  it('bounds the total size and the nesting depth', () => {
    assert.throws(() => decodeTtlv(Buffer.alloc(TTLV_MAX_MESSAGE_SIZE + 8)), /too large/);
    // 17 nested empty-ish structures, built by hand.
    let inner = Buffer.from('42002002000000040000000100000000', 'hex');
    for (let i = 0; i <= TTLV_MAX_DEPTH; i++) {
      const h = Buffer.alloc(8);
      h.writeUIntBE(T, 0, 3);
      h[3] = 1;
      h.writeUInt32BE(inner.length, 4);
      inner = Buffer.concat([h, inner]);
    }
    assert.throws(() => decodeTtlv(inner), /too deep/);
    // An item flood inside the size limit is refused too.
    const many = Buffer.concat(Array.from({ length: 20_000 }, () => Buffer.from('42002006000000080000000000000001', 'hex')));
    const h = Buffer.alloc(8);
    h.writeUIntBE(T, 0, 3);
    h[3] = 1;
    h.writeUInt32BE(many.length, 4);
    assert.throws(() => decodeTtlv(Buffer.concat([h, many])), /too many items/);
  });

  it('ByteStrings are copied out of the input, and wipe() zeroes them', () => {
    const input = encodeTtlv(structure(T, [byteString(T, Buffer.alloc(32, 0x5a))]));
    const item = decodeTtlv(input);
    input.fill(0);
    const b = expect(item, T, TtlvType.ByteString);
    assert.ok(b.every((x) => x === 0x5a));
    wipe(item);
    assert.ok(b.every((x) => x === 0));
  });

  it('navigation helpers check presence, uniqueness and type', () => {
    const s = structure(T, [integer(0x420001, 1), integer(0x420002, 2), integer(0x420002, 3)]);
    assert.equal(expect(s, 0x420001, TtlvType.Integer), 1);
    assert.equal(optional(s, 0x420003, TtlvType.Integer), undefined);
    assert.throws(() => expect(s, 0x420002, TtlvType.Integer), /occurs 2 times/);
    assert.throws(() => expect(s, 0x420001, TtlvType.TextString), /has type 2/);
    assert.throws(() => expect(s, 0x420003, TtlvType.Integer), /missing tag/);
  });

  it('response readers refuse wrapped or structured key blocks and BatchCount mismatches', () => {
    const getPayload = (block: TtlvItem[]): TtlvItem =>
      structure(0x42007c, [enumeration(0x420057, 2), textString(0x420094, '1'), structure(0x42008f, [structure(0x420040, block)])]);
    const keyValue = structure(0x420045, [byteString(0x420043, Buffer.alloc(32, 1))]);
    assert.equal(readGet(getPayload([enumeration(0x420042, 1), keyValue])).material.length, 32);
    assert.throws(() => readGet(getPayload([enumeration(0x420042, 7), keyValue])), /not Raw/);
    assert.throws(() => readGet(getPayload([enumeration(0x420042, 1), keyValue, structure(0x420046, [])])), /wrapped/);
    assert.throws(() => readGet(getPayload([enumeration(0x420042, 1), byteString(0x420045, Buffer.alloc(8))])), /KeyValue/);
    const msg = structure(0x42007b, [
      structure(0x42007a, [structure(0x420069, [integer(0x42006a, 1), integer(0x42006b, 2)]), integer(0x42000d, 2)]),
      structure(0x42000f, [enumeration(0x42007f, 0)]),
    ]);
    assert.throws(() => readResponse(msg), /BatchCount 2 but 1/);
  });
});
