/**
 * tas_kbm_pkcs11: releases secret keys held in a PKCS#11 token (HSM) without the secret ever
 * leaving the HSM in clear. Both modes answer in the AES-KWP form of PROTOCOL.md §2:
 *
 * - in-hsm: the HSM generates an ephemeral AES-256 key (session object, sensitive, extractable),
 *   wraps the secret under it with C_WrapKey(RFC 5649 KWP), then wraps the ephemeral key under the
 *   client's RSA key (imported as a session public-key object) with RSA-OAEP. Nothing passes
 *   through tas in clear. Needs a token whose C_WrapKey does OAEP with SHA-256 (the agent's format);
 *   `oaep_hash: sha1` exists only for SoftHSM 2.6.1 tests and is NOT readable by the agent.
 * - hybrid, for tokens without OAEP-SHA256: tas generates the ephemeral AES key, imports it as a
 *   session secret-key object (CKA_WRAP only), the HSM wraps the secret under it (KWP), tas
 *   OAEP-SHA256-wraps the ephemeral key for the client and zeroes it. The secret stays in the HSM;
 *   the ephemeral key is briefly in tas memory.
 *
 * Sessions come from a fixed-size pool (one operation per session at a time), the user logs in
 * once per token and process, and dead sessions (handle invalid, closed, token gone, device error,
 * logged out) are replaced and the operation retried once. A refused PIN is never retried: the
 * broker latches `authFailed` (HSMs lock tokens after a few wrong PINs) until restart. Crypto calls
 * go through pkcs11js' thread-pool variants so the event loop stays free.
 */
import { constants, generateKeyPairSync, privateDecrypt, randomBytes } from 'node:crypto';
import { accessSync, constants as fsConstants, readFileSync } from 'node:fs';
import * as pkcs11js from 'pkcs11js';
import type { SecretKeyReply } from '../../src/attest/types';
import { checkKeyId, KBM_API_VERSION, KbmError, type KbmDeps, type KbmHealth, type KbmManifest, type KbmPlugin, type KeyBroker } from '../../src/kbm/types';
import { checkWrappingKey, kwpReply, kwpWrap, oaepWrap, type WrappingKey } from '../../src/kbm/wrap';
import { parsePkcs11Config, readPin, type Pkcs11Config } from './config';
import { acquireModule, releaseModule } from './module';

export { parsePkcs11Config, readPin } from './config';
export type { Pkcs11Config, Pkcs11Mode } from './config';
export { acquireModule, releaseModule } from './module';

type Handle = pkcs11js.Handle;
type Logger = KbmDeps['log'];

const manifest: KbmManifest = Object.freeze({
  name: 'tas_kbm_pkcs11',
  apiVersion: KBM_API_VERSION,
  description: 'Secret keys in a PKCS#11 token, wrapped inside the HSM (AES-KWP form; modes in-hsm and hybrid).',
});

/** CKZ_DATA_SPECIFIED is not exported by pkcs11js (PKCS#11 2.40 §2.1.8). */
const CKZ_DATA_SPECIFIED = 1;
/** Session states with the user logged in (PKCS#11 2.40 §5.7; not exported by pkcs11js). */
const CKS_RO_USER_FUNCTIONS = 1;
const CKS_RW_USER_FUNCTIONS = 3;

/** CLOSE_DRAIN_MS bounds how long close() waits for running PKCS#11 calls. */
const CLOSE_DRAIN_MS = 10_000;

