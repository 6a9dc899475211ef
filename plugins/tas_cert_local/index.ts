/**
 * tas_cert_local: the certificate signer for labs and tests. The issuing CA key is a PKCS#8 PEM
 * file on disk, NOT encrypted: anyone who reads it can mint workload identities. Production uses
 * tas_cert_pkcs11 (key inside an HSM). Configuration (YAML, TAS_CERT_CONFIG_FILE):
 *
 *   key_type: EC            # EC (P-384, ECDSA-SHA384) or RSA (RSA-PSS-SHA256)
 *   key_size: 3072          # RSA only, ≥ 3072
 *   root_key_file: /etc/tas/cert/root.key     # optional: absent = the root is kept offline
 *   root_cert_file: /etc/tas/cert/root.pem
 *   ca_key_file: /etc/tas/cert/ca.key
 *   ca_cert_file: /etc/tas/cert/ca.pem
 *
 * At open: when the CA files exist they are loaded (keys must not be readable by group or
 * others); when none exist and root_key_file is set, a root and an issuing CA are generated (lab
 * mode), under an exclusive lock file `.tas_cert_local.lock` next to ca_key_file, every file
 * created with O_EXCL and mode 0600 so that two starting daemons never mix two hierarchies; any
 * other partial set stops startup.
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { closeSync, constants as fsc, existsSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parsePluginDocument } from '../../src/config/plugin-doc';
import {
  CERT_API_VERSION, CertSignerError, makeIssuing, makeRoot, newCaKey, pem, signLocalAsync, suiteForKey, unpem, writeExclusive,
  type CaMaterial, type CertSigner, type CertSignerDeps, type CertSignerManifest, type CertSignerPlugin, type ProvisionRequest,
} from '../../src/cert';
import { viewCertificate } from '../../src/cert/profile';

const manifest: CertSignerManifest = Object.freeze({
  name: 'tas_cert_local',
  apiVersion: CERT_API_VERSION,
  description: 'CA key in a local file (labs and tests only: the key is not encrypted).',
});

export interface LocalConfig {
  readonly keyType: 'EC' | 'RSA';
  readonly keySize: number;
  readonly rootKeyFile: string | undefined;
  readonly rootCertFile: string;
  readonly caKeyFile: string;
  readonly caCertFile: string;
}

const MEMBERS = new Set(['key_type', 'key_size', 'root_key_file', 'root_cert_file', 'ca_key_file', 'ca_cert_file']);

function fail(msg: string): CertSignerError {
  return new CertSignerError('config', `tas_cert_local: ${msg}`);
}

/** parseLocalConfig validates the YAML document. */
export function parseLocalConfig(text: string, file: string): LocalConfig {
  const { doc: d, str, need } = parsePluginDocument(text, file, MEMBERS, (m) => fail(`${file}: ${m}`), { stringKind: 'a file path' });
  const keyType = d.key_type ?? 'EC';
  if (keyType !== 'EC' && keyType !== 'RSA') throw fail(`${file}: key_type must be EC or RSA`);
  const keySize = d.key_size ?? 3072;
  if (typeof keySize !== 'number' || !Number.isSafeInteger(keySize) || keySize < 3072 || keySize > 8192) throw fail(`${file}: key_size must be 3072..8192`);
  return { keyType, keySize, rootKeyFile: str('root_key_file'), rootCertFile: need('root_cert_file'), caKeyFile: need('ca_key_file'), caCertFile: need('ca_cert_file') };
}

function readKey(file: string): KeyObject {
  const st = statSync(file);
  if (st.mode & 0o077) throw fail(`${file} is readable or writable by group or others (mode ${(st.mode & 0o777).toString(8)}): chmod 600`);
  try {
    return createPrivateKey(readFileSync(file));
  } catch (e) {
    throw fail(`${file}: not a PEM private key: ${(e as Error).message}`);
  }
}

function readCert(file: string): Buffer {
  const blocks = unpem(readFileSync(file, 'latin1'), 'CERTIFICATE');
  if (blocks.length !== 1) throw fail(`${file} must hold exactly one PEM certificate (holds ${blocks.length})`);
  return blocks[0]!;
}

/** withLock runs fn holding `.tas_cert_local.lock` (O_EXCL) in dir. */
function withLock<T>(dir: string, fn: () => T): T {
  const lock = join(dir, '.tas_cert_local.lock');
  let fd: number;
  try {
    fd = openSync(lock, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600);
  } catch (e) {
    throw fail(`${lock} exists: another process is creating the CA (remove it if none is): ${(e as NodeJS.ErrnoException).code ?? ''}`);
  }
  try {
    writeSync(fd, `${process.pid}\n`);
    return fn();
  } finally {
    closeSync(fd);
    unlinkSync(lock);
  }
}

