/**
 * certify test helpers: CSRs made by the openssl command line (an implementation independent of
 * tas's DER code), the agent's REPORT_DATA for a CSR key, a certify client, and `openssl verify` /
 * `openssl x509 -text` on what tas issued.
 */
import { execFileSync } from 'node:child_process';
import { createHash, createPublicKey } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLIENT_KEY } from './daemon';

const WORK = mkdtempSync(join(tmpdir(), 'tas-certify-'));
let n = 0;

/** AgentCsr is one CSR with its key (PEM files on disk) and the agent's binding bytes. */
export interface AgentCsr {
  readonly keyFile: string;
  readonly der: Buffer;
  readonly pem: string;
  /** PKCS#1 RSAPublicKey DER for RSA, SPKI DER otherwise (what the agent hashes). */
  readonly bindingKey: Buffer;
}

export type KeySpec = 'ec-p256' | 'ec-p384' | 'ec-p521' | 'rsa-2048' | 'rsa-3072' | 'ed25519';

/** newKey writes a private key made by openssl. */
export function newKey(spec: KeySpec): string {
  const f = join(WORK, `k${n++}.pem`);
  const args: Record<KeySpec, string[]> = {
    'ec-p256': ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'],
    'ec-p384': ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384'],
    'ec-p521': ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-521'],
    'rsa-2048': ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'],
    'rsa-3072': ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:3072'],
    ed25519: ['-algorithm', 'ED25519'],
  };
  execFileSync('openssl', ['genpkey', ...args[spec], '-out', f], { stdio: 'pipe' });
  return f;
}

/** makeCsr signs a CSR with openssl req (subject and extensions as given). */
export function makeCsr(keyFile: string, opts: { subj?: string; sans?: string; addext?: string[]; digest?: string } = {}): AgentCsr {
  const out = join(WORK, `r${n++}.pem`);
  const args = ['req', '-new', '-key', keyFile, '-subj', opts.subj ?? '/CN=web-1.example', '-out', out];
  if (opts.digest) args.push(`-${opts.digest}`);
  if (opts.sans) args.push('-addext', `subjectAltName=${opts.sans}`);
  for (const a of opts.addext ?? []) args.push('-addext', a);
  execFileSync('openssl', args, { stdio: 'pipe' });
  const pem = readFileSync(out, 'latin1');
  const der = execFileSync('openssl', ['req', '-in', out, '-outform', 'DER'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const pub = createPublicKey(readFileSync(keyFile));
  const bindingKey = pub.asymmetricKeyType === 'rsa' ? pub.export({ type: 'pkcs1', format: 'der' }) : pub.export({ type: 'spki', format: 'der' });
  return { keyFile, der, pem, bindingKey };
}

/** bindingReportData is the agent's REPORT_DATA: SHA-512(nonce ‖ key DER). */
export function bindingReportData(nonce: string, key: Buffer): Buffer {
  return createHash('sha512').update(Buffer.from(nonce, 'ascii')).update(key).digest();
}

export interface CertifyCall {
  nonce: string;
  evidence: Buffer;
  teeType?: string;
  csr: Buffer | string;
  domain: string;
  renew?: string;
  certificates?: Buffer;
  extra?: Record<string, unknown>;
}

/** postCertify sends a certify request the way the agent does (quoted nonce, base64 PEM CSR). */
export async function postCertify(base: string, c: CertifyCall): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const body: Record<string, unknown> = {
    'tee-type': c.teeType ?? 'amd-sev-snp',
    nonce: JSON.stringify(c.nonce),
    'tee-evidence': c.evidence.toString('base64'),
    csr: Buffer.from(c.csr).toString('base64'),
    'policy-domain': c.domain,
    ...(c.renew ? { renew_cert: c.renew } : {}),
    ...(c.certificates ? { 'tee-certificates': c.certificates.toString('base64') } : {}),
    ...c.extra,
  };
  const r = await fetch(`${base}/alphav1/certify`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': CLIENT_KEY }, body: JSON.stringify(body) });
  return { status: r.status, body: (await r.json()) as Record<string, unknown>, headers: r.headers };
}

/** alphaNonce calls GET /alphav1/nonce. */
export async function alphaNonce(base: string): Promise<string> {
  const r = await fetch(`${base}/alphav1/nonce`, { headers: { 'x-api-key': CLIENT_KEY } });
  if (r.status !== 200) throw new Error(`alphav1/nonce: ${r.status} ${await r.text()}`);
  return ((await r.json()) as { nonce: string }).nonce;
}

/** splitPem returns the PEM certificates of a bundle in order. */
export function splitPem(bundle: string): string[] {
  return bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g) ?? [];
}

/**
 * opensslVerify checks leaf against the bundle's root (trust anchor) with the bundle's other
 * certificates as untrusted intermediates, strict X.509 and TLS client and server purposes.
 * Returns openssl's output; throws with it when verification fails.
 */
export function opensslVerify(leafPem: string, bundle: string): string {
  const certs = splitPem(bundle);
  const root = join(WORK, `root${n++}.pem`);
  const inter = join(WORK, `inter${n++}.pem`);
  const leaf = join(WORK, `leaf${n++}.pem`);
  writeFileSync(root, certs[certs.length - 1]!);
  writeFileSync(inter, certs.slice(0, -1).join(''));
  writeFileSync(leaf, leafPem);
  let out = '';
  for (const purpose of ['sslclient', 'sslserver']) {
    out += execFileSync('openssl', ['verify', '-x509_strict', '-purpose', purpose, '-CAfile', root, '-untrusted', inter, leaf], { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
  }
  return out;
}

/** x509Text is `openssl x509 -text -noout` of a PEM certificate. */
export function x509Text(pem: string): string {
  const f = join(WORK, `t${n++}.pem`);
  writeFileSync(f, pem);
  return execFileSync('openssl', ['x509', '-in', f, '-text', '-noout'], { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
}

/** workDir is this process's scratch directory for certify files. */
export function workDir(): string {
  return WORK;
}