/** Codes after which a session (or the login) is gone and a fresh session may succeed. */
const SESSION_LOST = new Set([
  pkcs11js.CKR_SESSION_HANDLE_INVALID, pkcs11js.CKR_SESSION_CLOSED, pkcs11js.CKR_TOKEN_NOT_PRESENT,
  pkcs11js.CKR_TOKEN_NOT_RECOGNIZED, pkcs11js.CKR_DEVICE_ERROR, pkcs11js.CKR_DEVICE_REMOVED,
  pkcs11js.CKR_DEVICE_MEMORY, pkcs11js.CKR_USER_NOT_LOGGED_IN, pkcs11js.CKR_SESSION_COUNT,
]);
/** Codes that mean our credentials are refused: never retried. */
const AUTH_REFUSED = new Set([
  pkcs11js.CKR_PIN_INCORRECT, pkcs11js.CKR_PIN_INVALID, pkcs11js.CKR_PIN_LEN_RANGE, pkcs11js.CKR_PIN_EXPIRED,
  pkcs11js.CKR_PIN_LOCKED, pkcs11js.CKR_USER_PIN_NOT_INITIALIZED,
]);
/** Codes of C_CreateObject/C_WrapKey that blame the client's RSA key. */
const BAD_CLIENT_KEY = new Set([
  pkcs11js.CKR_WRAPPING_KEY_SIZE_RANGE, pkcs11js.CKR_WRAPPING_KEY_TYPE_INCONSISTENT, pkcs11js.CKR_KEY_SIZE_RANGE,
]);
/** Codes that mean the key exists but may not be released (not extractable, wrap-with-trusted). */
const NOT_RELEASABLE = new Set([pkcs11js.CKR_KEY_UNEXTRACTABLE, pkcs11js.CKR_KEY_NOT_WRAPPABLE]);

const CODE_NAMES = new Map<number, string>();
for (const [k, v] of Object.entries(pkcs11js)) if (k.startsWith('CKR_') && typeof v === 'number' && !CODE_NAMES.has(v)) CODE_NAMES.set(v, k);

/** ckrName names a PKCS#11 return value. */
export function ckrName(code: number): string {
  return CODE_NAMES.get(code) ?? `CKR_0x${code.toString(16)}`;
}

function ckr(e: unknown): number | undefined {
  if (e instanceof pkcs11js.Pkcs11Error) return e.code;
  const c = (e as { code?: unknown } | null)?.code;
  return typeof c === 'number' ? c : undefined;
}

function describeError(e: unknown): string {
  const c = ckr(e);
  if (c !== undefined) return `${ckrName(c)} in ${(e as { method?: string }).method || 'a PKCS#11 call'}`;
  return e instanceof Error ? e.message : String(e);
}

/** Stats counts what the broker did (tests count instead of clocking). */
export interface Pkcs11Stats {
  /** C_Login attempts (a refused PIN must be tried exactly once). */
  logins: number;
  sessionsOpened: number;
  /** Pool resets after a lost session or device error. */
  resets: number;
  releases: number;
}

interface Slot {
  readonly id: Handle;
  readonly label: string;
}

/** Pkcs11Broker is one opened token. */
export class Pkcs11Broker implements KeyBroker {
  readonly manifest = manifest;
  readonly stats: Pkcs11Stats = { logins: 0, sessionsOpened: 0, resets: 0, releases: 0 };
  readonly #cfg: Pkcs11Config;
  readonly #p11: pkcs11js.PKCS11;
  readonly #log: Logger;
  #pin: string;
  #slot: Slot | undefined;
  #free: Handle[] = [];
  #generationOf = new Map<Handle, number>();
  #generation = 0;
  #open = 0;
  #waiters: Array<() => void> = [];
  #loggedIn = false;
  #authFailure: string | undefined;
  #closed = false;
  #closing: Promise<void> | undefined;
  #drained: (() => void) | undefined;
  /** Set by selfTest: the token zero-pads keys to 8-byte multiples before KWP (SoftHSM 2.6.1). */
  #padsToBlock = false;

  constructor(cfg: Pkcs11Config, p11: pkcs11js.PKCS11, pin: string, log: Logger) {
    this.#cfg = cfg;
    this.#p11 = p11;
    this.#pin = pin;
    this.#log = log;
  }

  /** mode is in-hsm or hybrid. */
  get mode(): Pkcs11Config['mode'] {
    return this.#cfg.mode;
  }

  /** p11 gives tests the shared library object (to inspect the token behind the pool's back). */
  get p11(): pkcs11js.PKCS11 {
    return this.#p11;
  }

