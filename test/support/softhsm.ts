/**
 * SoftHSM2 harness: one private token directory per test process (SOFTHSM2_CONF points at a
 * config in a temp dir, so no global SoftHSM state is touched), tokens made with softhsm2-util and
 * secret keys created with pkcs11js C_CreateObject in a child process (exact templates: sensitive,
 * extractable, AES or generic secrets of any length; `pkcs11-tool --write-object` cannot do
 * generic secrets). Needs the Debian packages softhsm2 (and opensc for manual inspection): a missing
 * one fails the test, it never skips.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** SOFTHSM_MODULE is where Debian 12's softhsm2 puts the PKCS#11 library. */
export const SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so';

/** HsmKey describes one secret key object to create on a token. */
export interface HsmKey {
  label: string;
  /** CKA_ID as hex. */
  id?: string;
  value: Buffer;
  /** aes (16/24/32 bytes) or generic (any length); default: aes for 32 bytes, else generic. */
  keyType?: 'aes' | 'generic';
  sensitive?: boolean;
  extractable?: boolean;
}

/** HsmToken is an initialized token. */
export interface HsmToken {
  label: string;
  pin: string;
  soPin: string;
  /** A file holding the PIN (what pin_file points at). */
  pinFile: string;
}

/** SoftHsm is the per-process SoftHSM setup. */
export interface SoftHsm {
  readonly dir: string;
  readonly conf: string;
  readonly module: string;
  /** createToken initializes a new token and stores keys on it (labels must be unique per process). */
  createToken(label: string, pin: string, keys: HsmKey[]): HsmToken;
  /** writeFile writes a file in the harness directory (configs, wrong PINs). */
  writeFile(name: string, text: string): string;
}

let instance: SoftHsm | undefined;

const CREATE_KEYS = `
const p = require(process.env.PKCS11JS);
const spec = JSON.parse(process.env.SPEC);
const m = new p.PKCS11();
m.load(spec.module);
m.C_Initialize();
try {
  const slot = m.C_GetSlotList(true).find((s) => m.C_GetTokenInfo(s).label.trim() === spec.label);
  if (!slot) throw new Error('token not found: ' + spec.label);
  const s = m.C_OpenSession(slot, p.CKF_SERIAL_SESSION | p.CKF_RW_SESSION);
  m.C_Login(s, p.CKU_USER, spec.pin);
  for (const k of spec.keys) {
    const value = Buffer.from(k.value, 'hex');
    const aes = k.keyType === 'aes';
    const tpl = [
      { type: p.CKA_CLASS, value: p.CKO_SECRET_KEY },
      { type: p.CKA_KEY_TYPE, value: aes ? p.CKK_AES : p.CKK_GENERIC_SECRET },
      { type: p.CKA_TOKEN, value: true },
      { type: p.CKA_PRIVATE, value: true },
      { type: p.CKA_SENSITIVE, value: k.sensitive },
      { type: p.CKA_EXTRACTABLE, value: k.extractable },
      { type: p.CKA_ENCRYPT, value: false },
      { type: p.CKA_DECRYPT, value: false },
      { type: p.CKA_WRAP, value: false },
      { type: p.CKA_UNWRAP, value: false },
      { type: p.CKA_SIGN, value: false },
      { type: p.CKA_VERIFY, value: false },
      { type: p.CKA_LABEL, value: k.label },
      { type: p.CKA_VALUE, value },
    ];
    if (k.id) tpl.push({ type: p.CKA_ID, value: Buffer.from(k.id, 'hex') });
    m.C_CreateObject(s, tpl);
  }
  m.C_Logout(s);
  m.C_CloseSession(s);
} finally {
  m.C_Finalize();
}
`;

/** softHsm returns the process-wide harness, creating it (and setting SOFTHSM2_CONF) on first use. */
export function softHsm(): SoftHsm {
  if (instance) return instance;
  if (!existsSync(SOFTHSM_MODULE)) throw new Error(`${SOFTHSM_MODULE} missing: apt-get install softhsm2 (listed in .ci/apt-packages)`);
  const dir = mkdtempSync(join(tmpdir(), 'tas-softhsm-'));
  mkdirSync(join(dir, 'tokens'));
  const conf = join(dir, 'softhsm2.conf');
  writeFileSync(conf, `directories.tokendir = ${join(dir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
  process.env.SOFTHSM2_CONF = conf;
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const env = { ...process.env, SOFTHSM2_CONF: conf };
  const writeFile = (name: string, text: string): string => {
    const f = join(dir, name);
    writeFileSync(f, text, { mode: 0o600 });
    return f;
  };
  instance = {
    dir,
    conf,
    module: SOFTHSM_MODULE,
    writeFile,
    createToken(label, pin, keys) {
      const soPin = '87654321';
      execFileSync('softhsm2-util', ['--init-token', '--free', '--label', label, '--so-pin', soPin, '--pin', pin], { env, stdio: 'pipe' });
      const spec = {
        module: SOFTHSM_MODULE,
        label,
        pin,
        keys: keys.map((k) => ({
          label: k.label,
          id: k.id,
          value: k.value.toString('hex'),
          keyType: k.keyType ?? (k.value.length === 32 ? 'aes' : 'generic'),
          sensitive: k.sensitive ?? true,
          extractable: k.extractable ?? true,
        })),
      };
      execFileSync(process.execPath, ['-e', CREATE_KEYS], { env: { ...env, SPEC: JSON.stringify(spec), PKCS11JS: require.resolve('pkcs11js') }, stdio: 'pipe' });
      return { label, pin, soPin, pinFile: writeFile(`${label}.pin`, `${pin}\n`) };
    },
  };
  return instance;
}
