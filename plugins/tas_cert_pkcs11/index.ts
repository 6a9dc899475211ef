/**
 * tas_cert_pkcs11: the issuing CA key lives in a PKCS#11 token (HSM) and never leaves it. tas
 * hands TBS bytes over; the token signs with C_Sign:
 *
 * - EC P-384 (or P-256) keys: CKM_ECDSA over the SHA-384 (SHA-256) digest computed by tas; the raw
 *   r‖s the token returns is re-encoded as an ECDSA-Sig-Value;
 * - RSA keys (≥ 3072 bits): CKM_SHA256_RSA_PKCS_PSS, MGF1-SHA256, salt 32 — the token hashes.
 *
 * At open the key is looked up by CKA_LABEL and must be CKA_SENSITIVE and not CKA_EXTRACTABLE
 * (fail closed: an exportable CA key is refused), and CKA_SIGN. The daemon then self-tests the
 * pair: a probe signed in the token must verify under the CA certificate's key. A refused PIN is
 * an `auth_failed` error: certify stays not-ready with the reason and the token is never asked
 * again until restart (tokens lock after a few wrong PINs).
 *
 * Configuration (YAML, TAS_CERT_CONFIG_FILE):
 *
 *   module: /usr/lib/softhsm/libsofthsm2.so
 *   token_label: tas-ca          # or token_serial, or slot
 *   pin_file: /etc/tas/hsm-pin   # or pin_credential: hsm-pin ($CREDENTIALS_DIRECTORY/hsm-pin)
 *   key_label: tas-issuing-ca    # CKA_LABEL of the CA key pair
 *   ca_cert_file: /etc/tas/cert/ca.pem      # the issuing CA certificate
 *   chain_file: /etc/tas/cert/chain.pem     # the certificates above it, ending with the root
 *   pool_size: 2                 # sessions = concurrent signatures
 *
 * The PKCS#11 library is shared with tas_kbm_pkcs11 through its reference-counted loader
 * (C_Initialize once per library and process; the last user finalizes).
 */
import { createHash, createPublicKey } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import * as pkcs11js from 'pkcs11js';
import { parsePluginDocument } from '../../src/config/plugin-doc';
import {
  CERT_API_VERSION, CertSignerError, pem, suiteForKey, unpem, writeExclusive,
  type CaMaterial, type CertSigner, type CertSignerDeps, type CertSignerManifest, type CertSignerPlugin, type ProvisionRequest, type SignatureSuite,
} from '../../src/cert';
import { bits, int, oid, seq } from '../../src/cert/der';
import { OID } from '../../src/cert/alg';
import { readPin } from '../tas_kbm_pkcs11/config';
import { acquireModule, releaseModule } from '../tas_kbm_pkcs11/module';

type Handle = pkcs11js.Handle;

const manifest: CertSignerManifest = Object.freeze({
  name: 'tas_cert_pkcs11',
  apiVersion: CERT_API_VERSION,
  description: 'CA key inside a PKCS#11 token (non-extractable); signing with C_Sign (ECDSA P-384, RSA-PSS).',
});

/** Codes that mean our credentials are refused: never retried. */
const AUTH_REFUSED = new Set([
  pkcs11js.CKR_PIN_INCORRECT, pkcs11js.CKR_PIN_INVALID, pkcs11js.CKR_PIN_LEN_RANGE, pkcs11js.CKR_PIN_EXPIRED, pkcs11js.CKR_PIN_LOCKED, pkcs11js.CKR_USER_PIN_NOT_INITIALIZED,
]);
/** Codes after which a fresh session may succeed. */
const SESSION_LOST = new Set([
  pkcs11js.CKR_SESSION_HANDLE_INVALID, pkcs11js.CKR_SESSION_CLOSED, pkcs11js.CKR_USER_NOT_LOGGED_IN, pkcs11js.CKR_DEVICE_ERROR,
  pkcs11js.CKR_TOKEN_NOT_PRESENT, pkcs11js.CKR_DEVICE_REMOVED,
]);
/** Logged-in session states (PKCS#11 2.40 §5.7; not exported by pkcs11js). */
const USER_STATES = new Set([1, 3]);

