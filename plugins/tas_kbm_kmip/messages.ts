/**
 * KMIP request builders and response readers for the few operations tas needs: DiscoverVersions,
 * Locate, Get and GetAttributes (plus Create/Activate builders nothing in the daemon calls).
 *
 * KMIP 1.2 is the baseline; 1.3 and 1.4 encode these operations identically. KMIP 2.0 replaces
 * the `Attribute{AttributeName, AttributeValue}` triples by an `Attributes` structure whose
 * children are the attributes' own tags, and GetAttributes names attributes by
 * `AttributeReference` (an Enumeration holding the attribute's tag) instead of by name.
 */
import {
  TtlvError,
  TtlvType,
  byteString,
  children,
  enumeration,
  expect,
  find,
  findAll,
  integer,
  optional,
  structure,
  textString,
  type TtlvItem,
} from './ttlv';
import { KeyFormatType, NameType, ObjectType, ResultStatus, Tag } from './tags';

/** KmipVersion is a protocol version. */
export interface KmipVersion {
  readonly major: number;
  readonly minor: number;
}

export const KMIP_1_2: KmipVersion = Object.freeze({ major: 1, minor: 2 });
export const KMIP_1_4: KmipVersion = Object.freeze({ major: 1, minor: 4 });
export const KMIP_2_0: KmipVersion = Object.freeze({ major: 2, minor: 0 });
/** SUPPORTED_VERSIONS lists what tas speaks, most preferred first (DiscoverVersions order). */
export const SUPPORTED_VERSIONS: readonly KmipVersion[] = [KMIP_2_0, KMIP_1_4, KMIP_1_2];

export const versionString = (v: KmipVersion): string => `${v.major}.${v.minor}`;
const is2x = (v: KmipVersion): boolean => v.major >= 2;

/** BatchRequest is one operation of a request message. */
export interface BatchRequest {
  readonly operation: number;
  readonly payload: TtlvItem[];
}

const protocolVersion = (v: KmipVersion): TtlvItem =>
  structure(Tag.ProtocolVersion, [integer(Tag.ProtocolVersionMajor, v.major), integer(Tag.ProtocolVersionMinor, v.minor)]);

/**
 * requestMessage builds a RequestMessage. With more than one batch item each carries a
 * UniqueBatchItemId (its index, 4 bytes) so that replies are matched by id, not by position.
 */
export function requestMessage(version: KmipVersion, items: readonly BatchRequest[]): TtlvItem {
  if (items.length === 0) throw new TtlvError('empty batch');
  const batch = items.map((it, i) => {
    const kids: TtlvItem[] = [enumeration(Tag.Operation, it.operation)];
    if (items.length > 1) {
      const id = Buffer.alloc(4);
      id.writeUInt32BE(i);
      kids.push(byteString(Tag.UniqueBatchItemId, id));
    }
    kids.push(structure(Tag.RequestPayload, it.payload));
    return structure(Tag.BatchItem, kids);
  });
  return structure(Tag.RequestMessage, [
    structure(Tag.RequestHeader, [protocolVersion(version), integer(Tag.BatchCount, items.length)]),
    ...batch,
  ]);
}

// --- payloads -----------------------------------------------------------------------------------

/** discoverVersionsPayload lists the versions we offer (server answers with the ones it shares). */
export function discoverVersionsPayload(versions: readonly KmipVersion[]): TtlvItem[] {
  return versions.map(protocolVersion);
}

/** LocateCriteria is what tas searches by: one name, one object type, one state. */
export interface LocateCriteria {
  readonly name: string;
  readonly objectType: number;
  readonly state: number;
  /** Optional MaximumItems. tas asks for 2: one is the answer, two already means "ambiguous". */
  readonly maximumItems?: number;
}

/** attr1x builds a KMIP 1.x Attribute; `value` must already carry the AttributeValue tag. */
const attr1x = (name: string, value: TtlvItem): TtlvItem => structure(Tag.Attribute, [textString(Tag.AttributeName, name), value]);

const nameStruct = (tag: number, name: string): TtlvItem =>
  structure(tag, [textString(Tag.NameValue, name), enumeration(Tag.NameType, NameType.UninterpretedTextString)]);

/** locatePayload builds the Locate payload (ObjectType, State, Name; in that order). */
export function locatePayload(version: KmipVersion, c: LocateCriteria): TtlvItem[] {
  const out: TtlvItem[] = [];
  if (c.maximumItems !== undefined) out.push(integer(Tag.MaximumItems, c.maximumItems));
  if (is2x(version)) {
    out.push(
      structure(Tag.Attributes, [
        enumeration(Tag.ObjectType, c.objectType),
        enumeration(Tag.State, c.state),
        nameStruct(Tag.Name, c.name),
      ]),
    );
  } else {
    out.push(
      attr1x('Object Type', enumeration(Tag.AttributeValue, c.objectType)),
      attr1x('State', enumeration(Tag.AttributeValue, c.state)),
      attr1x('Name', nameStruct(Tag.AttributeValue, c.name)),
    );
  }
  return out;
}

