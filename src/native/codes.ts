/**
 * Stable error codes of the native addon (native/core/errors.h: SEV-SNP `SNP_ERR_*`, Intel TDX
 * `TDX_ERR_*`) and their mapping onto the error catalogue (src/errors/index.ts). Malformed evidence
 * (a report or quote that does not parse) is TEE_EVIDENCE_MALFORMED; every other failure is
 * TEE_VERIFICATION_FAILED. The native code becomes TasError.reason so the audit record says
 * precisely what failed while the wire text stays coarse. SNP_ERR_INTERNAL and SNP_ERR_ADDON_LOAD
 * are shared by every TEE.
 */
import { TasError, type ErrorCode } from '../errors/index.js';

/** NATIVE_CODES documents every code the addon can reject with. */
export const NATIVE_CODES = {
  SNP_ERR_ARGUMENT: 'The caller passed a bad argument (type, size bound, product, kind, time, serial).',
  SNP_ERR_REPORT_SIZE: 'The report is not exactly 1184 (0x4A0) bytes.',
  SNP_ERR_REPORT_VERSION: 'Report VERSION is not 2..5 (4 is parsed as 3).',
  SNP_ERR_SIGNATURE_ALGO: 'SIGNATURE_ALGO is not 1 (ECDSA P-384 with SHA-384).',
  SNP_ERR_MBZ: 'A must-be-zero area is not zero (reserved fields, signer info bits 31:5, signature padding, unsigned tail 0x330..0x49F).',
  SNP_ERR_POLICY_BIT17: 'Guest POLICY bit 17 (reserved, must be one) is zero.',
  SNP_ERR_POLICY_RESERVED: 'Guest POLICY has reserved bits 63:26 set.',
  SNP_ERR_SIGNING_KEY: 'SIGNING_KEY is a reserved value (2..6).',
  SNP_ERR_REPORT_SIGNATURE: 'The report signature does not verify with the VCEK/VLEK key.',
  SNP_ERR_CERT_PARSE: 'A certificate is not parseable DER/PEM X.509.',
  SNP_ERR_CERT_SHAPE: 'A certificate has the wrong shape (leaf serial not 0, key not P-384, CA constraints/keyUsage, not v3).',
  SNP_ERR_CHAIN: 'The chain does not verify to the pinned ARK (signature, issuer, path).',
  SNP_ERR_CERT_EXPIRED: 'A certificate of the chain is expired or not yet valid at the verification time.',
  SNP_ERR_CERT_PSS: 'A certificate is not signed with RSASSA-PSS SHA-384 / MGF1-SHA-384 / salt 48 / trailer 1.',
  SNP_ERR_CERT_DN: 'A subject/issuer DN does not have the AMD attributes or the expected CN for the product.',
  SNP_ERR_EXT: 'The AMD KDS extensions (1.3.6.1.4.1.3704.1.*) are missing, malformed, duplicated, unknown or inconsistent.',
  SNP_ERR_SIGNER_KIND: 'VCEK/VLEK confusion: certificate kind, requested kind and report SIGNING_KEY disagree (or the report is unsigned).',
  SNP_ERR_CRL_PARSE: 'The CRL is not parseable DER/PEM.',
  SNP_ERR_CRL_SIGNATURE: 'The CRL is not issued and PSS-signed by the ARK.',
  SNP_ERR_CRL_STALE: 'The CRL is outside thisUpdate..nextUpdate (with skew) or has no nextUpdate.',
  SNP_ERR_REVOKED: 'The ASK/ASVK or the VCEK/VLEK serial is listed in the CRL.',
  SNP_ERR_INTERNAL: 'OpenSSL or allocation failure inside the addon (a bug, never bad input).',
  SNP_ERR_ADDON_LOAD: 'build/Release/tas_native.node could not be loaded (no JavaScript fallback exists).',
  TDX_ERR_ARGUMENT: 'The caller passed a bad TDX argument (type, size bound, trust roots, time, skew).',
  TDX_ERR_QUOTE_SIZE: 'The quote is shorter than its framing says (header, body, signature data) or larger than 64 KiB.',
  TDX_ERR_HEADER: 'Quote header: version not 4/5, attestation key type not 2 (ECDSA P-256), TEE type not 0x81, or QE vendor id not Intel.',
  TDX_ERR_BODY_TYPE: 'v5 body descriptor is not TD report 1.0 (type 2, 584 bytes) or 1.5 (type 3, 648 bytes); types 1 (SGX) and 4 are refused.',
  TDX_ERR_SIG_DATA: 'The signature data is too short to hold the quote signature, attestation key and QE report.',
  TDX_ERR_CERT_DATA: 'Certification data is not type 6 wrapping type 5 with exact sizes, or the PCK chain is not exactly 3 PEM certificates.',
  TDX_ERR_TRAILING: 'Non-zero bytes follow the signature data (only zero padding is tolerated; nothing there is signed).',
  TDX_ERR_ATTESTATION_KEY: 'The attestation key is not a valid P-256 point.',
  TDX_ERR_QE_REPORT_SIGNATURE: 'The QE report signature does not verify with the PCK certificate key.',
  TDX_ERR_QE_REPORT_DATA: 'QE REPORTDATA is not SHA-256(attestation key ‖ QE auth data) followed by 32 zero bytes (attestation key binding).',
  TDX_ERR_QUOTE_SIGNATURE: 'The quote signature (header + TD report) does not verify with the attestation key.',
  TDX_ERR_CERT_PARSE: 'A certificate of the PCK chain is not parseable X.509.',
  TDX_ERR_CERT_SHAPE: 'A PCK chain certificate has the wrong shape (CN, CA flags, key not P-256, not ecdsa-with-SHA256).',
  TDX_ERR_ROOT_NOT_PINNED: 'The root certificate of a chain is not byte-equal to a pinned Intel SGX Root CA.',
  TDX_ERR_CHAIN: 'The PCK chain does not verify to the pinned root (signature, issuer, path).',
  TDX_ERR_CERT_EXPIRED: 'A certificate (PCK chain or TCB Signing chain) is expired or not yet valid at the verification time.',
  TDX_ERR_SGX_EXT: 'The SGX extension (1.2.840.113741.1.13.1) of the PCK certificate is missing, malformed, duplicated or incomplete.',
  TDX_ERR_CRL_PARSE: 'A CRL (root CA or PCK CA) is not parseable DER/PEM.',
  TDX_ERR_CRL_SIGNATURE: 'A CRL is not ecdsa-with-SHA256 signed by its issuer (root CA CRL by the root, PCK CRL by the PCK certificate issuer).',
  TDX_ERR_CRL_STALE: 'A CRL is outside thisUpdate..nextUpdate at the verification time or has no nextUpdate.',
  TDX_ERR_REVOKED: 'The PCK certificate, the PCK CA or the TCB Signing certificate is listed in its CRL.',
  TDX_ERR_COLLATERAL_CHAIN: 'A PCS issuer chain (TCB Signing cert + root, or PCK CRL issuer + root) is malformed or does not verify to the pinned root.',
  TDX_ERR_TCB_INFO_SIGNATURE: 'The tcbInfo signature does not verify over the exact received bytes with the TCB Signing key.',
  TDX_ERR_QE_IDENTITY_SIGNATURE: 'The enclaveIdentity (QE identity) signature does not verify over the exact received bytes with the TCB Signing key.',
} as const;

