/**
 * The key broker module (KBM) interface (PROTOCOL.md §4): what every plugin under `plugins/`
 * implements and what src/attest calls to release a secret wrapped for the client's RSA key.
 *
 * A plugin module's default export (or its `plugin` export) is a KbmPlugin. Its manifest is
 * checked at load (name = directory name, apiVersion = KBM_API_VERSION): a mismatch stops startup,
 * the way fastify checks `plugin-meta` at registration, because a broker built against another
 * contract could answer in a form the agent cannot read.
 */
import type { Logger } from 'pino';
import type { SecretKeyReply } from '../attest/types';
import { TasError } from '../errors';
import type { WrappingKey } from './wrap';

export type { SecretKeyReply } from '../attest/types';
export type { WrappingKey } from './wrap';

/** KBM_API_VERSION is the version of this interface; bump it on any incompatible change. */
export const KBM_API_VERSION = 1;

/** KbmManifest identifies a plugin. */
export interface KbmManifest {
  /** Equal to the plugin's directory (or file) name, e.g. `tas_kbm_mock`. */
  readonly name: string;
  /** Must equal KBM_API_VERSION. */
  readonly apiVersion: number;
  readonly description?: string;
}

/** KbmHealth is the answer of KeyBroker.health(). */
export interface KbmHealth {
  readonly ok: boolean;
  /** Short reason for /readyz when not ok (never a secret, PIN or key). */
  readonly detail?: string;
  /**
   * The backend refused our credentials (wrong PIN, rejected certificate). The daemon stays
   * not-ready and never retries by itself: HSMs lock tokens after a few wrong PINs.
   */
  readonly authFailed?: boolean;
}

/** KeyBroker is one opened backend. Implementations must allow concurrent getSecret calls. */
export interface KeyBroker {
  readonly manifest: KbmManifest;
  /**
   * getSecret releases the secret named keyId wrapped for wrappingKey, in the AES-GCM form or the
   * AES-KWP form of PROTOCOL.md §2. Throws KbmError (any other error is treated as `unavailable`).
   * The secret never appears in clear outside the reply's encryption.
   */
  getSecret(keyId: string, wrappingKey: WrappingKey): Promise<SecretKeyReply>;
  /** health checks the backend cheaply (no secret is released). */
  health(): Promise<KbmHealth>;
  /** close releases sessions and connections; idempotent. getSecret after close throws `unavailable`. */
  close(): Promise<void>;
}

/**
 * KbmHelpers gives plugins outside this tree (TAS_EXTRA_PLUGIN_DIR, plain JavaScript) the same
 * error type and wrapping helpers the shipped plugins import, so they need no path into tas.
 */
export interface KbmHelpers {
  readonly KbmError: typeof KbmError;
  readonly checkKeyId: typeof checkKeyId;
  readonly checkWrappingKey: typeof import('./wrap').checkWrappingKey;
  readonly wrapAesGcm: typeof import('./wrap').wrapAesGcm;
  readonly wrapKwp: typeof import('./wrap').wrapKwp;
}

/** KbmDeps is what the daemon hands a plugin at open. */
export interface KbmDeps {
  readonly log: Logger;
  /** Always set by the loader (openKeyBroker); optional so tests may open plugins directly. */
  readonly helpers?: KbmHelpers;
}

/** KbmPlugin is the default (or `plugin`) export of a plugin module. */
export interface KbmPlugin {
  readonly manifest: KbmManifest;
  /**
   * open reads the plugin's own config file (TAS_KBM_CONFIG_FILE) and connects. Configuration
   * problems throw KbmError('config'); they stop startup.
   */
  open(configFile: string | undefined, deps: KbmDeps): Promise<KeyBroker>;
  /**
   * check reads and validates the plugin's config (and the files it names) without contacting the
   * backend: `tas config check` and the start of `tas serve` call it. Problems throw
   * KbmError('config') with the message open() would give.
   */
  check?(configFile: string | undefined, deps: KbmDeps): Promise<void> | void;
}

/**
 * KbmErrorKind classifies broker failures; each maps to one catalogue code. `auth_failed` is the
 * backend refusing our credentials (wrong PIN, rejected certificate): it latches the whole broker
 * (HSMs lock tokens). `denied` is the backend refusing one key to credentials it accepted (a KMIP
 * PermissionDenied, a PKCS#11 object we may not use): a refusal of that request only.
 */
export type KbmErrorKind = 'not_found' | 'unavailable' | 'bad_wrapping_key' | 'auth_failed' | 'denied' | 'config';

/** KbmError is what brokers throw. `message` goes to the log only, never to the client. */
export class KbmError extends Error {
  readonly kind: KbmErrorKind;
  /** Hint for Retry-After on `unavailable`. */
  readonly retryAfterSeconds: number | undefined;

  constructor(kind: KbmErrorKind, message: string, opts: { retryAfterSeconds?: number; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'KbmError';
    this.kind = kind;
    this.retryAfterSeconds = opts.retryAfterSeconds;
  }
}

/** isKbmError narrows unknown values (also across module copies, by name and kind). */
export function isKbmError(e: unknown): e is KbmError {
  if (e instanceof KbmError) return true;
  return e instanceof Error && e.name === 'KbmError' && typeof (e as { kind?: unknown }).kind === 'string';
}

const KIND_TO_CODE = {
  not_found: 'KBM_SECRET_NOT_FOUND',
  unavailable: 'KBM_UNAVAILABLE',
  bad_wrapping_key: 'KBM_WRAPPING_KEY_INVALID',
  auth_failed: 'KBM_AUTH_FAILED',
  denied: 'KBM_KEY_DENIED',
  config: 'KBM_UNAVAILABLE',
} as const satisfies Record<KbmErrorKind, string>;

/**
 * toTasError maps anything a broker threw to the catalogue. Unknown errors become KBM_UNAVAILABLE
 * (503, the nonce stays valid): a broker bug must not burn the client's nonce nor look like a 404.
 */
export function toTasError(e: unknown, keyId?: string): TasError {
  if (e instanceof TasError) return e;
  const where = keyId === undefined ? '' : ` (key id ${JSON.stringify(keyId)})`;
  if (isKbmError(e)) {
    const opts: { reason: string; cause: unknown; retryAfterSeconds?: number } = { reason: `KBM_${e.kind.toUpperCase()}`, cause: e };
    if (e.retryAfterSeconds !== undefined) opts.retryAfterSeconds = e.retryAfterSeconds;
    return new TasError(KIND_TO_CODE[e.kind], `key broker: ${e.message}${where}`, opts);
  }
  const msg = e instanceof Error ? e.message : String(e);
  return new TasError('KBM_UNAVAILABLE', `key broker failed unexpectedly: ${msg}${where}`, { reason: 'KBM_UNEXPECTED', cause: e });
}

/** MAX_KEY_ID_LENGTH bounds key ids handed to backends. */
export const MAX_KEY_ID_LENGTH = 256;

/**
 * checkKeyId refuses key ids no backend could hold (empty, too long, control characters) as
 * `not_found`, so that odd input never reaches an HSM or KMIP server.
 */
export function checkKeyId(keyId: unknown): string {
  // eslint-disable-next-line no-control-regex
  if (typeof keyId !== 'string' || keyId.length === 0 || keyId.length > MAX_KEY_ID_LENGTH || /[\u0000-\u001f\u007f]/.test(keyId)) {
    throw new KbmError('not_found', 'key id is empty, longer than 256 characters or contains control characters');
  }
  return keyId;
}