  /** slotId is the slot of the token (it changes when tokens are initialized: never configure it by number if you can). */
  get slotId(): Handle | undefined {
    return this.#slot?.id;
  }

  // --- slot and sessions ---------------------------------------------------------------------

  /** findSlot looks the token up by label, serial or slot number. */
  findSlot(): Slot {
    const t = this.#cfg.token;
    const slots = this.#p11.C_GetSlotList(true);
    const seen: string[] = [];
    for (const id of slots) {
      let info: pkcs11js.TokenInfo;
      try {
        info = this.#p11.C_GetTokenInfo(id);
      } catch {
        continue;
      }
      const label = info.label.trim();
      seen.push(label);
      if (('label' in t && label === t.label) || ('serial' in t && info.serialNumber.trim() === t.serial) || ('slot' in t && id.readUIntLE(0, Math.min(6, id.length)) === t.slot)) {
        return { id, label };
      }
    }
    throw new KbmError('unavailable', `token ${JSON.stringify(t)} not present (tokens: ${seen.join(', ') || 'none'})`);
  }

  #login(s: Handle): void {
    if (this.#loggedIn) return;
    this.stats.logins++;
    try {
      this.#p11.C_Login(s, pkcs11js.CKU_USER, this.#pin);
    } catch (e) {
      const c = ckr(e);
      if (c === pkcs11js.CKR_USER_ALREADY_LOGGED_IN) {
        this.#loggedIn = true;
        return;
      }
      if (c !== undefined && AUTH_REFUSED.has(c)) {
        this.#latchAuth(`token "${this.#slot?.label ?? '?'}" refused the PIN (${ckrName(c)}); not retried until restart`);
        throw new KbmError('auth_failed', this.#authFailure!);
      }
      throw e;
    }
    this.#loggedIn = true;
  }

  #latchAuth(reason: string): void {
    if (this.#authFailure !== undefined) return;
    this.#authFailure = reason;
    // Forget the PIN: it will never be used again by this process.
    this.#pin = '';
    this.#log.error({ plugin: manifest.name }, reason);
    this.#dropFree();
  }

  /** #userState tells whether a session sees the token logged in as the user. */
  #userState(s: Handle): boolean {
    const state = this.#p11.C_GetSessionInfo(s).state;
    return state === CKS_RW_USER_FUNCTIONS || state === CKS_RO_USER_FUNCTIONS;
  }