function code(e: unknown): number | undefined {
  return e instanceof pkcs11js.Pkcs11Error ? e.code : undefined;
}

function describeError(e: unknown): string {
  if (e instanceof pkcs11js.Pkcs11Error) return `${e.method}: ${e.message}`;
  return e instanceof Error ? e.message : String(e);
}

export interface CertPkcs11Config {
  readonly module: string;
  readonly token: { label: string } | { serial: string } | { slot: number };
  readonly pinSource: { file: string } | { credential: string };
  readonly keyLabel: string;
  readonly caCertFile: string;
  readonly chainFile: string;
  readonly poolSize: number;
}

const MEMBERS = new Set(['module', 'token_label', 'token_serial', 'slot', 'pin_file', 'pin_credential', 'key_label', 'ca_cert_file', 'chain_file', 'pool_size']);

function fail(msg: string): CertSignerError {
  return new CertSignerError('config', `tas_cert_pkcs11: ${msg}`);
}

/** parseCertPkcs11Config validates the YAML document (the PIN itself never goes in it). */
export function parseCertPkcs11Config(text: string, file: string): CertPkcs11Config {
  const { doc: d, str, need } = parsePluginDocument(text, file, MEMBERS, (m) => fail(`${file}: ${m}`));
  const label = str('token_label');
  const serial = str('token_serial');
  const slot = d.slot;
  if ([label, serial, slot].filter((x) => x !== undefined).length !== 1) throw fail(`${file}: exactly one of token_label, token_serial or slot is required`);
  if (slot !== undefined && (typeof slot !== 'number' || !Number.isSafeInteger(slot) || slot < 0)) throw fail(`${file}: slot must be a non-negative integer`);
  const pinFile = str('pin_file');
  const pinCred = str('pin_credential');
  if ((pinFile === undefined) === (pinCred === undefined)) throw fail(`${file}: exactly one of pin_file or pin_credential is required`);
  const poolSize = d.pool_size ?? 2;
  if (typeof poolSize !== 'number' || !Number.isSafeInteger(poolSize) || poolSize < 1 || poolSize > 32) throw fail(`${file}: pool_size must be 1..32`);
  return {
    module: need('module'),
    token: label !== undefined ? { label } : serial !== undefined ? { serial } : { slot: slot as number },
    pinSource: pinFile !== undefined ? { file: pinFile } : { credential: pinCred! },
    keyLabel: need('key_label'),
    caCertFile: need('ca_cert_file'),
    chainFile: need('chain_file'),
    poolSize,
  };
}