/** NativeCode is any code of NATIVE_CODES. */
export type NativeCode = keyof typeof NATIVE_CODES;

/** MALFORMED_CODES are the codes meaning "the evidence is not a well-formed report". */
const MALFORMED_CODES: ReadonlySet<string> = new Set<NativeCode>([
  'SNP_ERR_REPORT_SIZE',
  'SNP_ERR_REPORT_VERSION',
  'SNP_ERR_SIGNATURE_ALGO',
  'SNP_ERR_MBZ',
  'SNP_ERR_POLICY_BIT17',
  'SNP_ERR_POLICY_RESERVED',
  'SNP_ERR_SIGNING_KEY',
  'TDX_ERR_QUOTE_SIZE',
  'TDX_ERR_HEADER',
  'TDX_ERR_BODY_TYPE',
  'TDX_ERR_SIG_DATA',
  'TDX_ERR_CERT_DATA',
  'TDX_ERR_TRAILING',
]);

/** catalogueCodeFor maps a native code onto the error catalogue. */
export function catalogueCodeFor(code: string): ErrorCode {
  if (code === 'SNP_ERR_INTERNAL' || code === 'SNP_ERR_ADDON_LOAD') return 'INTERNAL';
  return MALFORMED_CODES.has(code) ? 'TEE_EVIDENCE_MALFORMED' : 'TEE_VERIFICATION_FAILED';
}

/** isNativeCode narrows a string to a documented native code. */
export function isNativeCode(code: string): code is NativeCode {
  return Object.prototype.hasOwnProperty.call(NATIVE_CODES, code);
}

/** nativeToTasError turns a NativeError (anything with a `code`) into the catalogue's TasError. */
export function nativeToTasError(e: { code: string; message: string }): TasError {
  // The code travels as the reason: the detail does not repeat it (callers print `${reason}: ${detail}`).
  return new TasError(catalogueCodeFor(e.code), e.message, { reason: e.code, cause: e });
}
