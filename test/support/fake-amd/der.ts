/**
 * DER building blocks for the fake signers (AMD, Intel): node's crypto signs bytes but cannot build
 * arbitrary certificates (KDS extensions, serial 0, exact DN string types), so test code assembles
 * the TBS structures itself with the product's encoder (src/cert/der.ts). That shares no trust:
 * everything built here is parsed and verified by OpenSSL in the addon, not by this encoder.
 */
import { tlv } from '../../../src/cert/der';

export { bits as bitString, bool, explicit, ia5, int as integer, nul, octets, oid, seq, set, time, tlv, utf8 } from '../../../src/cert/der';

/** printable is a PrintableString (AMD's and Intel's DNs use it where the profile says so). */
export const printable = (s: string): Buffer => tlv(0x13, Buffer.from(s, 'ascii'));
