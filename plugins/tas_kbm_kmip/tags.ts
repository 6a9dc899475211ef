/**
 * KMIP tag and enumeration values used by tas (OASIS KMIP 1.2 §9.1.3, 2.0 §11). Only what the
 * client sends or reads is listed; unknown tags in responses are tolerated and ignored.
 */

/** Tag holds the KMIP tags tas uses. */
export const Tag = {
  Attribute: 0x420008,
  AttributeIndex: 0x420009,
  AttributeName: 0x42000a,
  AttributeValue: 0x42000b,
  BatchCount: 0x42000d,
  BatchItem: 0x42000f,
  CryptographicAlgorithm: 0x420028,
  CryptographicLength: 0x42002a,
  CryptographicUsageMask: 0x42002c,
  KeyBlock: 0x420040,
  KeyFormatType: 0x420042,
  KeyMaterial: 0x420043,
  KeyValue: 0x420045,
  KeyWrappingData: 0x420046,
  MaximumItems: 0x42004f,
  Name: 0x420053,
  NameType: 0x420054,
  NameValue: 0x420055,
  ObjectType: 0x420057,
  Operation: 0x42005c,
  ProtocolVersion: 0x420069,
  ProtocolVersionMajor: 0x42006a,
  ProtocolVersionMinor: 0x42006b,
  RequestHeader: 0x420077,
  RequestMessage: 0x420078,
  RequestPayload: 0x420079,
  ResponseHeader: 0x42007a,
  ResponseMessage: 0x42007b,
  ResponsePayload: 0x42007c,
  ResultMessage: 0x42007d,
  ResultReason: 0x42007e,
  ResultStatus: 0x42007f,
  SecretData: 0x420085,
  SecretDataType: 0x420086,
  State: 0x42008d,
  SymmetricKey: 0x42008f,
  TimeStamp: 0x420092,
  UniqueBatchItemId: 0x420093,
  UniqueIdentifier: 0x420094,
  // KMIP 2.0
  Attributes: 0x420125,
  AttributeReference: 0x42013b,
} as const;

/** TAG_NAMES maps tag values back to names (diagnostics and fixture dumps). */
export const TAG_NAMES: ReadonlyMap<number, string> = new Map(Object.entries(Tag).map(([k, v]) => [v, k]));

/** Operation codes (KMIP 1.2 §9.1.3.2.27). */
export const Operation = {
  Create: 0x01,
  Register: 0x03,
  Locate: 0x08,
  Get: 0x0a,
  GetAttributes: 0x0b,
  Activate: 0x12,
  Destroy: 0x14,
  Query: 0x18,
  DiscoverVersions: 0x1e,
} as const;

/** ObjectType enumeration. */
export const ObjectType = { Certificate: 1, SymmetricKey: 2, PublicKey: 3, PrivateKey: 4, SecretData: 7, OpaqueObject: 8 } as const;

/** State enumeration. */
export const State = { PreActive: 1, Active: 2, Deactivated: 3, Compromised: 4, Destroyed: 5, DestroyedCompromised: 6 } as const;

/** ResultStatus enumeration. */
export const ResultStatus = { Success: 0, OperationFailed: 1, OperationPending: 2, OperationUndone: 3 } as const;

/** ResultReason values tas distinguishes (the rest are reported by number). */
export const ResultReason = {
  ItemNotFound: 0x01,
  AuthenticationNotSuccessful: 0x03,
  InvalidMessage: 0x04,
  OperationNotSupported: 0x05,
  PermissionDenied: 0x0c,
  KeyFormatTypeNotSupported: 0x10,
  GeneralFailure: 0x100,
} as const;

/** KeyFormatType enumeration (Raw and Opaque are the ones a plain secret arrives in). */
export const KeyFormatType = { Raw: 1, Opaque: 2, TransparentSymmetricKey: 7 } as const;

/** NameType enumeration. */
export const NameType = { UninterpretedTextString: 1, Uri: 2 } as const;

/** RESULT_REASON_NAMES gives operators readable reasons in logs. */
export const RESULT_REASON_NAMES: ReadonlyMap<number, string> = new Map(Object.entries(ResultReason).map(([k, v]) => [v, k]));
