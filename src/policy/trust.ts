/**
 * The policy trust set (TAS_POLICY_TRUST): a file or a directory of PEM public keys (SPKI
 * `PUBLIC KEY` or PKCS#1 `RSA PUBLIC KEY`) or X.509 certificates, whose RSA keys may sign policies.
 * Reloaded on SIGHUP; every load bumps `generation`, which is part of the verification cache key,
 * so a reload invalidates every cached verdict (a removed key stops verifying at once).
 */
import { createHash, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** TrustedKey is one policy-signing key. */
export interface TrustedKey {
  readonly key: KeyObject;
  /** SHA-256 of the SPKI DER, lowercase hex: names the key in logs and audit records. */
  readonly fingerprint: string;
  /** File the key came from. */
  readonly source: string;
  readonly bits: number;
}

/** TrustError is a configuration problem (unreadable path, bad PEM, non-RSA or short key). */
export class TrustError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrustError';
  }
}

const PEM_RE = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n[\s\S]*?-----END \1-----/g;
const MAX_FILE = 1024 * 1024;
const MAX_FILES = 1024;
const MIN_BITS = 2048;

function fingerprintOf(key: KeyObject): string {
  return createHash('sha256').update(key.export({ type: 'spki', format: 'der' })).digest('hex');
}

/** parseTrustPem returns every RSA public key of one PEM text (keys and certificates). */
export function parseTrustPem(pem: string, source: string): TrustedKey[] {
  const out: TrustedKey[] = [];
  for (const m of pem.matchAll(PEM_RE)) {
    const label = m[1]!;
    let key: KeyObject;
    try {
      if (label === 'CERTIFICATE') key = new X509Certificate(m[0]).publicKey;
      else if (label === 'PUBLIC KEY' || label === 'RSA PUBLIC KEY') key = createPublicKey(m[0]);
      else if (label.includes('PRIVATE KEY')) throw new TrustError(`${source}: a private key does not belong in TAS_POLICY_TRUST`);
      else continue; // other PEM blocks (e.g. CRLs, parameters) carry no signing key
    } catch (e) {
      if (e instanceof TrustError) throw e;
      throw new TrustError(`${source}: unreadable ${label} block (${(e as Error).message})`);
    }
    if (key.asymmetricKeyType !== 'rsa') {
      throw new TrustError(`${source}: policy-signing keys must be RSA, got ${key.asymmetricKeyType ?? 'unknown'}`);
    }
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < MIN_BITS) throw new TrustError(`${source}: RSA key of ${bits} bits is too short (minimum ${MIN_BITS})`);
    out.push({ key, fingerprint: fingerprintOf(key), source, bits });
  }
  return out;
}

/**
 * loadTrust reads a file or a directory (regular, non-hidden files, sorted; not recursive). A file
 * that names no key is an error when it is the single file given, and skipped (reported in
 * `skipped`) inside a directory, where READMEs may live.
 */
export function loadTrust(path: string): { keys: TrustedKey[]; skipped: string[] } {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    throw new TrustError(`TAS_POLICY_TRUST ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const files: string[] = [];
  if (st.isDirectory()) {
    for (const name of readdirSync(path).sort()) {
      if (name.startsWith('.')) continue;
      const p = join(path, name);
      if (statSync(p).isFile()) files.push(p);
    }
    if (files.length > MAX_FILES) throw new TrustError(`TAS_POLICY_TRUST ${path}: more than ${MAX_FILES} files`);
  } else {
    files.push(path);
  }
  const keys: TrustedKey[] = [];
  const skipped: string[] = [];
  const seen = new Set<string>();
  for (const f of files) {
    if (statSync(f).size > MAX_FILE) throw new TrustError(`${f}: larger than ${MAX_FILE} bytes`);
    const found = parseTrustPem(readFileSync(f, 'utf8'), f);
    if (found.length === 0) {
      if (!st.isDirectory()) throw new TrustError(`TAS_POLICY_TRUST ${f}: no PEM public key or certificate in it`);
      skipped.push(f);
    }
    for (const k of found) {
      if (seen.has(k.fingerprint)) continue;
      seen.add(k.fingerprint);
      keys.push(k);
    }
  }
  if (st.isDirectory() && keys.length === 0) throw new TrustError(`TAS_POLICY_TRUST ${path}: no PEM public key or certificate in the directory`);
  return { keys, skipped };
}

/** PolicyTrust holds the current trust set and its generation. */
export class PolicyTrust {
  private current: readonly TrustedKey[] = [];
  private gen = 0;
  private path: string | undefined;

  /** Builds a trust set from keys (tests) or empty. */
  constructor(keys: readonly TrustedKey[] = []) {
    this.current = keys;
  }

  /** fromPath loads TAS_POLICY_TRUST (undefined: no trusted key; signed policies cannot verify). */
  static fromPath(path: string | undefined): PolicyTrust {
    const t = new PolicyTrust();
    t.reload(path);
    return t;
  }

  /**
   * reload replaces the key set (SIGHUP). On error the previous set stays and the error is thrown
   * for the caller to log: a typo in a reload must not silently drop or keep trust unnoticed.
   */
  reload(path: string | undefined): { keys: number; skipped: string[] } {
    const loaded = path === undefined || path === '' ? { keys: [], skipped: [] } : loadTrust(path);
    this.current = loaded.keys;
    this.path = path;
    this.gen++;
    return { keys: loaded.keys.length, skipped: loaded.skipped };
  }

  /** replace swaps in a key set directly (tests, CLI `verify --trust`). */
  replace(keys: readonly TrustedKey[]): void {
    this.current = keys;
    this.gen++;
  }

  get keys(): readonly TrustedKey[] {
    return this.current;
  }

  /** generation changes on every reload; verdicts cached under an older generation are void. */
  get generation(): number {
    return this.gen;
  }

  get source(): string | undefined {
    return this.path;
  }
}
