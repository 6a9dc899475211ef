/**
 * KmipBroker: the KeyBroker over a KMIP server. A key id is a KMIP Name; it must resolve to
 * exactly one Active SymmetricKey or SecretData object (configurable), otherwise nothing is
 * released. The key material arrives in clear over mutual TLS (PyKMIP, like many servers, can
 * only wrap server-side with AES), is wrapped by tas for the client's RSA key with the shared
 * AES-256-GCM + RSA-OAEP-SHA256 helper, and is zeroed right after.
 */
import type { Logger } from 'pino';
import { KbmError, checkKeyId, type KbmHealth, type KbmManifest, type KeyBroker, type SecretKeyReply } from '../../src/kbm/types';
import { checkWrappingKey, wrapAesGcm, type WrappingKey } from '../../src/kbm/wrap';
import { KmipClient, KmipClientError } from './client';
import { loadKmipConfig, KmipConfigError, type KmipConfig } from './config';
import { versionString } from './messages';
import { ResultReason } from './tags';

/** KmipBrokerHooks lets tests observe what the broker does with secrets. */
export interface KmipBrokerHooks {
  /** afterWrap receives the exact buffer that held the key material, after it was zeroed. */
  afterWrap?: (material: Buffer) => void;
}

/** toKbmError maps client failures to the KBM error kinds (PROTOCOL.md §4). */
export function toKbmError(e: unknown, keyId: string): KbmError {
  if (e instanceof KbmError) return e;
  if (e instanceof KmipClientError) {
    switch (e.kind) {
      case 'auth_failed':
        return new KbmError('auth_failed', e.message, { cause: e });
      case 'unavailable':
        return new KbmError('unavailable', e.message, { cause: e });
      case 'protocol':
        return new KbmError('unavailable', `KMIP protocol error: ${e.message}`, { cause: e });
      case 'operation':
        if (e.resultReason === ResultReason.ItemNotFound) return new KbmError('not_found', `KMIP: no object for ${JSON.stringify(keyId)}: ${e.message}`, { cause: e });
        // Permission denied on one object: the server accepted our credentials and refused this key.
        // A per-request refusal (`denied`), never `auth_failed`, which latches the whole broker: one
        // key's access list must not stop every release of every key until a restart.
        if (e.resultReason === ResultReason.PermissionDenied) return new KbmError('denied', `KMIP server denied access to ${JSON.stringify(keyId)}: ${e.message}`, { cause: e });
        return new KbmError('unavailable', `KMIP server: ${e.message}`, { cause: e });
    }
  }
  return new KbmError('unavailable', `KMIP: ${(e as Error)?.message ?? String(e)}`, { cause: e });
}

/** KmipBroker implements KeyBroker. */
export class KmipBroker implements KeyBroker {
  readonly client: KmipClient;
  private closed = false;

  constructor(
    readonly manifest: KbmManifest,
    readonly config: KmipConfig,
    private readonly log: Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>,
    private readonly hooks: KmipBrokerHooks = {},
  ) {
    this.client = new KmipClient({ ...config, log });
  }

  async getSecret(keyId: string, wrappingKey: WrappingKey): Promise<SecretKeyReply> {
    if (this.closed) throw new KbmError('unavailable', 'broker is closed');
    checkKeyId(keyId);
    // Check the wrapping key before asking the server: a bad key must not cost a key release.
    checkWrappingKey(wrappingKey);
    let ids: string[];
    try {
      ids = await this.client.locate(keyId, this.config.objectTypes);
    } catch (e) {
      throw toKbmError(e, keyId);
    }
    if (ids.length === 0) throw new KbmError('not_found', `KMIP: no Active object named ${JSON.stringify(keyId)}`);
    if (ids.length > 1) {
      // Names are not unique on every server (PyKMIP): releasing "one of them" could hand out the
      // wrong key, so fail closed until an operator removes the duplicate.
      this.log.error({ keyId, uids: ids }, 'KMIP duplicate names: several Active objects carry this name; refusing to release any');
      throw new KbmError('config', `KMIP duplicate names: ${ids.length} Active objects are named ${JSON.stringify(keyId)} (uids ${ids.join(', ')})`);
    }
    let material: Buffer | undefined;
    try {
      const obj = await this.client.getVerified(ids[0]!, keyId, this.config.objectTypes);
      material = obj.material;
      return wrapAesGcm(material, wrappingKey);
    } catch (e) {
      throw toKbmError(e, keyId);
    } finally {
      if (material) {
        material.fill(0);
        this.hooks.afterWrap?.(material);
      }
    }
  }

  async health(): Promise<KbmHealth> {
    if (this.closed) return { ok: false, detail: 'KMIP broker is closed' };
    const auth = this.client.authFailed;
    if (auth) return { ok: false, authFailed: true, detail: auth };
    try {
      await this.client.discoverVersions();
      return { ok: true, detail: `KMIP ${versionString(this.client.version!)} at ${this.config.host}:${this.config.port}` };
    } catch (e) {
      const k = toKbmError(e, '');
      return k.kind === 'auth_failed' ? { ok: false, authFailed: true, detail: k.message } : { ok: false, detail: k.message };
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.client.close();
  }
}

/** openKmipBroker reads the config file and builds the broker (connecting lazily). */
export function openKmipBroker(manifest: KbmManifest, configFile: string | undefined, log: Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>, hooks?: KmipBrokerHooks): KmipBroker {
  let config: KmipConfig;
  try {
    config = loadKmipConfig(configFile);
  } catch (e) {
    if (e instanceof KmipConfigError) throw new KbmError('config', e.message, { cause: e });
    throw e;
  }
  return new KmipBroker(manifest, config, log, hooks);
}
