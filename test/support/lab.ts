/**
 * The attestation lab: everything a get_secret needs, built for one test file — a temp state dir,
 * fake AMD chains for Milan/Genoa/Turin (their roots trusted explicitly through
 * TAS_SNP_EXTRA_TRUST_DIR), a fake KDS serving their VCEKs, cert_chains and CRLs, a policy-signing
 * key (TAS_POLICY_TRUST), the mock key broker with a known secret, and an in-process daemon built by
 * the real composition (src/daemon/assemble). Clients follow the agent's protocol (quoted nonce,
 * PKCS#1 wrapping key, REPORT_DATA binding) and decrypt the reply with an independent decryptor.
 */
import { createHash, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assemble, type Handles } from '../../src/daemon/assemble';
import { signPolicy } from '../../src/policy';
import { vcekPath, certChainPath, crlPath } from '../../src/kds';
import { DEFAULT_TCB, FakeAmd, type Product } from './fake-amd';
import { FakeKds } from './fake-kds';
import { CLIENT_KEY, MGMT_KEY, startTestDaemon, type TestDaemon } from './daemon';
import { agentDecrypt } from '../kbm/agent-decrypt';

// 48 bytes: SoftHSM 2.6.1 releases only multiples of 8 bytes (docs/plugins.md), and the lab serves every broker.
export const SECRET = 'correct horse battery staple: disk passphrase #1';
export const KEY_ID = 'disk-key-1';

export interface Lab {
  dir: string;
  kits: Record<Product, FakeAmd>;
  kds: FakeKds;
  daemon: TestDaemon;
  handles: Handles;
  policyKey: KeyObject;
  env: Record<string, string>;
  close(): Promise<void>;
}

export interface LabOptions {
  env?: Record<string, string>;
  products?: Product[];
  /** Serve VCEKs from the fake KDS (default true). */
  kdsVceks?: boolean;
  /** Reply form of the mock key broker (default aes-gcm). */
  kbmForm?: 'aes-gcm' | 'aes-kwp';
}

/** createLab builds the lab and starts the daemon. */
export async function createLab(opts: LabOptions = {}): Promise<Lab> {
  const dir = mkdtempSync(join(tmpdir(), 'tas-lab-'));
  const products = opts.products ?? (['Milan', 'Genoa', 'Turin'] as Product[]);
  const kits = {} as Record<Product, FakeAmd>;
  const kds = await new FakeKds().start();
  const trustDir = join(dir, 'snp-trust');
  for (const p of products) {
    const kit = await FakeAmd.create({ product: p });
    kits[p] = kit;
    await kit.writeTrustDir(trustDir);
    writeFileSync(join(trustDir, `ask-${p}.pem`), kit.askPem);
    writeFileSync(join(trustDir, `asvk-${p}.pem`), kit.asvkPem);
    if (opts.kdsVceks !== false) kds.serve(vcekPath(p, kit.chipId, tcbOf(kit)), kit.vcekDer());
    kds.serve(certChainPath(p, 'VCEK'), kit.certChainPem('VCEK'), 'application/x-pem-file');
    kds.serve(certChainPath(p, 'VLEK'), kit.certChainPem('VLEK'), 'application/x-pem-file');
    const now = Date.now();
    kds.serve(crlPath(p, 'VCEK'), kit.crlDer({ thisUpdate: new Date(now - 3600_000), nextUpdate: new Date(now + 7 * 86400_000) }));
    kds.serve(crlPath(p, 'VLEK'), kit.crlDer({ thisUpdate: new Date(now - 3600_000), nextUpdate: new Date(now + 7 * 86400_000) }));
  }
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 3072 });
  writeFileSync(join(dir, 'policy-signer.pem'), publicKey.export({ type: 'spki', format: 'pem' }));
  writeFileSync(join(dir, 'kbm.yaml'), `form: ${opts.kbmForm ?? 'aes-gcm'}\nsecrets:\n  ${KEY_ID}:\n    value_utf8: "${SECRET}"\n  other-key:\n    value_utf8: "not for you"\n`);
  const env: Record<string, string> = {
    TAS_STATE_DIR: join(dir, 'state'),
    TAS_KBM_CONFIG_FILE: join(dir, 'kbm.yaml'),
    TAS_POLICY_TRUST: join(dir, 'policy-signer.pem'),
    TAS_SNP_EXTRA_TRUST_DIR: trustDir,
    TAS_KDS_BASE_URL: kds.url,
    TAS_CLIENT_RATE_LIMIT: '100000/minute',
    ...opts.env,
  };
  const asm = await assemble(undefined as never);
  const daemon = await startTestDaemon(env, { services: asm.services, configure: asm.configure });
  return {
    dir, kits, kds, daemon, handles: asm.handles(), policyKey: privateKey, env,
    async close() {
      await daemon.close();
      await kds.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** tcbOf returns the default REPORTED_TCB of a kit's reports, decoded by product. */
export function tcbOf(kit: FakeAmd): { bootloader: number; tee: number; snp: number; microcode: number; fmc?: number } {
  return DEFAULT_TCB[kit.product];
}

/** policyDoc makes a policy document (unsigned). */
export function policyDoc(id: string, rules: Record<string, unknown> = { vmpl: { exact_match: 0 }, policy: { debug_allowed: false } }, metadata: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    metadata: { name: `policy ${id}`, version: '1.0', description: 'lab', policy_type: 'SEV', policy_id: id, key_id: KEY_ID, ...metadata },
    validation_rules: rules,
  };
}

/** storePolicy signs (PSS, JCS whole document) and stores a policy through the management route. */
export async function storePolicy(lab: Lab, doc: Record<string, unknown>, opts: { sign?: boolean } = {}): Promise<Response> {
  const body = opts.sign === false ? doc : signPolicy(doc, lab.policyKey);
  return fetch(`${lab.daemon.urls.main}/management/policy/v0/store`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-management-api-key': MGMT_KEY },
    body: JSON.stringify(body),
  });
}

