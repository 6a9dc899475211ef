/**
 * tas_kbm_mock: secrets from a YAML or JSON map file, for development and tests.
 *
 *   # kbm-mock.yaml (TAS_KBM_CONFIG_FILE)
 *   form: aes-gcm            # or aes-kwp (RFC 5649 form); default aes-gcm
 *   delay_ms: 0              # answer each release this much later (a slow key backend; tests, demos)
 *   secrets:
 *     my-key-1: { value_utf8: "correct horse battery staple" }
 *     my-key-2: { value_hex: "00112233..." }
 *     my-key-3: { value_base64: "AAECAw==" }
 *
 * Always strict (unlike the original mock, which answered unknown key ids with a random secret):
 * an unknown key id is `not_found`, a missing or malformed file stops startup.
 */
import { readFileSync } from 'node:fs';
import { parsePluginDocument } from '../../src/config/plugin-doc';
import { checkKeyId, KBM_API_VERSION, KbmError, type KbmDeps, type KbmPlugin, type KeyBroker, type KbmManifest } from '../../src/kbm/types';
import { checkWrappingKey, wrapAesGcm, wrapKwp, type WrappingKey } from '../../src/kbm/wrap';
import type { SecretKeyReply } from '../../src/attest/types';

/** MockForm is the reply form the mock answers in. */
export type MockForm = 'aes-gcm' | 'aes-kwp';

/** MAX_SECRET_SIZE bounds one secret (replies must fit the agent's expectations and our logs). */
const MAX_SECRET_SIZE = 64 * 1024;

const manifest: KbmManifest = Object.freeze({
  name: 'tas_kbm_mock',
  apiVersion: KBM_API_VERSION,
  description: 'Secrets from a YAML/JSON map file (development and tests); unknown key ids are not found.',
});

/** MockConfig is the parsed configuration. */
export interface MockConfig {
  form: MockForm;
  secrets: Map<string, Buffer>;
  /** Delay of every release (ms): a slow key backend for tests and demos. */
  delayMs: number;
}

/** MAX_DELAY_MS bounds delay_ms (beyond the daemon's key-backend timeout it would only be 503s). */
const MAX_DELAY_MS = 120_000;

function configError(file: string, msg: string): KbmError {
  return new KbmError('config', `tas_kbm_mock config ${file}: ${msg}`);
}

const TOP_MEMBERS = new Set(['form', 'secrets', 'delay_ms']);

/** parseMockConfig reads and validates the config document (exported for tests). */
export function parseMockConfig(text: string, file: string): MockConfig {
  const top = parsePluginDocument(text, file, TOP_MEMBERS, (m) => configError(file, m), { jsonByExtension: true }).doc;
  const delayMs = top.delay_ms ?? 0;
  if (typeof delayMs !== 'number' || !Number.isInteger(delayMs) || delayMs < 0 || delayMs > MAX_DELAY_MS) {
    throw configError(file, `delay_ms must be an integer 0..${MAX_DELAY_MS}`);
  }
  const form = top.form ?? 'aes-gcm';
  if (form !== 'aes-gcm' && form !== 'aes-kwp') throw configError(file, `form must be aes-gcm or aes-kwp, got ${JSON.stringify(form)}`);
  const raw = top.secrets;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw configError(file, "'secrets' must be a mapping of key id to {value_utf8|value_hex|value_base64}");
  const secrets = new Map<string, Buffer>();
  for (const [id, entry] of Object.entries(raw as Record<string, unknown>)) {
    try {
      checkKeyId(id);
    } catch {
      throw configError(file, `key id ${JSON.stringify(id.slice(0, 40))} is empty, too long or has control characters`);
    }
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw configError(file, `secrets.${id} must be a mapping`);
    const members = Object.keys(entry);
    if (members.length !== 1) throw configError(file, `secrets.${id} must have exactly one of value_utf8, value_hex, value_base64`);
    const kind = members[0]!;
    const value = (entry as Record<string, unknown>)[kind];
    if (typeof value !== 'string') throw configError(file, `secrets.${id}.${kind} must be a string`);
    let bytes: Buffer;
    if (kind === 'value_utf8') bytes = Buffer.from(value, 'utf8');
    else if (kind === 'value_hex') {
      if (!/^(?:[0-9a-fA-F]{2})*$/.test(value)) throw configError(file, `secrets.${id}.value_hex is not an even number of hex digits`);
      bytes = Buffer.from(value, 'hex');
    } else if (kind === 'value_base64') {
      const t = value.replace(/\s+/g, '');
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(t) || t.length % 4 !== 0) throw configError(file, `secrets.${id}.value_base64 is not standard base64`);
      bytes = Buffer.from(t, 'base64');
    } else throw configError(file, `secrets.${id}: unknown member '${kind}' (use value_utf8, value_hex or value_base64)`);
    if (bytes.length === 0) throw configError(file, `secrets.${id} is empty`);
    if (bytes.length > MAX_SECRET_SIZE) throw configError(file, `secrets.${id} is larger than ${MAX_SECRET_SIZE} bytes`);
    secrets.set(id, bytes);
  }
  if (secrets.size === 0) throw configError(file, "'secrets' is empty");
  return { form, secrets, delayMs };
}

