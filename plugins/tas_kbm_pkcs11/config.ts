/**
 * Configuration of tas_kbm_pkcs11 (a YAML or JSON file named by TAS_KBM_CONFIG_FILE):
 *
 *   module: /usr/lib/softhsm/libsofthsm2.so   # the vendor's PKCS#11 library
 *   token_label: tas                          # or token_serial, or slot (slot ids can change!)
 *   pin_file: /etc/tas/hsm-pin                # or pin_credential: hsm-pin ($CREDENTIALS_DIRECTORY/hsm-pin)
 *   mode: in-hsm                              # in-hsm (default) or hybrid
 *   oaep_hash: sha256                         # in-hsm only; sha1 only for SoftHSM 2.6.1 tests
 *   key_lookup: label                         # key id = CKA_LABEL (default) or id (key id = hex of CKA_ID)
 *   kwp_mechanism: 0x210A                     # RFC 5649 mechanism of the token (checked at open)
 *   pool_size: 4                              # sessions, i.e. concurrent releases
 *
 * The PIN is never taken from argv or the config file itself, and never logged.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parsePluginDocument } from '../../src/config/plugin-doc';
import { KbmError } from '../../src/kbm/types';

/** Pkcs11Mode selects where the ephemeral AES key is made (see docs/plugins.md). */
export type Pkcs11Mode = 'in-hsm' | 'hybrid';

/** Pkcs11Config is the validated configuration (without the PIN). */
export interface Pkcs11Config {
  readonly module: string;
  readonly token: { readonly label: string } | { readonly serial: string } | { readonly slot: number };
  readonly pinSource: { readonly file: string } | { readonly credential: string };
  readonly mode: Pkcs11Mode;
  readonly oaepHash: 'sha256' | 'sha1';
  readonly keyLookup: 'label' | 'id';
  readonly kwpMechanism: number;
  readonly poolSize: number;
}

const MEMBERS = new Set(['module', 'token_label', 'token_serial', 'slot', 'pin_file', 'pin_credential', 'mode', 'oaep_hash', 'key_lookup', 'kwp_mechanism', 'pool_size']);

function fail(file: string, msg: string): KbmError {
  return new KbmError('config', `tas_kbm_pkcs11 config ${file}: ${msg}`);
}

/** parsePkcs11Config validates the document (exported for tests). */
export function parsePkcs11Config(text: string, file: string): Pkcs11Config {
  const { doc: d, str, need } = parsePluginDocument(text, file, MEMBERS, (m) => fail(file, m), { jsonByExtension: true });
  const module = need('module', 'module (path of the PKCS#11 library)');
  const label = str('token_label');
  const serial = str('token_serial');
  const slot = d.slot;
  const tokenChoices = [label, serial, slot].filter((x) => x !== undefined).length;
  if (tokenChoices !== 1) throw fail(file, 'exactly one of token_label, token_serial or slot is required');
  if (slot !== undefined && (typeof slot !== 'number' || !Number.isSafeInteger(slot) || slot < 0)) throw fail(file, 'slot must be a non-negative integer');
  const token = label !== undefined ? { label } : serial !== undefined ? { serial } : { slot: slot as number };
  const pinFile = str('pin_file');
  const pinCred = str('pin_credential');
  if ((pinFile === undefined) === (pinCred === undefined)) throw fail(file, 'exactly one of pin_file or pin_credential is required (the PIN itself never goes in this file)');
  if (pinCred !== undefined && !/^[A-Za-z0-9_.-]{1,128}$/.test(pinCred)) throw fail(file, 'pin_credential must be a systemd credential name');
  const mode = d.mode ?? 'in-hsm';
  if (mode !== 'in-hsm' && mode !== 'hybrid') throw fail(file, `mode must be in-hsm or hybrid, got ${JSON.stringify(mode)}`);
  const oaepHash = d.oaep_hash ?? 'sha256';
  if (oaepHash !== 'sha256' && oaepHash !== 'sha1') throw fail(file, `oaep_hash must be sha256 or sha1, got ${JSON.stringify(oaepHash)}`);
  if (mode === 'hybrid' && d.oaep_hash !== undefined && oaepHash !== 'sha256') throw fail(file, 'oaep_hash applies to mode in-hsm only (hybrid always answers OAEP-SHA256)');
  const keyLookup = d.key_lookup ?? 'label';
  if (keyLookup !== 'label' && keyLookup !== 'id') throw fail(file, `key_lookup must be label or id, got ${JSON.stringify(keyLookup)}`);
  let kwp: unknown = d.kwp_mechanism ?? 0x210a;
  if (typeof kwp === 'string' && /^0x[0-9a-fA-F]{1,8}$/.test(kwp)) kwp = Number.parseInt(kwp.slice(2), 16);
  if (typeof kwp !== 'number' || !Number.isSafeInteger(kwp) || kwp < 0 || kwp > 0xffffffff) throw fail(file, 'kwp_mechanism must be a mechanism number (e.g. 0x210A)');
  const poolSize = d.pool_size ?? 4;
  if (typeof poolSize !== 'number' || !Number.isSafeInteger(poolSize) || poolSize < 1 || poolSize > 64) throw fail(file, 'pool_size must be an integer 1..64');
  return {
    module,
    token,
    pinSource: pinFile !== undefined ? { file: pinFile } : { credential: pinCred! },
    mode,
    oaepHash,
    keyLookup,
    kwpMechanism: kwp,
    poolSize,
  };
}

/** readPin reads the PIN from its file or systemd credential (one trailing newline dropped). */
export function readPin(src: Pkcs11Config['pinSource'], env: NodeJS.ProcessEnv = process.env): string {
  let path: string;
  if ('file' in src) path = src.file;
  else {
    const dir = env.CREDENTIALS_DIRECTORY;
    if (!dir) throw new KbmError('config', `tas_kbm_pkcs11: pin_credential '${src.credential}' set but $CREDENTIALS_DIRECTORY is not (use LoadCredential= in the unit)`);
    path = join(dir, src.credential);
  }
  let pin: string;
  try {
    pin = readFileSync(path, 'utf8').replace(/\r?\n$/, '');
  } catch (e) {
    throw new KbmError('config', `tas_kbm_pkcs11: cannot read the PIN from ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  if (pin.length === 0 || pin.length > 256) throw new KbmError('config', `tas_kbm_pkcs11: the PIN in ${path} is empty or longer than 256 characters`);
  return pin;
}