  #closeQuiet(s: Handle): void {
    this.#generationOf.delete(s);
    try {
      this.#p11.C_CloseSession(s);
    } catch {
      /* already dead */
    }
  }

  #dropFree(): void {
    for (const s of this.#free) {
      this.#closeQuiet(s);
      this.#open--;
    }
    this.#free = [];
  }

  #guard(): void {
    if (this.#closed) throw new KbmError('unavailable', 'tas_kbm_pkcs11 is closed');
    if (this.#authFailure !== undefined) throw new KbmError('auth_failed', this.#authFailure);
  }

  async #acquire(): Promise<Handle> {
    for (;;) {
      this.#guard();
      const s = this.#free.pop();
      if (s !== undefined) return s;
      if (this.#open < this.#cfg.poolSize) {
        this.#open++;
        let opened: Handle | undefined;
        try {
          this.#slot ??= this.findSlot();
          opened = this.#p11.C_OpenSession(this.#slot.id, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
          this.stats.sessionsOpened++;
          this.#generationOf.set(opened, this.#generation);
          // The token may have been logged out behind our back (C_CloseAllSessions, a device
          // reset) before any pooled session noticed: ask the new session, not our flag.
          if (this.#loggedIn && !this.#userState(opened)) this.#loggedIn = false;
          this.#login(opened);
          return opened;
        } catch (e) {
          this.#open--;
          if (opened !== undefined) this.#closeQuiet(opened);
          const c = ckr(e);
          if (c !== undefined && SESSION_LOST.has(c)) this.#slot = undefined;
          this.#waiters.shift()?.();
          throw e;
        }
      }
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  #release(s: Handle, discard: boolean): void {
    if (discard || this.#closed || this.#authFailure !== undefined || this.#generationOf.get(s) !== this.#generation) {
      this.#closeQuiet(s);
      this.#open--;
    } else {
      this.#free.push(s);
    }
    this.#waiters.shift()?.();
    if (this.#closed && this.#open === 0) this.#drained?.();
  }

  /** #reset forgets every pooled session and the login after a lost session (once per generation). */
  #reset(generation: number | undefined, why: string): void {
    if (generation !== this.#generation) return;
    this.#generation++;
    this.stats.resets++;
    this.#loggedIn = false;
    this.#slot = undefined;
    this.#dropFree();
    this.#log.warn({ plugin: manifest.name, why }, 'PKCS#11 sessions lost: reopening');
  }

  /** #withSession runs fn on a pooled session; a lost session is replaced and fn retried once. */
  async #withSession<T>(fn: (s: Handle) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      let s: Handle;
      try {
        s = await this.#acquire();
      } catch (e) {
        const c = ckr(e);
        if (c !== undefined && SESSION_LOST.has(c) && attempt === 0) continue;
        throw this.#map(e);
      }
      const gen = this.#generationOf.get(s);
      try {
        const r = await fn(s);
        this.#release(s, false);
        return r;
      } catch (e) {
        const c = ckr(e);
        const lost = c !== undefined && SESSION_LOST.has(c);
        this.#release(s, lost);
        if (lost) {
          this.#reset(gen, describeError(e));
          if (attempt === 0 && !this.#closed) continue;
        }
        throw this.#map(e);
      }
    }
  }

  #map(e: unknown): KbmError {
    if (e instanceof KbmError) return e;
    const c = ckr(e);
    if (c !== undefined && AUTH_REFUSED.has(c)) {
      this.#latchAuth(`token refused our credentials (${ckrName(c)}); not retried until restart`);
      return new KbmError('auth_failed', this.#authFailure!);
    }
    if (c !== undefined && NOT_RELEASABLE.has(c)) return new KbmError('not_found', `key exists but may not be released (${describeError(e)}): it must be CKA_EXTRACTABLE and not wrap-with-trusted`);
    if (c !== undefined && BAD_CLIENT_KEY.has(c)) return new KbmError('bad_wrapping_key', `token refused the client's RSA key (${describeError(e)})`);
    return new KbmError('unavailable', `PKCS#11: ${describeError(e)}`, { cause: e });
  }

  // --- objects ---------------------------------------------------------------------------------

  /** #findKey returns the handle and length of the secret key named keyId (exactly one match). */
  #findKey(s: Handle, keyId: string): { handle: Handle; length: number } {
    const tpl: pkcs11js.Template = [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY }];
    if (this.#cfg.keyLookup === 'label') tpl.push({ type: pkcs11js.CKA_LABEL, value: keyId });
    else {
      if (!/^(?:[0-9a-fA-F]{2}){1,128}$/.test(keyId)) throw new KbmError('not_found', 'key id is not hex (key_lookup: id)');
      tpl.push({ type: pkcs11js.CKA_ID, value: Buffer.from(keyId, 'hex') });
    }
    this.#p11.C_FindObjectsInit(s, tpl);
    let found: Handle[];
    try {
      found = this.#p11.C_FindObjects(s, 2);
    } finally {
      this.#p11.C_FindObjectsFinal(s);
    }
    if (found.length === 0) {
      // A session that lost its login sees no private objects: that is a lost session, not a
      // missing key (otherwise a token logout would turn into 404s and burn nonces).
      if (!this.#userState(s)) throw Object.assign(new Error('session is not logged in'), { code: pkcs11js.CKR_USER_NOT_LOGGED_IN, method: 'C_FindObjects' });
      throw new KbmError('not_found', `no secret key with this ${this.#cfg.keyLookup === 'label' ? 'CKA_LABEL' : 'CKA_ID'} on the token`);
    }
    if (found.length > 1) throw new KbmError('unavailable', `more than one secret key with this ${this.#cfg.keyLookup === 'label' ? 'CKA_LABEL' : 'CKA_ID'}: refusing to guess`);
    const handle = found[0]!;
    const attrs = this.#p11.C_GetAttributeValue(s, handle, [
      { type: pkcs11js.CKA_SENSITIVE }, { type: pkcs11js.CKA_EXTRACTABLE }, { type: pkcs11js.CKA_VALUE_LEN },
    ]);
    const flag = (i: number): boolean => (attrs[i]?.value as Buffer | undefined)?.[0] === 1;
    // A key whose CKA_VALUE can be read is not protected by the HSM: refuse to serve it.
    if (!flag(0)) throw new KbmError('not_found', 'key is not CKA_SENSITIVE: refusing to release a key the token does not protect');
    if (!flag(1)) throw new KbmError('not_found', 'key is not CKA_EXTRACTABLE: it cannot be wrapped for release');
    const lenBuf = attrs[2]?.value as Buffer | undefined;
    const length = lenBuf && lenBuf.length > 0 ? lenBuf.readUIntLE(0, Math.min(6, lenBuf.length)) : 0;
    if (this.#padsToBlock && length % 8 !== 0) {
      throw new KbmError('not_found', `key is ${length} bytes, and this token zero-pads keys to 8-byte multiples before KWP: the client would get a wrong secret (store a multiple of 8 bytes)`);
    }
    return { handle, length };
  }

  #destroyQuiet(s: Handle, h: Handle | undefined): void {
    if (h === undefined) return;
    try {
      this.#p11.C_DestroyObject(s, h);
    } catch {
      /* a session object goes with its session anyway */
    }
  }

  #importClientKey(s: Handle, wk: WrappingKey): Handle {
    try {
      return this.#p11.C_CreateObject(s, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY },
        { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_RSA },
        { type: pkcs11js.CKA_TOKEN, value: false },
        { type: pkcs11js.CKA_PRIVATE, value: false },
        { type: pkcs11js.CKA_WRAP, value: true },
        { type: pkcs11js.CKA_ENCRYPT, value: false },
        { type: pkcs11js.CKA_VERIFY, value: false },
        { type: pkcs11js.CKA_MODULUS, value: wk.n },
        { type: pkcs11js.CKA_PUBLIC_EXPONENT, value: wk.e },
      ]);
    } catch (e) {
      const c = ckr(e);
      if (c === pkcs11js.CKR_TEMPLATE_INCONSISTENT || c === pkcs11js.CKR_ATTRIBUTE_VALUE_INVALID) {
        throw new KbmError('bad_wrapping_key', `token refused the client's RSA key (${describeError(e)})`);
      }
      throw e;
    }
  }

  #oaepMechanism(): pkcs11js.Mechanism {
    const sha256 = this.#cfg.oaepHash === 'sha256';
    const parameter: pkcs11js.RsaOAEP = {
      type: pkcs11js.CK_PARAMS_RSA_OAEP,
      hashAlg: sha256 ? pkcs11js.CKM_SHA256 : pkcs11js.CKM_SHA_1,
      mgf: sha256 ? pkcs11js.CKG_MGF1_SHA256 : pkcs11js.CKG_MGF1_SHA1,
      source: CKZ_DATA_SPECIFIED,
    };
    return { mechanism: pkcs11js.CKM_RSA_PKCS_OAEP, parameter };
  }

  /** #kwpWrap wraps key under kek inside the HSM (RFC 5649). */
  async #kwpWrap(s: Handle, kek: Handle, key: Handle, length: number): Promise<Buffer> {
    // RFC 5649 output: the input padded to a multiple of 8, plus the 8-byte integrity block.
    const out = Buffer.alloc(length > 0 ? Math.ceil(length / 8) * 8 + 8 : 8192);
    return this.#p11.C_WrapKeyAsync(s, { mechanism: this.#cfg.kwpMechanism }, kek, key, out);
  }

  /** #ephemeralInHsm generates the per-reply AES-256 key inside the HSM. */
  async #ephemeralInHsm(s: Handle): Promise<Handle> {
    return this.#p11.C_GenerateKeyAsync(s, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
      { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
      { type: pkcs11js.CKA_TOKEN, value: false },
      { type: pkcs11js.CKA_PRIVATE, value: true },
      { type: pkcs11js.CKA_SENSITIVE, value: true },
      { type: pkcs11js.CKA_EXTRACTABLE, value: true },
      { type: pkcs11js.CKA_WRAP, value: true },
      { type: pkcs11js.CKA_UNWRAP, value: false },
      { type: pkcs11js.CKA_ENCRYPT, value: false },
      { type: pkcs11js.CKA_DECRYPT, value: false },
    ]);
  }

  /** #importEphemeral makes a session wrapping key from bytes tas generated (hybrid mode). */
  #importEphemeral(s: Handle, value: Buffer, extractable = false): Handle {
    return this.#p11.C_CreateObject(s, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
      { type: pkcs11js.CKA_TOKEN, value: false },
      { type: pkcs11js.CKA_PRIVATE, value: true },
      { type: pkcs11js.CKA_SENSITIVE, value: true },
      { type: pkcs11js.CKA_EXTRACTABLE, value: extractable },
      { type: pkcs11js.CKA_WRAP, value: true },
      { type: pkcs11js.CKA_UNWRAP, value: false },
      { type: pkcs11js.CKA_ENCRYPT, value: false },
      { type: pkcs11js.CKA_DECRYPT, value: false },
      { type: pkcs11js.CKA_VALUE, value },
    ]);
  }

  /** #importGeneric makes an extractable session generic secret (self-test probes only). */
  #importGeneric(s: Handle, value: Buffer): Handle {
    return this.#p11.C_CreateObject(s, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_GENERIC_SECRET },
      { type: pkcs11js.CKA_TOKEN, value: false },
      { type: pkcs11js.CKA_SENSITIVE, value: true },
      { type: pkcs11js.CKA_EXTRACTABLE, value: true },
      { type: pkcs11js.CKA_VALUE, value },
    ]);
  }

  async #releaseInHsm(s: Handle, key: { handle: Handle; length: number }, wk: WrappingKey): Promise<SecretKeyReply> {
    let pub: Handle | undefined;
    let eph: Handle | undefined;
    try {
      pub = this.#importClientKey(s, wk);
      eph = await this.#ephemeralInHsm(s);
      const blob = await this.#kwpWrap(s, eph, key.handle, key.length);
      const wrapped = await this.#p11.C_WrapKeyAsync(s, this.#oaepMechanism(), pub, eph, Buffer.alloc(Math.ceil(wk.bits / 8)));
      return kwpReply(blob, wrapped);
    } finally {
      this.#destroyQuiet(s, eph);
      this.#destroyQuiet(s, pub);
    }
  }

  async #releaseHybrid(s: Handle, key: { handle: Handle; length: number }, wk: WrappingKey): Promise<SecretKeyReply> {
    const aes = randomBytes(32);
    let eph: Handle | undefined;
    try {
      eph = this.#importEphemeral(s, aes);
      const blob = await this.#kwpWrap(s, eph, key.handle, key.length);
      return kwpReply(blob, oaepWrap(aes, wk));
    } finally {
      aes.fill(0);
      this.#destroyQuiet(s, eph);
    }
  }

  // --- KeyBroker -------------------------------------------------------------------------------

  async getSecret(keyId: string, wrappingKey: WrappingKey): Promise<SecretKeyReply> {
    this.#guard();
    checkKeyId(keyId);
    checkWrappingKey(wrappingKey);
    const reply = await this.#withSession(async (s) => {
      const key = this.#findKey(s, keyId);
      return this.#cfg.mode === 'in-hsm' ? this.#releaseInHsm(s, key, wrappingKey) : this.#releaseHybrid(s, key, wrappingKey);
    });
    this.stats.releases++;
    return reply;
  }

  async health(): Promise<KbmHealth> {
    if (this.#closed) return { ok: false, detail: 'closed' };
    if (this.#authFailure !== undefined) return { ok: false, authFailed: true, detail: this.#authFailure };
    try {
      await this.#withSession(async (s) => {
        if (!this.#userState(s)) throw Object.assign(new Error('session is not logged in'), { code: pkcs11js.CKR_USER_NOT_LOGGED_IN, method: 'C_GetSessionInfo' });
      });
      return { ok: true, detail: `token "${this.#slot?.label ?? '?'}", mode ${this.#cfg.mode}` };
    } catch (e) {
      const k = e instanceof KbmError ? e : this.#map(e);
      return { ok: false, detail: k.message, authFailed: k.kind === 'auth_failed' };
    }
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#closed = true;
    this.#pin = '';
    this.#dropFree();
    for (const w of this.#waiters.splice(0)) w();
    // Sessions in use are closed as they come back (#release). C_Finalize under a running
    // thread-pool call would pull the library from under it, so wait for them (bounded).
    if (this.#open > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => { this.#drained = resolve; }),
        new Promise<void>((resolve) => { timer = setTimeout(resolve, CLOSE_DRAIN_MS); }),
      ]);
      clearTimeout(timer);
      if (this.#open > 0) this.#log.warn({ plugin: manifest.name, inUse: this.#open }, 'closing with PKCS#11 calls still running');
    }
    releaseModule(this.#cfg.module);
  }

  /**
   * selfTest runs once at open: it proves that the configured KWP mechanism is RFC 5649 on this
   * token (compared with a software unwrap) and, in in-hsm mode, that C_WrapKey does RSA-OAEP with
   * the configured hash. A token that fails either would answer replies the agent cannot open.
   */
  async selfTest(): Promise<void> {
    await this.#withSession(async (s) => {
      const kek = randomBytes(32);
      const probe = randomBytes(32);
      let kekH: Handle | undefined;
      let probeH: Handle | undefined;
      let pub: Handle | undefined;
      let oddH: Handle | undefined;
      try {
        kekH = this.#importEphemeral(s, kek);
        probeH = this.#importEphemeral(s, probe, true);
        let wrapped: Buffer;
        try {
          wrapped = await this.#kwpWrap(s, kekH, probeH, 32);
        } catch (e) {
          throw new KbmError('config', `kwp_mechanism 0x${this.#cfg.kwpMechanism.toString(16)} failed on this token (${describeError(e)})`);
        }
        if (!wrapped.equals(kwpWrap(probe, kek))) throw new KbmError('config', `kwp_mechanism 0x${this.#cfg.kwpMechanism.toString(16)} is not RFC 5649 AES key wrap with padding on this token`);
        // SoftHSM 2.6.1 zero-pads the key to a multiple of 8 bytes BEFORE the RFC 5649 wrap (its
        // length indicator then says 16 for a 9-byte key): the client would get the secret with
        // trailing zeros. Detect it, and refuse such secrets at release rather than hand out a
        // wrong one.
        const odd = randomBytes(9);
        try {
          oddH = this.#importGeneric(s, odd);
          const w = await this.#kwpWrap(s, kekH, oddH, 9);
          if (w.equals(kwpWrap(odd, kek))) this.#padsToBlock = false;
          else if (w.equals(kwpWrap(Buffer.concat([odd, Buffer.alloc(7)]), kek))) {
            this.#padsToBlock = true;
            this.#log.warn({ plugin: manifest.name }, 'this token zero-pads keys to 8-byte multiples before KWP (SoftHSM 2.6.1): only secrets of a multiple of 8 bytes can be released');
          } else throw new KbmError('config', 'KWP of a 9-byte key gives neither the RFC 5649 nor the zero-padded form');
        } finally {
          odd.fill(0);
        }
        if (this.#cfg.mode === 'in-hsm') {
          const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
          const jwk = publicKey.export({ format: 'jwk' });
          const wk = { n: Buffer.from(jwk.n!, 'base64url'), e: Buffer.from(jwk.e!, 'base64url'), bits: 2048 } as WrappingKey;
          pub = this.#importClientKey(s, wk);
          let oaep: Buffer;
          try {
            oaep = await this.#p11.C_WrapKeyAsync(s, this.#oaepMechanism(), pub, probeH, Buffer.alloc(256));
          } catch (e) {
            throw new KbmError('config', `this token cannot C_WrapKey with RSA-OAEP-${this.#cfg.oaepHash.toUpperCase()} (${describeError(e)}): use mode: hybrid`);
          }
          const back = privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: this.#cfg.oaepHash }, oaep);
          if (!back.equals(probe)) throw new KbmError('config', `RSA-OAEP-${this.#cfg.oaepHash.toUpperCase()} wrap of this token does not decrypt to the wrapped key`);
        }
      } finally {
        kek.fill(0);
        probe.fill(0);
        this.#destroyQuiet(s, probeH);
        this.#destroyQuiet(s, kekH);
        this.#destroyQuiet(s, pub);
        this.#destroyQuiet(s, oddH);
      }
    });
  }
}