/** getPayload asks for an object by id. No KeyFormatType: servers (PyKMIP) refuse conversions. */
export function getPayload(uid: string): TtlvItem[] {
  return [textString(Tag.UniqueIdentifier, uid)];
}

/** ATTRIBUTE_TAGS maps the attribute names tas reads to their 2.0 tags. */
export const ATTRIBUTE_TAGS: ReadonlyMap<string, number> = new Map([
  ['Object Type', Tag.ObjectType],
  ['State', Tag.State],
  ['Name', Tag.Name],
  ['Cryptographic Algorithm', Tag.CryptographicAlgorithm],
  ['Cryptographic Length', Tag.CryptographicLength],
  ['Cryptographic Usage Mask', Tag.CryptographicUsageMask],
  ['Unique Identifier', Tag.UniqueIdentifier],
]);
const ATTRIBUTE_NAMES: ReadonlyMap<number, string> = new Map([...ATTRIBUTE_TAGS].map(([k, v]) => [v, k]));

/** getAttributesPayload names the wanted attributes (1.x: AttributeName; 2.0: AttributeReference). */
export function getAttributesPayload(version: KmipVersion, uid: string, names: readonly string[]): TtlvItem[] {
  const out: TtlvItem[] = [textString(Tag.UniqueIdentifier, uid)];
  for (const n of names) {
    if (is2x(version)) {
      const tag = ATTRIBUTE_TAGS.get(n);
      if (tag === undefined) throw new TtlvError(`no KMIP 2.0 tag known for attribute '${n}'`);
      out.push(enumeration(Tag.AttributeReference, tag));
    } else {
      out.push(textString(Tag.AttributeName, n));
    }
  }
  return out;
}

// --- responses ----------------------------------------------------------------------------------

/** BatchResult is one batch item of a response. */
export interface BatchResult {
  readonly operation: number | undefined;
  readonly uniqueBatchItemId: Buffer | undefined;
  readonly status: number;
  readonly reason: number | undefined;
  readonly message: string | undefined;
  readonly payload: TtlvItem | undefined;
}

/** ResponseMessage is a decoded response. */
export interface ResponseMessage {
  readonly version: KmipVersion;
  readonly items: BatchResult[];
}

/** readResponse checks the response message shape and extracts the batch items. */
export function readResponse(msg: TtlvItem): ResponseMessage {
  if (msg.tag !== Tag.ResponseMessage || msg.type !== TtlvType.Structure) throw new TtlvError('not a ResponseMessage');
  const header = find(msg, Tag.ResponseHeader);
  if (header === undefined || header.type !== TtlvType.Structure) throw new TtlvError('ResponseHeader missing');
  const pv = find(header, Tag.ProtocolVersion);
  if (pv === undefined) throw new TtlvError('ProtocolVersion missing');
  const version = {
    major: expect(pv, Tag.ProtocolVersionMajor, TtlvType.Integer),
    minor: expect(pv, Tag.ProtocolVersionMinor, TtlvType.Integer),
  };
  const count = expect(header, Tag.BatchCount, TtlvType.Integer);
  const batch = findAll(msg, Tag.BatchItem);
  if (batch.length !== count) throw new TtlvError(`BatchCount ${count} but ${batch.length} batch items`);
  const items = batch.map((b): BatchResult => {
    const payload = find(b, Tag.ResponsePayload);
    if (payload !== undefined && payload.type !== TtlvType.Structure) throw new TtlvError('ResponsePayload is not a Structure');
    return {
      operation: optional(b, Tag.Operation, TtlvType.Enumeration),
      uniqueBatchItemId: optional(b, Tag.UniqueBatchItemId, TtlvType.ByteString),
      status: expect(b, Tag.ResultStatus, TtlvType.Enumeration),
      reason: optional(b, Tag.ResultReason, TtlvType.Enumeration),
      message: optional(b, Tag.ResultMessage, TtlvType.TextString),
      payload,
    };
  });
  return { version, items };
}

/** isSuccess says whether a batch item succeeded. */
export const isSuccess = (r: BatchResult): boolean => r.status === ResultStatus.Success;

/** readDiscoverVersions returns the versions the server listed. */
export function readDiscoverVersions(payload: TtlvItem | undefined): KmipVersion[] {
  if (payload === undefined) return [];
  return findAll(payload, Tag.ProtocolVersion).map((pv) => ({
    major: expect(pv, Tag.ProtocolVersionMajor, TtlvType.Integer),
    minor: expect(pv, Tag.ProtocolVersionMinor, TtlvType.Integer),
  }));
}