/** getNonce calls get_nonce with the client key. */
export async function getNonce(lab: Lab): Promise<string> {
  const r = await fetch(`${lab.daemon.urls.main}/kb/v0/get_nonce`, { headers: { 'x-api-key': CLIENT_KEY } });
  if (r.status !== 200) throw new Error(`get_nonce: ${r.status} ${await r.text()}`);
  return ((await r.json()) as { nonce: string }).nonce;
}

/** AgentKeys is the agent's RSA-2048 wrapping key pair; `wire` is the PKCS#1 RSAPublicKey DER it sends. */
export interface AgentKeys {
  privateKey: KeyObject;
  wire: Buffer;
}

export function agentKeys(): AgentKeys {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { privateKey, wire: publicKey.export({ type: 'pkcs1', format: 'der' }) };
}

/** reportData computes REPORT_DATA as the agent does (binding) or the first dialect does. */
export function reportData(nonce: string, wire: Buffer, binding: boolean, componentHashes?: Buffer): Buffer {
  if (!binding) return Buffer.from(nonce, 'ascii');
  const h = createHash('sha512').update(Buffer.from(nonce, 'ascii')).update(wire);
  if (componentHashes) h.update(componentHashes);
  return h.digest();
}

export interface SecretRequest {
  nonce: string;
  report: Buffer;
  keys: AgentKeys;
  policyId?: string;
  keyId?: string;
  binding?: boolean;
  certificates?: Buffer;
  teeType?: string;
  /** `component-evidence` exactly as the agent sends it (PROTOCOL.md §2.1). */
  components?: unknown;
}

/** agentBody is the agent's get_secret body: quoted nonce, compact JSON, its member order. */
export function agentBody(r: SecretRequest): string {
  const body: Record<string, unknown> = {};
  if (r.components !== undefined) body['component-evidence'] = r.components;
  body.nonce = JSON.stringify(r.nonce);
  if (r.policyId !== undefined) body['policy-id'] = r.policyId;
  if (r.keyId !== undefined) body['key-id'] = r.keyId;
  body['report-data-binding'] = r.binding ?? true;
  if (r.certificates) body['tee-certificates'] = r.certificates.toString('base64');
  body['tee-evidence'] = r.report.toString('base64');
  body['tee-type'] = r.teeType ?? 'amd-sev-snp';
  body['wrapping-key'] = r.keys.wire.toString('base64');
  return JSON.stringify(body);
}

/** getSecret sends agentBody(r) with the client key. */
export async function getSecret(lab: Lab, r: SecretRequest): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const res = await fetch(`${lab.daemon.urls.main}/kb/v0/get_secret`, {
    method: 'POST',
    headers: { 'x-api-key': CLIENT_KEY, 'content-type': 'application/json', accept: '*/*' },
    body: agentBody(r),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, headers: res.headers };
}

/** decryptReply decrypts a 200 reply the agent's way and returns the secret text. */
export function decryptReply(body: Record<string, unknown>, keys: AgentKeys): string {
  const d = agentDecrypt(body.secret_key as never, keys.privateKey);
  return Buffer.from(d.secret).toString('utf8');
}
