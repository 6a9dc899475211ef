/**
 * Certificate signer plugins (PROTOCOL.md §2.2), loaded like the key brokers (PROTOCOL.md §4):
 * found by name prefix (TAS_CERT_PLUGIN_PREFIX, default `tas_cert`) in the shipped plugins/
 * directory and TAS_EXTRA_PLUGIN_DIR, only the one named by TAS_CERT_PLUGIN is loaded, its
 * manifest is checked, and it is self-tested before the daemon is ready: the CA material must be a
 * valid CA chain, the suite must fit the CA key, and a probe TBS signed by the plugin must verify
 * under the CA certificate's key. The CA private key never passes through this module: a plugin
 * gets TBS bytes and returns a signature.
 *
 * A refused credential (wrong PIN) latches, as for key brokers: the service stays not-ready with
 * the reason and never calls the token again until restart (HSMs lock tokens after a few tries).
 */
import { createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import type { Logger } from 'pino';
import type { Config } from '../config';
import type { AppContext } from '../daemon/context';
import { TasError } from '../errors';
import { checkPluginPermissions, discoverPlugins, pluginDirs, SHIPPED_PLUGIN_DIR } from '../kbm';
import { OID, suiteFitsKey, verifyWithSuite, SIGNATURE_SUITES, type SignatureSuite } from './alg';
import { pem } from './der';
import { buildTbs, keyIdentifier, name, newSerial, viewCertificate } from './profile';

/** CERT_API_VERSION is the version of the signer interface; bump it on incompatible changes. */
export const CERT_API_VERSION = 1;

export interface CertSignerManifest {
  /** Equal to the plugin's directory name, e.g. `tas_cert_local`. */
  readonly name: string;
  readonly apiVersion: number;
  readonly description?: string;
}

/** CaMaterial is the public side of the issuing CA a signer holds the key of. */
export interface CaMaterial {
  /** The issuing CA certificate (DER). */
  readonly caCert: Buffer;
  /** The certificates above it, up to and including the root (DER, issuer order). */
  readonly chain: readonly Buffer[];
  readonly suite: SignatureSuite;
}

export interface SignerHealth {
  readonly ok: boolean;
  readonly detail?: string;
  readonly authFailed?: boolean;
}

/** CertSigner is one opened signer. sign may be called concurrently. */
export interface CertSigner {
  readonly manifest: CertSignerManifest;
  ca(): CaMaterial;
  /** sign returns the signatureValue for tbs under the CA key (DER ECDSA-Sig-Value or raw RSA-PSS). */
  sign(tbs: Buffer): Promise<Buffer>;
  health(): Promise<SignerHealth>;
  close(): Promise<void>;
  /** describe names non-secret facts for status and `tas cert ca show` (key location, attributes). */
  describe?(): Promise<Record<string, unknown>>;
}

/** ProvisionRequest is what `tas cert ca init` asks a plugin to do: make the issuing CA key. */
export interface ProvisionRequest {
  readonly keyType: 'EC' | 'RSA';
  readonly keySize?: number;
  /**
   * certify receives the new key's SubjectPublicKeyInfo (DER) and returns the issuing CA
   * certificate signed by the (offline) root plus the chain above it, which the plugin stores.
   */
  certify(spki: Buffer, suite: SignatureSuite): Promise<{ caCert: Buffer; chain: Buffer[] }>;
}

export interface CertSignerDeps {
  readonly log: Logger;
}

/** CertSignerPlugin is a plugin module's default (or `plugin`) export. */
export interface CertSignerPlugin {
  readonly manifest: CertSignerManifest;
  /** open reads the plugin's config (TAS_CERT_CONFIG_FILE); config problems throw CertSignerError('config'). */
  open(configFile: string | undefined, deps: CertSignerDeps): Promise<CertSigner>;
  /** provision creates the issuing CA key where the config says (refusing to overwrite one). */
  provision?(configFile: string | undefined, deps: CertSignerDeps, req: ProvisionRequest): Promise<Record<string, unknown>>;
}

export type CertSignerErrorKind = 'config' | 'auth_failed' | 'unavailable';

/** CertSignerError is what signers throw; the message goes to the log only. */
export class CertSignerError extends Error {
  readonly kind: CertSignerErrorKind;
  constructor(kind: CertSignerErrorKind, message: string, opts: { cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'CertSignerError';
    this.kind = kind;
  }
}

export function isCertSignerError(e: unknown): e is CertSignerError {
  return e instanceof CertSignerError || (e instanceof Error && e.name === 'CertSignerError' && typeof (e as { kind?: unknown }).kind === 'string');
}

function isPlugin(x: unknown): x is CertSignerPlugin {
  if (typeof x !== 'object' || x === null) return false;
  const p = x as { manifest?: unknown; open?: unknown };
  return typeof p.open === 'function' && typeof p.manifest === 'object' && p.manifest !== null;
}

/** findSignerPlugin discovers, loads and checks the configured plugin (CertSignerError('config') otherwise). */
export function findSignerPlugin(cfg: Config, nameOverride?: string): CertSignerPlugin {
  const prefix = cfg.get<string>('cert.prefix');
  const want = nameOverride ?? cfg.get<string>('cert.plugin');
  if (!want.startsWith(prefix)) throw new CertSignerError('config', `TAS_CERT_PLUGIN '${want}' does not start with TAS_CERT_PLUGIN_PREFIX '${prefix}'`);
  const dirs = pluginDirs(cfg);
  const hits = discoverPlugins(prefix, dirs).filter((c) => c.name === want);
  if (hits.length !== 1) {
    throw new CertSignerError('config', hits.length ? `certificate signer plugin '${want}' exists more than once: ${hits.map((h) => h.entry).join(', ')}` : `certificate signer plugin '${want}' not found in ${dirs.join(', ')}`);
  }
  const c = hits[0]!;
  if (c.dir !== SHIPPED_PLUGIN_DIR) checkPluginPermissions(c);
  let mod: unknown;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    mod = require(c.entry);
  } catch (e) {
    throw new CertSignerError('config', `plugin ${want} (${c.entry}) failed to load: ${(e as Error).message}`, { cause: e });
  }
  const m = mod as { default?: unknown; plugin?: unknown };
  const p = [m?.default, m?.plugin, mod].find(isPlugin);
  if (!p) throw new CertSignerError('config', `plugin ${want} (${c.entry}) exports no certificate signer (manifest + open)`);
  if (p.manifest.name !== want) throw new CertSignerError('config', `plugin ${want} declares the name '${p.manifest.name}'`);
  if (p.manifest.apiVersion !== CERT_API_VERSION) throw new CertSignerError('config', `plugin ${want} implements signer API ${p.manifest.apiVersion}, tas needs ${CERT_API_VERSION}`);
  return p;
}

/** ActiveCa is the checked CA material issuance uses. */
export interface ActiveCa {
  readonly caCert: X509Certificate;
  readonly caDer: Buffer;
  readonly caKey: KeyObject;
  readonly chainPem: readonly string[];
  readonly bundle: string;
  readonly issuerName: Buffer;
  readonly issuerKeyId: Buffer;
  readonly suite: SignatureSuite;
}

/**
 * checkCaMaterial validates a signer's CA material: every certificate a CA with keyCertSign,
 * currently valid, each issued by the next, the last self-signed, and the suite fits the CA key.
 */
export function checkCaMaterial(m: CaMaterial, at: Date = new Date()): ActiveCa {
  if (!SIGNATURE_SUITES.includes(m.suite)) throw new CertSignerError('config', `unknown signature suite ${String(m.suite)}`);
  const ders = [m.caCert, ...m.chain];
  if (m.chain.length === 0) throw new CertSignerError('config', 'the CA chain must end in the root certificate (chain is empty)');
  const certs = ders.map((d, i) => {
    try {
      return new X509Certificate(d);
    } catch (e) {
      throw new CertSignerError('config', `CA chain certificate ${i} does not parse: ${(e as Error).message}`);
    }
  });
  certs.forEach((c, i) => {
    if (!c.ca) throw new CertSignerError('config', `CA chain certificate ${i} (${c.subject.replace(/\n/g, ', ')}) is not a CA (basicConstraints CA:false)`);
    const ku = viewCertificate(ders[i]!).extensions.get(OID.keyUsage);
    if (!ku || ku.value.length < 4 || !(ku.value[3]! & 0x04)) throw new CertSignerError('config', `CA chain certificate ${i} lacks keyUsage keyCertSign`);
    if (new Date(c.validFrom) > at || new Date(c.validTo) < at) throw new CertSignerError('config', `CA chain certificate ${i} is not valid now (${c.validFrom} .. ${c.validTo})`);
    const issuer = certs[i + 1] ?? c;
    if (!c.checkIssued(issuer) || !c.verify(issuer.publicKey)) {
      throw new CertSignerError('config', i + 1 < certs.length ? `CA chain certificate ${i} is not signed by certificate ${i + 1}` : 'the last chain certificate is not a self-signed root');
    }
  });
  const caKey = certs[0]!.publicKey;
  if (!suiteFitsKey(m.suite, caKey)) throw new CertSignerError('config', `signature suite ${m.suite} does not fit the CA key (${caKey.asymmetricKeyType} ${JSON.stringify(caKey.asymmetricKeyDetails)})`);
  const view = viewCertificate(m.caCert);
  const ski = view.extensions.get(OID.subjectKeyIdentifier);
  const issuerKeyId = ski ? Buffer.from(ski.value.subarray(2)) : keyIdentifier(view.spki);
  const chainPem = ders.map((d) => pem('CERTIFICATE', d));
  return {
    caCert: certs[0]!, caDer: m.caCert, caKey, chainPem, bundle: chainPem.join(''), issuerName: view.subject, issuerKeyId, suite: m.suite,
  };
}

/** SIGN_TIMEOUT_MS bounds one signature seen from a request (a hung token is a 503, not a stuck request). */
export const SIGN_TIMEOUT_MS = 30_000;

/** SignerService wraps the opened plugin: latched auth failures, timeouts, TasError mapping. */
export class SignerService {
  #authFailure: string | undefined;
  #ca: ActiveCa | undefined;
  #notReady: string | undefined;
  constructor(
    readonly signer: CertSigner,
    private readonly log: Logger,
    private readonly timeoutMs = SIGN_TIMEOUT_MS,
  ) {}

  /** start checks the CA material and signs a probe; failures leave the service not-ready (with the reason). */
  async start(): Promise<void> {
    try {
      const ca = checkCaMaterial(this.signer.ca());
      const tbs = buildTbs({
        serial: newSerial(), suite: ca.suite, issuer: ca.issuerName, notBefore: new Date(), notAfter: new Date(Date.now() + 60_000),
        subject: name([['2.5.4.3', 'tas signer self-test']]), spki: ca.caKey.export({ type: 'spki', format: 'der' }), extensions: [],
      });
      const sig = await this.#bounded(this.signer.sign(tbs));
      if (!verifyWithSuite(ca.suite, ca.caKey, tbs, sig)) throw new CertSignerError('config', `self-test: the plugin's ${ca.suite} signature does not verify under the CA certificate's key (wrong key for this certificate?)`);
      this.#ca = ca;
      this.#notReady = undefined;
    } catch (e) {
      this.#note(e);
      this.#notReady = e instanceof Error ? e.message : String(e);
      if (isCertSignerError(e) && e.kind === 'config' && this.#authFailure === undefined) throw e;
    }
  }

  /** ca is the active CA; throws CERT_SIGNER_UNAVAILABLE while not ready. */
  ca(): ActiveCa {
    if (!this.#ca) throw new TasError('CERT_SIGNER_UNAVAILABLE', `certificate signer not ready: ${this.#authFailure ?? this.#notReady ?? 'not started'}`, { reason: 'CERT_SIGNER_NOT_READY' });
    return this.#ca;
  }

  async #bounded<T>(p: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([p, new Promise<never>((_, rej) => { timer = setTimeout(() => rej(new CertSignerError('unavailable', `no signature within ${this.timeoutMs} ms`)), this.timeoutMs); })]);
    } finally {
      clearTimeout(timer);
    }
  }

  #note(e: unknown): void {
    if (isCertSignerError(e) && e.kind === 'auth_failed' && this.#authFailure === undefined) {
      this.#authFailure = e.message;
      this.log.error({ signer: this.signer.manifest.name, detail: e.message }, 'certificate signer refused our credentials: certify not ready until restart (never retried)');
    }
  }

  /** sign signs tbs; errors become CERT_SIGNER_UNAVAILABLE (503, the nonce is handed back). */
  async sign(tbs: Buffer): Promise<Buffer> {
    const ca = this.ca();
    if (this.#authFailure !== undefined) throw new TasError('CERT_SIGNER_UNAVAILABLE', `not retried after an authentication failure: ${this.#authFailure}`, { reason: 'CERT_SIGNER_AUTH_FAILED' });
    try {
      const sig = await this.#bounded(this.signer.sign(tbs));
      // Every signature is checked before it leaves: a faulty token must not issue garbage.
      if (!verifyWithSuite(ca.suite, ca.caKey, tbs, sig)) throw new CertSignerError('unavailable', 'the signer returned a signature that does not verify under the CA key');
      return sig;
    } catch (e) {
      this.#note(e);
      const auth = isCertSignerError(e) && e.kind === 'auth_failed';
      this.log.warn({ signer: this.signer.manifest.name, detail: (e as Error).message }, 'certificate signing failed');
      throw new TasError('CERT_SIGNER_UNAVAILABLE', `certificate signer: ${(e as Error).message}`, { reason: auth ? 'CERT_SIGNER_AUTH_FAILED' : 'CERT_SIGNER_FAILED', cause: e });
    }
  }

  /** readiness is the `cert_signer` check. */
  async readiness(): Promise<string | undefined> {
    if (this.#authFailure !== undefined) return `authentication failed (not retried; fix the credentials and restart): ${this.#authFailure}`;
    if (!this.#ca) {
      // A token that was absent at start may be back: the self-test is the readiness probe.
      await this.start().catch(() => undefined);
      if (!this.#ca) return this.#authFailure ?? this.#notReady ?? 'not started';
    }
    let h: SignerHealth;
    try {
      h = await this.#bounded(this.signer.health());
    } catch (e) {
      h = { ok: false, detail: (e as Error).message, authFailed: isCertSignerError(e) && e.kind === 'auth_failed' };
    }
    if (h.authFailed) this.#note(new CertSignerError('auth_failed', h.detail ?? 'authentication failed'));
    if (h.ok) return undefined;
    return h.authFailed ? `authentication failed (not retried; fix the credentials and restart): ${h.detail ?? ''}` : (h.detail ?? 'unavailable');
  }

  async close(): Promise<void> {
    await this.signer.close();
  }
}

/** failedSigner stands in for a plugin whose credentials were refused at open. */
function failedSigner(manifest: CertSignerManifest, reason: string): CertSigner {
  return {
    manifest,
    ca: () => { throw new CertSignerError('auth_failed', reason); },
    sign: async () => { throw new CertSignerError('auth_failed', reason); },
    health: async () => ({ ok: false, authFailed: true, detail: reason }),
    close: async () => undefined,
  };
}

/**
 * openCertSigner loads and opens the configured plugin, self-tests it and registers the
 * `cert_signer` readiness check and close hook. Configuration problems stop startup; a refused
 * credential leaves certify not-ready with the reason.
 */
export async function openCertSigner(cfg: Config, ctx: Pick<AppContext, 'log' | 'readiness' | 'lifecycle'>): Promise<SignerService> {
  const plugin = findSignerPlugin(cfg);
  const log = ctx.log.child({ cert_signer: plugin.manifest.name });
  let signer: CertSigner;
  try {
    signer = await plugin.open(cfg.get<string | undefined>('cert.config_file'), { log });
  } catch (e) {
    if (!isCertSignerError(e) || e.kind !== 'auth_failed') throw e instanceof CertSignerError ? e : new CertSignerError('config', `plugin ${plugin.manifest.name} failed to open: ${(e as Error).message}`, { cause: e });
    signer = failedSigner(plugin.manifest, e.message);
  }
  const svc = new SignerService(signer, log);
  await svc.start();
  ctx.readiness.register('cert_signer', () => svc.readiness());
  ctx.lifecycle.onClose(() => svc.close());
  log.info({ plugin: plugin.manifest.name }, 'certificate signer plugin opened');
  return svc;
}

/** spkiOf re-encodes any public key input as SPKI DER. */
export function spkiOf(key: KeyObject | Buffer): Buffer {
  const k = Buffer.isBuffer(key) ? createPublicKey({ key, format: 'der', type: 'spki' }) : key;
  return k.export({ type: 'spki', format: 'der' });
}