/** generateLab makes a root and an issuing CA and writes all four files. */
function generateLab(cfg: LocalConfig, log: CertSignerDeps['log']): void {
  withLock(dirname(cfg.caKeyFile), () => {
    const root = newCaKey(cfg.keyType, cfg.keySize);
    const rootDer = makeRoot(root.privateKey, 'tas lab root CA', 3650);
    const ca = newCaKey(cfg.keyType, cfg.keySize);
    const rootSpki = root.publicKey.export({ type: 'spki', format: 'der' });
    const caDer = makeIssuing({ key: root.privateKey, cert: rootDer, subject: viewCertificate(rootDer).subject, spki: rootSpki }, ca.publicKey.export({ type: 'spki', format: 'der' }), 'tas lab issuing CA', 365);
    writeExclusive(cfg.rootKeyFile!, root.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
    writeExclusive(cfg.rootCertFile, pem('CERTIFICATE', rootDer));
    writeExclusive(cfg.caKeyFile, ca.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
    writeExclusive(cfg.caCertFile, pem('CERTIFICATE', caDer));
  });
  log.warn({ ca_key_file: cfg.caKeyFile }, 'tas_cert_local generated a lab CA hierarchy; its keys are unencrypted files (labs only)');
}

class LocalSigner implements CertSigner {
  readonly manifest = manifest;
  #closed = false;
  constructor(
    private readonly key: KeyObject,
    private readonly material: CaMaterial,
    private readonly cfg: LocalConfig,
  ) {}

  ca(): CaMaterial {
    return this.material;
  }

  async sign(tbs: Buffer): Promise<Buffer> {
    if (this.#closed) throw new CertSignerError('unavailable', 'signer closed');
    return signLocalAsync(this.material.suite, this.key, tbs);
  }

  async health(): Promise<{ ok: boolean; detail?: string }> {
    return this.#closed ? { ok: false, detail: 'closed' } : { ok: true };
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  async describe(): Promise<Record<string, unknown>> {
    return { key_location: 'file', ca_key_file: this.cfg.caKeyFile, root_key_online: this.cfg.rootKeyFile !== undefined && existsSync(this.cfg.rootKeyFile), suite: this.material.suite };
  }
}

function loadConfig(configFile: string | undefined): LocalConfig {
  if (!configFile) throw fail('TAS_CERT_CONFIG_FILE is required (root_cert_file, ca_key_file, ca_cert_file)');
  let text: string;
  try {
    text = readFileSync(configFile, 'utf8');
  } catch (e) {
    throw fail(`cannot read ${configFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parseLocalConfig(text, configFile);
}

/** openLocal opens (or, in lab mode, first creates) the CA. */
export async function openLocal(cfg: LocalConfig, deps: CertSignerDeps): Promise<CertSigner> {
  const files = [cfg.rootCertFile, cfg.caKeyFile, cfg.caCertFile, ...(cfg.rootKeyFile ? [cfg.rootKeyFile] : [])];
  const present = files.filter((f) => existsSync(f));
  if (present.length === 0) {
    if (!cfg.rootKeyFile) throw fail('no CA files exist and root_key_file is not set: create the CA with `tas cert ca init`');
    generateLab(cfg, deps.log);
  } else {
    const needed = [cfg.rootCertFile, cfg.caKeyFile, cfg.caCertFile];
    const missing = needed.filter((f) => !existsSync(f));
    if (missing.length) throw fail(`partial CA: ${missing.join(', ')} missing while ${present.join(', ')} exist (refusing to mix hierarchies)`);
  }
  const key = readKey(cfg.caKeyFile);
  if (cfg.rootKeyFile && existsSync(cfg.rootKeyFile)) readKey(cfg.rootKeyFile); // permissions and format of the online root key
  const caCert = readCert(cfg.caCertFile);
  const rootCert = readCert(cfg.rootCertFile);
  const suite = suiteForKey(createPublicKey(key));
  return new LocalSigner(key, { caCert, chain: [rootCert], suite }, cfg);
}

export const plugin: CertSignerPlugin = {
  manifest,
  async open(configFile: string | undefined, deps: CertSignerDeps): Promise<CertSigner> {
    return openLocal(loadConfig(configFile), deps);
  },
  async provision(configFile: string | undefined, _deps: CertSignerDeps, req: ProvisionRequest): Promise<Record<string, unknown>> {
    const cfg = loadConfig(configFile);
    for (const f of [cfg.caKeyFile, cfg.caCertFile]) if (existsSync(f)) throw fail(`${f} exists: refusing to replace an issuing CA`);
    const ca = newCaKey(req.keyType, req.keySize);
    const spki = ca.publicKey.export({ type: 'spki', format: 'der' });
    const { caCert, chain } = await req.certify(spki, suiteForKey(ca.publicKey));
    writeExclusive(cfg.caKeyFile, ca.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
    writeExclusive(cfg.caCertFile, pem('CERTIFICATE', caCert));
    if (!existsSync(cfg.rootCertFile)) writeExclusive(cfg.rootCertFile, pem('CERTIFICATE', chain[chain.length - 1]!));
    return { key_location: 'file', ca_key_file: cfg.caKeyFile, ca_cert_file: cfg.caCertFile, root_cert_file: cfg.rootCertFile };
  },
};

export default plugin;