/** MockBroker serves the secrets of one config. */
export class MockBroker implements KeyBroker {
  readonly manifest = manifest;
  readonly #secrets: Map<string, Buffer>;
  readonly #form: MockForm;
  readonly #delayMs: number;
  #closed = false;

  constructor(cfg: MockConfig) {
    this.#secrets = cfg.secrets;
    this.#form = cfg.form;
    this.#delayMs = cfg.delayMs ?? 0;
  }

  /** form is the reply form of this broker. */
  get form(): MockForm {
    return this.#form;
  }

  async getSecret(keyId: string, wrappingKey: WrappingKey): Promise<SecretKeyReply> {
    if (this.#closed) throw new KbmError('unavailable', 'tas_kbm_mock is closed');
    if (this.#delayMs > 0) await new Promise((r) => setTimeout(r, this.#delayMs));
    if (this.#closed) throw new KbmError('unavailable', 'tas_kbm_mock is closed');
    checkKeyId(keyId);
    checkWrappingKey(wrappingKey);
    const secret = this.#secrets.get(keyId);
    if (secret === undefined) throw new KbmError('not_found', 'no such key id in the mock secrets file');
    return this.#form === 'aes-kwp' ? wrapKwp(secret, wrappingKey) : wrapAesGcm(secret, wrappingKey);
  }

  async health(): Promise<{ ok: boolean; detail?: string }> {
    return this.#closed ? { ok: false, detail: 'closed' } : { ok: true };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Zero the secrets so they do not linger in the heap after shutdown.
    for (const b of this.#secrets.values()) b.fill(0);
    this.#secrets.clear();
  }
}

/** plugin is the KbmPlugin of tas_kbm_mock. */
export const plugin: KbmPlugin = {
  manifest,
  async open(configFile: string | undefined, deps: KbmDeps): Promise<KeyBroker> {
    const cfg = readMockConfig(configFile);
    deps.log.info({ plugin: manifest.name, keys: cfg.secrets.size, form: cfg.form }, 'mock key broker loaded');
    return new MockBroker(cfg);
  },
  check(configFile: string | undefined): void {
    const cfg = readMockConfig(configFile);
    for (const b of cfg.secrets.values()) b.fill(0);
  },
};

/** readMockConfig reads and parses TAS_KBM_CONFIG_FILE (open and check). */
function readMockConfig(configFile: string | undefined): MockConfig {
  if (configFile === undefined || configFile === '') {
    throw new KbmError('config', 'tas_kbm_mock needs TAS_KBM_CONFIG_FILE (a YAML/JSON map of key ids to secrets); it never invents secrets');
  }
  let text: string;
  try {
    text = readFileSync(configFile, 'utf8');
  } catch (e) {
    throw configError(configFile, `cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parseMockConfig(text, configFile);
}

export default plugin;