/** readLocate returns the unique identifiers found (an absent payload means none). */
export function readLocate(payload: TtlvItem | undefined): string[] {
  if (payload === undefined) return [];
  return findAll(payload, Tag.UniqueIdentifier).map((u) => {
    if (u.type !== TtlvType.TextString) throw new TtlvError('UniqueIdentifier is not a TextString');
    return u.value;
  });
}

/** KmipObject is the secret part of a Get reply. The caller zeroes `material` after use. */
export interface KmipObject {
  readonly uid: string;
  readonly objectType: number;
  readonly keyFormatType: number;
  readonly material: Buffer;
  readonly cryptographicAlgorithm: number | undefined;
  readonly cryptographicLength: number | undefined;
}

/**
 * readGet extracts the key material of a SymmetricKey or SecretData. Only unwrapped Raw (or, for
 * SecretData, Opaque) key blocks are accepted: a wrapped or structured (Transparent*) key block
 * is refused rather than misread as the secret.
 */
export function readGet(payload: TtlvItem | undefined): KmipObject {
  if (payload === undefined) throw new TtlvError('Get response without payload');
  const objectType = expect(payload, Tag.ObjectType, TtlvType.Enumeration);
  const uid = expect(payload, Tag.UniqueIdentifier, TtlvType.TextString);
  let obj: TtlvItem | undefined;
  if (objectType === ObjectType.SymmetricKey) obj = find(payload, Tag.SymmetricKey);
  else if (objectType === ObjectType.SecretData) obj = find(payload, Tag.SecretData);
  else throw new TtlvError(`object type ${objectType} is neither SymmetricKey nor SecretData`);
  if (obj === undefined || obj.type !== TtlvType.Structure) throw new TtlvError('object structure missing');
  const block = find(obj, Tag.KeyBlock);
  if (block === undefined || block.type !== TtlvType.Structure) throw new TtlvError('KeyBlock missing');
  if (find(block, Tag.KeyWrappingData) !== undefined) throw new TtlvError('key block is wrapped; tas asked for it unwrapped');
  const keyFormatType = expect(block, Tag.KeyFormatType, TtlvType.Enumeration);
  const okFormat =
    keyFormatType === KeyFormatType.Raw || (objectType === ObjectType.SecretData && keyFormatType === KeyFormatType.Opaque);
  if (!okFormat) throw new TtlvError(`key format type ${keyFormatType} is not Raw${objectType === ObjectType.SecretData ? ' or Opaque' : ''}`);
  const value = find(block, Tag.KeyValue);
  if (value === undefined || value.type !== TtlvType.Structure) throw new TtlvError('KeyValue missing or not a Structure');
  const material = expect(value, Tag.KeyMaterial, TtlvType.ByteString);
  if (material.length === 0) throw new TtlvError('empty key material');
  return {
    uid,
    objectType,
    keyFormatType,
    material,
    cryptographicAlgorithm: optional(block, Tag.CryptographicAlgorithm, TtlvType.Enumeration),
    cryptographicLength: optional(block, Tag.CryptographicLength, TtlvType.Integer),
  };
}

/** KmipAttribute is one attribute value of a GetAttributes reply (value item as sent). */
export interface KmipAttribute {
  readonly name: string;
  readonly index: number | undefined;
  readonly value: TtlvItem;
}

/** readGetAttributes normalises the 1.x triples and the 2.0 `Attributes` structure. */
export function readGetAttributes(payload: TtlvItem | undefined): { uid: string; attributes: KmipAttribute[] } {
  if (payload === undefined) throw new TtlvError('GetAttributes response without payload');
  const uid = expect(payload, Tag.UniqueIdentifier, TtlvType.TextString);
  const attributes: KmipAttribute[] = [];
  for (const a of findAll(payload, Tag.Attribute)) {
    const name = expect(a, Tag.AttributeName, TtlvType.TextString);
    const value = find(a, Tag.AttributeValue);
    if (value === undefined) throw new TtlvError(`attribute '${name}' without value`);
    attributes.push({ name, index: optional(a, Tag.AttributeIndex, TtlvType.Integer), value });
  }
  const v2 = find(payload, Tag.Attributes);
  if (v2 !== undefined) {
    for (const c of children(v2)) {
      const name = ATTRIBUTE_NAMES.get(c.tag);
      // Unknown tags (PyKMIP 2.0 adds e.g. 0x420120) are skipped, not guessed at.
      if (name !== undefined) attributes.push({ name, index: undefined, value: c });
    }
  }
  return { uid, attributes };
}

/** nameOf reads a Name attribute value (structure of NameValue + NameType). */
export function nameOf(value: TtlvItem): string {
  return expect(value, Tag.NameValue, TtlvType.TextString);
}
