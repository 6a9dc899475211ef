/**
 * The key-wrapping surface of the native addon (native/core/wrap.h): the VM's RSAPublicKey DER read
 * with OpenSSL's plain DER codec and proved canonical by re-encoding, RSA-OAEP (SHA-256,
 * MGF1-SHA-256, empty label) with the low-level RSA call, AES-256-GCM with a cipher fetched once.
 * Synchronous: one RSA public operation costs less than a thread-pool hop. src/kbm owns the
 * protocol meaning and the errors; this file only moves bytes.
 */
import { loadBinding, syncCall } from './index';

/** WRAP_NATIVE_CODES documents the addon's key-wrapping error code (SNP_ERR_ARGUMENT/INTERNAL may occur too). */
export const WRAP_NATIVE_CODES = {
  KBM_ERR_WRAPPING_KEY:
    "The VM's key is not a canonical DER RSAPublicKey of 2048..16384 bits with an odd exponent >= 3, or the key material is too long for RSA-OAEP under it.",
} as const;

interface WrapBinding {
  rsaPkcs1Bits(der: Uint8Array): number;
  oaepWrapPkcs1(der: Uint8Array, material: Uint8Array): Buffer;
  wrapAesGcmPkcs1(der: Uint8Array, secret: Uint8Array): Buffer;
}

const bind = (): WrapBinding => loadBinding() as unknown as WrapBinding;

/**
 * rsaPkcs1Bits is the modulus size in bits when `der` is exactly one canonical DER RSAPublicKey
 * (the bytes OpenSSL re-encodes it to, positive modulus and exponent), else 0. Never throws on
 * the bytes themselves.
 */
export function rsaPkcs1Bits(der: Uint8Array): number {
  return syncCall(() => bind().rsaPkcs1Bits(der));
}

/** oaepWrapPkcs1 is RSA-OAEP SHA-256 of `material` under the RSAPublicKey `der` (throws KBM_ERR_WRAPPING_KEY). */
export function oaepWrapPkcs1(der: Uint8Array, material: Uint8Array): Buffer {
  return syncCall(() => bind().oaepWrapPkcs1(der, material));
}

/** AesGcmWrapped is the AES-GCM reply form in bytes. */
export interface AesGcmWrapped {
  /** The AES-256 key under RSA-OAEP (modulus size). */
  wrappedKey: Buffer;
  /** AES-256-GCM ciphertext of the secret (same length). */
  blob: Buffer;
  iv: Buffer;
  tag: Buffer;
}

/**
 * wrapAesGcmPkcs1 encrypts `secret` under a fresh AES-256-GCM key and that key under the
 * RSAPublicKey `der` (throws KBM_ERR_WRAPPING_KEY). The AES key never leaves the addon.
 */
export function wrapAesGcmPkcs1(der: Uint8Array, secret: Uint8Array): AesGcmWrapped {
  const out = syncCall(() => bind().wrapAesGcmPkcs1(der, secret));
  const k = out.length - secret.length - 28;
  return {
    wrappedKey: out.subarray(0, k),
    blob: out.subarray(k, k + secret.length),
    iv: out.subarray(k + secret.length, k + secret.length + 12),
    tag: out.subarray(k + secret.length + 12),
  };
}
