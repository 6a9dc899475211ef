/**
 * The NVIDIA GPU surface of the native addon (native/core/spdm.h, native/core/nvidia.h): SPDM
 * GET_MEASUREMENTS parsing, the device checks (chain to the pinned NVIDIA Device Identity root at a
 * given time, ECDSA-P384 over request ‖ response, FWID) and OCSP response verification. Bytes and
 * crypto only; the caller supplies roots and the time.
 */
import { laterCall, loadBinding, syncCall, type CertInfo, type Check } from './index';

/** GPU_NATIVE_CODES documents the addon's GPU error codes (SNP_ERR_ARGUMENT/INTERNAL may occur too). */
export const GPU_NATIVE_CODES = {
  GPU_ERR_SPDM: 'The SPDM GET_MEASUREMENTS request/response is malformed (version, codes, lengths, blocks, opaque TLVs, bytes after the signature that are not zero padding).',
  GPU_ERR_CERT: 'The device certificate chain is not 1..8 PEM certificates, or one does not parse.',
  GPU_ERR_FWID: 'The FWID extension (2.23.133.5.4.1 / 2.23.133.5.4.1.1 DiceTcbInfo) is malformed or repeated.',
  GPU_ERR_OCSP: 'An OCSP response does not parse, is not successful, is not signed by a responder chained to the pinned root, has no status for the certificate, or is outside thisUpdate..nextUpdate.',
} as const;

export interface SpdmBlock { index: number; valueType: number; value: Buffer }
export interface OpaqueField { type: number; value: Buffer }

/** SpdmEvidence is a parsed request ‖ response. */
export interface SpdmEvidence {
  request: { version: number; param1: number; param2: number; slot: number; nonce: Buffer };
  version: number;
  param1: number;
  param2: number;
  blocks: SpdmBlock[];
  responderNonce: Buffer;
  opaque: OpaqueField[];
  /** From the signed opaque data ('' when absent). */
  driverVersion: string;
  vbiosVersion: string;
  fwid?: Buffer;
  signature: Buffer;
  signedLength: number;
  padding: number;
}

/** GpuDeviceResult: parse plus one verdict per device check (chain, signature, fwid). */
export interface GpuDeviceResult {
  spdm: SpdmEvidence;
  certs: CertInfo[];
  /** Leaf serial number in decimal (NRAS `ueid`). */
  ueid: string;
  /** CN of the leaf's issuer (NRAS `hwmodel`, e.g. "GH100 A01 GSP BROM"). */
  hwmodel: string;
  fwidSource: string;
  certFwid?: Buffer;
  chainOk: boolean;
  signatureOk: boolean;
  fwidOk: boolean;
  /** The chain verdict came from the addon's cache of verified device chains (windows re-checked at atSeconds). */
  chainCached: boolean;
  checks: Check[];
}

export interface GpuDeviceInput {
  evidence: Buffer;
  chain: Buffer;
  anchors: Buffer[];
  atSeconds: number;
}

export interface OcspInput {
  response: Buffer;
  cert: Buffer;
  issuer: Buffer;
  anchors: Buffer[];
  untrusted?: Buffer[];
  atSeconds: number;
  skewSeconds?: number;
}

export interface OcspResult {
  status: 'good' | 'revoked' | 'unknown';
  revocationReason?: number;
  thisUpdate: Date;
  nextUpdate: Date;
  producedAt: Date;
  revokedAt?: Date;
}

interface GpuBinding {
  parseSpdm(evidence: Buffer): SpdmEvidence;
  checkSpdm(evidence: Buffer): number;
  verifyGpu(input: GpuDeviceInput): Promise<GpuDeviceResult>;
  verifyOcsp(input: OcspInput): Promise<OcspResult>;
  buildOcspRequest(cert: Buffer, issuer: Buffer): Buffer;
}

const gpu = (): GpuBinding => loadBinding() as unknown as GpuBinding;

/** parseSpdm parses request ‖ response (throws GPU_ERR_SPDM). */
export function parseSpdm(evidence: Buffer): SpdmEvidence {
  return syncCall(() => gpu().parseSpdm(evidence));
}

/** checkSpdm parses request ‖ response like parseSpdm but returns only the number of measurement blocks (throws GPU_ERR_SPDM). */
export function checkSpdm(evidence: Buffer): number {
  return syncCall(() => gpu().checkSpdm(evidence));
}

/**
 * verifyGpu runs the device checks off the event loop; malformed input rejects, failed checks are
 * verdicts. A device chain that verified is cached by the addon (keyed by SHA-256 of the anchors
 * and the chain bytes, bounded, cleared with clearChainCache) and reused only while atSeconds is
 * inside every certificate's validity window; a chain that fails is never cached.
 */
export function verifyGpu(input: GpuDeviceInput): Promise<GpuDeviceResult> {
  return laterCall(() => gpu().verifyGpu(input));
}

/** verifyOcsp verifies one OCSP response for cert/issuer at a time (rejects with GPU_ERR_OCSP). */
export function verifyOcsp(input: OcspInput): Promise<OcspResult> {
  return laterCall(() => gpu().verifyOcsp(input));
}

/** buildOcspRequest encodes a nonce-less OCSPRequest (SHA-1 CertID) for cert/issuer, so answers can be cached. */
export function buildOcspRequest(cert: Buffer, issuer: Buffer): Buffer {
  return syncCall(() => gpu().buildOcspRequest(cert, issuer));
}