/** openPkcs11 opens a broker from a parsed config (exported for tests; the plugin reads the file). */
export async function openPkcs11(cfg: Pkcs11Config, log: Logger, env: NodeJS.ProcessEnv = process.env): Promise<Pkcs11Broker> {
  const pin = readPin(cfg.pinSource, env);
  const p11 = acquireModule(cfg.module);
  const broker = new Pkcs11Broker(cfg, p11, pin, log);
  try {
    // A missing token at startup is a configuration error (the message lists the tokens seen).
    try {
      broker.findSlot();
    } catch (e) {
      throw new KbmError('config', `tas_kbm_pkcs11: ${(e as Error).message}`);
    }
    await broker.selfTest();
  } catch (e) {
    // A refused PIN does not stop startup: the broker stays latched (not ready, says why).
    if (e instanceof KbmError && e.kind === 'auth_failed') return broker;
    await broker.close();
    if (e instanceof KbmError && e.kind === 'config') throw e;
    throw new KbmError('config', `tas_kbm_pkcs11: self-test at open failed: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  if (cfg.mode === 'in-hsm' && cfg.oaepHash === 'sha1') {
    log.warn({ plugin: manifest.name }, 'oaep_hash sha1: replies are NOT in the agent\'s format (OAEP-SHA256); for SoftHSM tests only');
  }
  log.info({ plugin: manifest.name, mode: cfg.mode, pool: cfg.poolSize, token: cfg.token }, 'PKCS#11 key broker ready');
  return broker;
}

/** plugin is the KbmPlugin of tas_kbm_pkcs11. */
export const plugin: KbmPlugin = {
  manifest,
  async open(configFile: string | undefined, deps: KbmDeps): Promise<KeyBroker> {
    return openPkcs11(readPkcs11Config(configFile), deps.log);
  },
  check(configFile: string | undefined): void {
    // The config, the PIN source and the library file; the token is not opened (a network HSM
    // would be contacted, and wrong PINs count against the token).
    const cfg = readPkcs11Config(configFile);
    // A PIN passed as a systemd credential exists only inside the service; elsewhere it is not checked.
    if ('file' in cfg.pinSource || process.env.CREDENTIALS_DIRECTORY) readPin(cfg.pinSource);
    try {
      accessSync(cfg.module, fsConstants.R_OK);
    } catch (e) {
      throw new KbmError('config', `tas_kbm_pkcs11 config ${configFile}: module ${cfg.module}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  },
};

/** readPkcs11Config reads and parses TAS_KBM_CONFIG_FILE (open and check). */
function readPkcs11Config(configFile: string | undefined): Pkcs11Config {
  if (configFile === undefined || configFile === '') throw new KbmError('config', 'tas_kbm_pkcs11 needs TAS_KBM_CONFIG_FILE');
  let text: string;
  try {
    text = readFileSync(configFile, 'utf8');
  } catch (e) {
    throw new KbmError('config', `tas_kbm_pkcs11 config ${configFile}: cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parsePkcs11Config(text, configFile);
}

export default plugin;