function loadConfig(configFile: string | undefined): CertPkcs11Config {
  if (!configFile) throw fail('TAS_CERT_CONFIG_FILE is required');
  let text: string;
  try {
    text = readFileSync(configFile, 'utf8');
  } catch (e) {
    throw fail(`cannot read ${configFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parseCertPkcs11Config(text, configFile);
}

/** Token is one logged-in token of a loaded library. */
class Token {
  readonly p11: pkcs11js.PKCS11;
  readonly slot: Handle;
  readonly label: string;
  #released = false;

  private constructor(private readonly cfg: CertPkcs11Config, p11: pkcs11js.PKCS11, slot: Handle, label: string) {
    this.p11 = p11;
    this.slot = slot;
    this.label = label;
  }

  static open(cfg: CertPkcs11Config): Token {
    let p11: pkcs11js.PKCS11;
    try {
      p11 = acquireModule(cfg.module);
    } catch (e) {
      throw fail((e as Error).message);
    }
    try {
      const slots = p11.C_GetSlotList(true);
      let hit: { slot: Handle; label: string } | undefined;
      for (const s of slots) {
        const info = p11.C_GetTokenInfo(s);
        const label = info.label.trim();
        const t = cfg.token;
        const match = 'label' in t ? label === t.label : 'serial' in t ? info.serialNumber.trim() === t.serial : s.readUIntLE(0, Math.min(6, s.length)) === t.slot;
        if (match) {
          if (hit) throw fail(`more than one token matches ${JSON.stringify(t)}`);
          hit = { slot: s, label };
        }
      }
      if (!hit) throw new CertSignerError('unavailable', `tas_cert_pkcs11: no token matches ${JSON.stringify(cfg.token)}`);
      return new Token(cfg, p11, hit.slot, hit.label);
    } catch (e) {
      releaseModule(cfg.module);
      throw e;
    }
  }

  /** session opens a session and makes sure the user is logged in (once per token and process). */
  session(pin: string): Handle {
    const s = this.p11.C_OpenSession(this.slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    try {
      if (!USER_STATES.has(this.p11.C_GetSessionInfo(s).state)) {
        try {
          this.p11.C_Login(s, pkcs11js.CKU_USER, pin);
        } catch (e) {
          if (code(e) !== pkcs11js.CKR_USER_ALREADY_LOGGED_IN) throw e;
        }
      }
      return s;
    } catch (e) {
      try {
        this.p11.C_CloseSession(s);
      } catch {
        /* failing already */
      }
      if (AUTH_REFUSED.has(code(e) ?? -1)) throw new CertSignerError('auth_failed', `tas_cert_pkcs11: token '${this.label}' refused the PIN (${describeError(e)}); not retried`);
      throw new CertSignerError('unavailable', `tas_cert_pkcs11: cannot open a logged-in session: ${describeError(e)}`);
    }
  }

  find(s: Handle, cls: number, label: string): Handle[] {
    this.p11.C_FindObjectsInit(s, [{ type: pkcs11js.CKA_CLASS, value: cls }, { type: pkcs11js.CKA_LABEL, value: label }]);
    try {
      return this.p11.C_FindObjects(s, 2);
    } finally {
      this.p11.C_FindObjectsFinal(s);
    }
  }

  release(): void {
    if (this.#released) return;
    this.#released = true;
    releaseModule(this.cfg.module);
  }
}

/** Key facts read from the token (never the key value: the token refuses that). */
interface KeyFacts {
  keyType: 'EC' | 'RSA';
  extractable: boolean;
  sensitive: boolean;
  alwaysSensitive: boolean;
  neverExtractable: boolean;
}

function keyFacts(t: Token, s: Handle, h: Handle): KeyFacts {
  const a = t.p11.C_GetAttributeValue(s, h, [
    { type: pkcs11js.CKA_KEY_TYPE }, { type: pkcs11js.CKA_EXTRACTABLE }, { type: pkcs11js.CKA_SENSITIVE },
    { type: pkcs11js.CKA_ALWAYS_SENSITIVE }, { type: pkcs11js.CKA_NEVER_EXTRACTABLE }, { type: pkcs11js.CKA_SIGN },
  ]);
  const b = (i: number): boolean => Buffer.isBuffer(a[i]!.value) && (a[i]!.value as Buffer)[0] === 1;
  const ktb = a[0]!.value as Buffer;
  const kt = ktb.readUIntLE(0, Math.min(6, ktb.length));
  if (!b(5)) throw fail('the CA key does not allow signing (CKA_SIGN false)');
  if (kt !== pkcs11js.CKK_EC && kt !== pkcs11js.CKK_RSA) throw fail(`the CA key is of type 0x${kt.toString(16)} (EC or RSA only)`);
  return { keyType: kt === pkcs11js.CKK_EC ? 'EC' : 'RSA', extractable: b(1), sensitive: b(2), alwaysSensitive: b(3), neverExtractable: b(4) };
}

/** ecdsaDer turns the token's raw r‖s into an ECDSA-Sig-Value (RFC 3279 §2.2.3). */
export function ecdsaDer(raw: Buffer): Buffer {
  if (raw.length === 0 || raw.length % 2) throw new CertSignerError('unavailable', `token returned an ECDSA signature of ${raw.length} bytes`);
  const h = raw.length / 2;
  return seq(int(raw.subarray(0, h)), int(raw.subarray(h)));
}

class Pkcs11Signer implements CertSigner {
  readonly manifest = manifest;
  readonly #free: Handle[] = [];
  readonly #waiters: Array<(s: Handle) => void> = [];
  #open = 0;
  #closed = false;
  #signs = 0;

  constructor(
    private readonly token: Token,
    private readonly cfg: CertPkcs11Config,
    private readonly pin: string,
    private readonly key: Handle,
    private readonly facts: KeyFacts,
    private readonly material: CaMaterial,
    first: Handle,
  ) {
    this.#free.push(first);
    this.#open = 1;
  }

  ca(): CaMaterial {
    return this.material;
  }

  async #acquire(): Promise<Handle> {
    if (this.#closed) throw new CertSignerError('unavailable', 'signer closed');
    const s = this.#free.pop();
    if (s) return s;
    if (this.#open < this.cfg.poolSize) {
      this.#open++;
      try {
        return this.token.session(this.pin);
      } catch (e) {
        this.#open--;
        throw e;
      }
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  #release(s: Handle, broken: boolean): void {
    if (broken || this.#closed) {
      this.#open--;
      try {
        this.token.p11.C_CloseSession(s);
      } catch {
        /* gone already */
      }
      // A waiter gets a fresh session on its next acquire.
      const w = this.#waiters.shift();
      if (w && !this.#closed) this.#acquire().then(w, () => undefined);
      return;
    }
    const w = this.#waiters.shift();
    if (w) w(s);
    else this.#free.push(s);
  }

  #mechanism(): pkcs11js.Mechanism {
    if (this.facts.keyType === 'EC') return { mechanism: pkcs11js.CKM_ECDSA };
    const hash = this.material.suite === 'rsa-pss-sha384' ? { h: pkcs11js.CKM_SHA384, m: pkcs11js.CKM_SHA384_RSA_PKCS_PSS, g: pkcs11js.CKG_MGF1_SHA384, l: 48 } : { h: pkcs11js.CKM_SHA256, m: pkcs11js.CKM_SHA256_RSA_PKCS_PSS, g: pkcs11js.CKG_MGF1_SHA256, l: 32 };
    return { mechanism: hash.m, parameter: { hashAlg: hash.h, mgf: hash.g, saltLen: hash.l, type: pkcs11js.CK_PARAMS_RSA_PSS } as pkcs11js.RsaPSS };
  }

  async sign(tbs: Buffer): Promise<Buffer> {
    for (let attempt = 0; ; attempt++) {
      const s = await this.#acquire();
      let broken = false;
      try {
        const ec = this.facts.keyType === 'EC';
        const input = ec ? createHash(this.material.suite === 'ecdsa-sha256' ? 'sha256' : 'sha384').update(tbs).digest() : tbs;
        this.token.p11.C_SignInit(s, this.#mechanism(), this.key);
        const out = await this.token.p11.C_SignAsync(s, input, Buffer.alloc(1024));
        this.#signs++;
        return ec ? ecdsaDer(out) : Buffer.from(out);
      } catch (e) {
        const c = code(e) ?? -1;
        broken = SESSION_LOST.has(c);
        if (AUTH_REFUSED.has(c) || (e instanceof CertSignerError && e.kind === 'auth_failed')) throw new CertSignerError('auth_failed', `tas_cert_pkcs11: ${describeError(e)}`);
        if (broken && attempt === 0) continue;
        throw e instanceof CertSignerError ? e : new CertSignerError('unavailable', `tas_cert_pkcs11: C_Sign failed: ${describeError(e)}`);
      } finally {
        this.#release(s, broken);
      }
    }
  }

  async health(): Promise<{ ok: boolean; detail?: string; authFailed?: boolean }> {
    let s: Handle;
    try {
      s = await this.#acquire();
    } catch (e) {
      return { ok: false, detail: (e as Error).message, authFailed: e instanceof CertSignerError && e.kind === 'auth_failed' };
    }
    let broken = false;
    try {
      if (!USER_STATES.has(this.token.p11.C_GetSessionInfo(s).state)) {
        broken = true;
        return { ok: false, detail: 'session is not logged in' };
      }
      return { ok: true };
    } catch (e) {
      broken = true;
      return { ok: false, detail: describeError(e) };
    } finally {
      this.#release(s, broken);
    }
  }

  async describe(): Promise<Record<string, unknown>> {
    return {
      key_location: 'pkcs11', token: this.token.label, key_label: this.cfg.keyLabel, key_type: this.facts.keyType,
      CKA_EXTRACTABLE: this.facts.extractable, CKA_SENSITIVE: this.facts.sensitive,
      CKA_ALWAYS_SENSITIVE: this.facts.alwaysSensitive, CKA_NEVER_EXTRACTABLE: this.facts.neverExtractable,
      mechanism: this.facts.keyType === 'EC' ? 'CKM_ECDSA' : this.material.suite === 'rsa-pss-sha384' ? 'CKM_SHA384_RSA_PKCS_PSS' : 'CKM_SHA256_RSA_PKCS_PSS',
      suite: this.material.suite, c_sign_calls: this.#signs,
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const s of this.#free.splice(0)) {
      try {
        this.token.p11.C_CloseSession(s);
      } catch {
        /* gone */
      }
    }
    this.token.release();
  }
}

function readCerts(file: string, what: string): Buffer[] {
  let text: string;
  try {
    text = readFileSync(file, 'latin1');
  } catch (e) {
    throw fail(`cannot read ${what} ${file}: ${(e as NodeJS.ErrnoException).code ?? ''}`);
  }
  const certs = unpem(text, 'CERTIFICATE');
  if (certs.length === 0) throw fail(`${file} holds no PEM certificate`);
  return certs;
}

/** openPkcs11Signer opens the token, finds the key and checks that it cannot leave the token. */
export async function openPkcs11Signer(cfg: CertPkcs11Config, env: NodeJS.ProcessEnv = process.env): Promise<CertSigner> {
  const caCerts = readCerts(cfg.caCertFile, 'ca_cert_file');
  if (caCerts.length !== 1) throw fail(`${cfg.caCertFile} must hold exactly the issuing CA certificate`);
  const chain = readCerts(cfg.chainFile, 'chain_file');
  let pin: string;
  try {
    pin = readPin(cfg.pinSource, env);
  } catch (e) {
    throw fail((e as Error).message);
  }
  const token = Token.open(cfg);
  let s: Handle | undefined;
  try {
    s = token.session(pin);
    const keys = token.find(s, pkcs11js.CKO_PRIVATE_KEY, cfg.keyLabel);
    if (keys.length !== 1) throw fail(`${keys.length === 0 ? 'no' : 'more than one'} private key labelled '${cfg.keyLabel}' on token '${token.label}'`);
    const facts = keyFacts(token, s, keys[0]!);
    // The point of this plugin: the CA key must not be exportable. Fail closed otherwise.
    if (facts.extractable || !facts.sensitive) throw fail(`the CA key '${cfg.keyLabel}' is extractable or not sensitive: create it with CKA_EXTRACTABLE false and CKA_SENSITIVE true (tas cert ca init does)`);
    const suite = suiteForKey(publicKeyOfCert(caCerts[0]!));
    // This session stays open in the pool: closing a token's last session logs the user out
    // (PKCS#11 2.40 §5.6), which would make the private key handle unusable.
    return new Pkcs11Signer(token, cfg, pin, keys[0]!, facts, { caCert: caCerts[0]!, chain, suite }, s);
  } catch (e) {
    if (s !== undefined) {
      try {
        token.p11.C_CloseSession(s);
      } catch {
        /* nothing to save */
      }
    }
    token.release();
    throw e;
  }
}

function publicKeyOfCert(der: Buffer): ReturnType<typeof createPublicKey> {
  return createPublicKey({ key: pem('CERTIFICATE', der), format: 'pem' });
}

/** spkiOfToken builds the SubjectPublicKeyInfo of a key pair generated in the token. */
function spkiOfToken(t: Token, s: Handle, pub: Handle, keyType: 'EC' | 'RSA'): Buffer {
  if (keyType === 'EC') {
    const [point] = t.p11.C_GetAttributeValue(s, pub, [{ type: pkcs11js.CKA_EC_POINT }]);
    const raw = point!.value as Buffer;
    // CKA_EC_POINT is the DER OCTET STRING of the point (PKCS#11 2.40 §2.3.3); unwrap it.
    const body = raw[0] === 0x04 && raw[1] === raw.length - 2 ? raw.subarray(2) : raw[0] === 0x04 && raw[1] === 0x81 ? raw.subarray(3) : raw;
    return seq(seq(oid(OID.ecPublicKey), oid(OID.secp384r1)), bits(body));
  }
  const [n, e] = t.p11.C_GetAttributeValue(s, pub, [{ type: pkcs11js.CKA_MODULUS }, { type: pkcs11js.CKA_PUBLIC_EXPONENT }]);
  return createPublicKey({ key: { kty: 'RSA', n: (n!.value as Buffer).toString('base64url'), e: (e!.value as Buffer).toString('base64url') }, format: 'jwk' }).export({ type: 'spki', format: 'der' });
}

/** provisionInToken generates the CA key pair inside the token (sensitive, never extractable). */
export async function provisionInToken(cfg: CertPkcs11Config, req: ProvisionRequest, env: NodeJS.ProcessEnv = process.env): Promise<Record<string, unknown>> {
  for (const f of [cfg.caCertFile, cfg.chainFile]) if (existsSync(f)) throw fail(`${f} exists: refusing to replace an issuing CA`);
  const pin = readPin(cfg.pinSource, env);
  const token = Token.open(cfg);
  try {
    const s = token.session(pin);
    try {
      if (token.find(s, pkcs11js.CKO_PRIVATE_KEY, cfg.keyLabel).length) throw fail(`a key labelled '${cfg.keyLabel}' exists on token '${token.label}': refusing to replace it`);
      const id = createHash('sha256').update(cfg.keyLabel).digest().subarray(0, 16);
      const common = [{ type: pkcs11js.CKA_TOKEN, value: true }, { type: pkcs11js.CKA_LABEL, value: cfg.keyLabel }, { type: pkcs11js.CKA_ID, value: id }];
      const priv = [...common, { type: pkcs11js.CKA_PRIVATE, value: true }, { type: pkcs11js.CKA_SENSITIVE, value: true }, { type: pkcs11js.CKA_EXTRACTABLE, value: false }, { type: pkcs11js.CKA_SIGN, value: true }, { type: pkcs11js.CKA_DECRYPT, value: false }, { type: pkcs11js.CKA_UNWRAP, value: false }, { type: pkcs11js.CKA_DERIVE, value: false }];
      let pair: pkcs11js.KeyPair;
      if (req.keyType === 'EC') {
        pair = token.p11.C_GenerateKeyPair(s, { mechanism: pkcs11js.CKM_EC_KEY_PAIR_GEN }, [...common, { type: pkcs11js.CKA_VERIFY, value: true }, { type: pkcs11js.CKA_EC_PARAMS, value: oid(OID.secp384r1) }], priv);
      } else {
        const size = req.keySize ?? 3072;
        if (size < 3072) throw fail('RSA CA keys need at least 3072 bits');
        pair = token.p11.C_GenerateKeyPair(s, { mechanism: pkcs11js.CKM_RSA_PKCS_KEY_PAIR_GEN }, [...common, { type: pkcs11js.CKA_VERIFY, value: true }, { type: pkcs11js.CKA_MODULUS_BITS, value: size }, { type: pkcs11js.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) }], priv);
      }
      const spki = spkiOfToken(token, s, pair.publicKey, req.keyType);
      const suite: SignatureSuite = req.keyType === 'EC' ? 'ecdsa-sha384' : 'rsa-pss-sha256';
      const { caCert, chain } = await req.certify(spki, suite);
      writeExclusive(cfg.caCertFile, pem('CERTIFICATE', caCert));
      writeExclusive(cfg.chainFile, chain.map((c) => pem('CERTIFICATE', c)).join(''));
      const facts = keyFacts(token, s, pair.privateKey);
      return { key_location: 'pkcs11', token: token.label, key_label: cfg.keyLabel, CKA_EXTRACTABLE: facts.extractable, CKA_SENSITIVE: facts.sensitive, ca_cert_file: cfg.caCertFile, chain_file: cfg.chainFile };
    } finally {
      try {
        token.p11.C_CloseSession(s);
      } catch {
        /* nothing to save */
      }
    }
  } finally {
    token.release();
  }
}

export const plugin: CertSignerPlugin = {
  manifest,
  async open(configFile: string | undefined, _deps: CertSignerDeps): Promise<CertSigner> {
    return openPkcs11Signer(loadConfig(configFile));
  },
  async provision(configFile: string | undefined, _deps: CertSignerDeps, req: ProvisionRequest): Promise<Record<string, unknown>> {
    return provisionInToken(loadConfig(configFile), req);
  },
};

export default plugin;
