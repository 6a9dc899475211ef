/**
 * `npm run demo`: tas working end to end on a laptop, no AMD hardware needed.
 *
 * It starts a real `tas serve` (embedded store, mock key broker) that trusts — explicitly, through
 * TAS_SNP_EXTRA_TRUST_DIR, and loudly — the root of a FAKE AMD signer; creates and signs a policy
 * with `tas policy keygen/sign`; plays a confidential VM: asks for a nonce, has the fake signer
 * produce a nonce-bound SEV-SNP report, runs the agent's protocol (quoted nonce, PKCS#1 wrapping
 * key, REPORT_DATA = SHA-512(nonce ‖ wrapping key)), and decrypts the released secret. Every step
 * is printed. Exit code 0 only when the decrypted secret is the one the key broker holds.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createDecipheriv, createHash, generateKeyPairSync, privateDecrypt, constants } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { crlPath, vcekPath } from '../../src/kds';
import { DEFAULT_TCB, FakeAmd } from '../support/fake-amd';
import { FakeKds } from '../support/fake-kds';

const ROOT = resolve(__dirname, '../..');
const MAIN = join(ROOT, 'src/main.ts');
const SECRET = 'demo disk passphrase: open sesame';
let step = 0;
const say = (title: string, detail = '') => console.log(`\n[${++step}] ${title}${detail ? `\n    ${detail.split('\n').join('\n    ')}` : ''}`);

function tas(args: string[], env: NodeJS.ProcessEnv = {}): string {
  const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], { env: { ...process.env, ...env }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tas ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout.trim();
}

async function waitReady(base: string, child: ChildProcess, out: () => string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`tas serve exited (${child.exitCode}):\n${out()}`);
    try {
      const r = await fetch(`${base}/readyz`);
      if (r.status === 200) return;
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`tas serve did not become ready:\n${out()}`);
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'tas-demo-'));
  const kds = await new FakeKds().start();
  let child: ChildProcess | undefined;
  try {
    say('A fake AMD signer (test-only ARK -> ASK -> VCEK for Genoa)', 'never trusted by tas unless a configuration says so; this demo says so explicitly');
    const kit = await FakeAmd.create({ product: 'Genoa' });
    const trustDir = join(dir, 'test-roots');
    await kit.writeTrustDir(trustDir);
    writeFileSync(join(trustDir, 'ask-genoa.pem'), kit.askPem);

    say('A fake AMD KDS serving the VCEK and an ARK-signed CRL', kds.url);
    kds.serve(vcekPath('Genoa', kit.chipId, DEFAULT_TCB.Genoa), kit.vcekDer());
    kds.serve(crlPath('Genoa', 'VCEK'), kit.crlDer({ thisUpdate: new Date(Date.now() - 3600_000), nextUpdate: new Date(Date.now() + 86400_000) }));

    say('API keys: tas keys generate', tas(['keys', 'generate', '--dir', join(dir, 'keys')]).split('\n')[0]);
    const clientKey = readFileSync(join(dir, 'keys', 'api-key'), 'utf8').trim().split('\n')[0]!;
    const mgmtKey = readFileSync(join(dir, 'keys', 'management-api-key'), 'utf8').trim().split('\n')[0]!;

    say('Policy-signing key: tas policy keygen');
    tas(['policy', 'keygen', '--out', join(dir, 'policy-signer')]);
    const policy = {
      metadata: { name: 'demo', version: '1.0', description: 'demo CVM', policy_type: 'SEV', policy_id: 'demo-policy', key_id: 'demo-disk-key' },
      validation_rules: { vmpl: { exact_match: 0 }, policy: { debug_allowed: false }, product: { allow_list: ['Genoa'] }, reported_tcb: { snp: { min_value: 20 } } },
    };
    writeFileSync(join(dir, 'policy.json'), JSON.stringify(policy, null, 2));
    tas(['policy', 'sign', join(dir, 'policy.json'), '--key', join(dir, 'policy-signer.key.pem')]);
    say('Signed policy (RSA-PSS SHA-384 over the RFC 8785 canonical document): tas policy sign', JSON.stringify(policy.validation_rules));

    writeFileSync(join(dir, 'kbm.yaml'), `secrets:\n  demo-disk-key:\n    value_utf8: "${SECRET}"\n`);
    const env = {
      TAS_API_KEY_FILE: join(dir, 'keys', 'api-key'),
      TAS_MANAGEMENT_API_KEY_FILE: join(dir, 'keys', 'management-api-key'),
      TAS_SERVER_HOST: '127.0.0.1',
      TAS_SERVER_PORT: '0',
      TAS_STATE_DIR: join(dir, 'state'),
      TAS_KBM_CONFIG_FILE: join(dir, 'kbm.yaml'),
      TAS_POLICY_TRUST: join(dir, 'policy-signer.pub.pem'),
      TAS_SNP_EXTRA_TRUST_DIR: trustDir,
      TAS_KDS_BASE_URL: kds.url,
      TAS_AUDIT_FILE: join(dir, 'audit.jsonl'),
    };
    say('tas serve (embedded store, mock key broker, fake root enabled through TAS_SNP_EXTRA_TRUST_DIR)');
    const portFile = join(dir, 'port');
    child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'serve'], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    let base = '';
    for (let i = 0; i < 300 && !base; i++) {
      const m = /"urls":\{"main":"(http:\/\/[^"]+)"/.exec(out);
      if (m) base = m[1]!;
      else if (child.exitCode !== null) throw new Error(`tas serve exited:\n${out}`);
      else await new Promise((r) => setTimeout(r, 100));
    }
    if (!base) throw new Error(`tas serve did not say where it listens:\n${out}`);
    void portFile;
    await waitReady(base, child, () => out);
    console.log(`    listening on ${base}; the log warns that test roots are enabled`);

    say('Operator stores the signed policy: POST /management/policy/v0/store');
    const signed = readFileSync(join(dir, 'policy.json'), 'utf8');
    const st = await fetch(`${base}/management/policy/v0/store`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-management-api-key': mgmtKey }, body: signed });
    console.log(`    ${st.status} ${await st.text()}`);
    if (st.status !== 201) throw new Error('policy not stored');

    say('The CVM boots. Agent: GET /version');
    const v = await fetch(`${base}/version`, { headers: { 'x-api-key': clientKey } });
    console.log(`    ${v.status} ${await v.text()}`);

    say('Agent: GET /kb/v0/get_nonce');
    const { nonce } = (await (await fetch(`${base}/kb/v0/get_nonce`, { headers: { 'x-api-key': clientKey } })).json()) as { nonce: string };
    console.log(`    nonce ${nonce.slice(0, 16)}… (64 hex)`);

    say('Agent: fresh RSA-2048 wrapping key; REPORT_DATA = SHA-512(nonce ‖ PKCS#1 public key DER)');
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const wire = publicKey.export({ type: 'pkcs1', format: 'der' });
    const reportData = createHash('sha512').update(Buffer.from(nonce, 'ascii')).update(wire).digest();
    const report = kit.signReport({ reportData });
    console.log(`    SEV-SNP report v3, ${report.length} bytes, signed by the fake VCEK (ECDSA P-384)`);

    say('Agent: POST /kb/v0/get_secret (quoted nonce, policy-id, report-data-binding true)');
    const body = JSON.stringify({
      nonce: JSON.stringify(nonce), 'policy-id': 'demo-policy', 'report-data-binding': true,
      'tee-evidence': report.toString('base64'), 'tee-type': 'amd-sev-snp', 'wrapping-key': wire.toString('base64'),
    });
    const res = await fetch(`${base}/kb/v0/get_secret`, { method: 'POST', headers: { 'x-api-key': clientKey, 'content-type': 'application/json', accept: '*/*' }, body });
    const reply = (await res.json()) as { secret_key?: Record<string, string>; error?: string };
    console.log(`    ${res.status} ${reply.error ?? Object.keys(reply.secret_key ?? {}).join(', ')}`);
    if (res.status !== 200 || !reply.secret_key) throw new Error(`get_secret refused: ${JSON.stringify(reply)}\n${out}`);

    say('Agent: unwrap the AES key (RSA-OAEP SHA-256), decrypt the secret (AES-256-GCM)');
    const sk = reply.secret_key;
    const aes = privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, Buffer.from(sk.wrapped_key!, 'base64'));
    const d = createDecipheriv('aes-256-gcm', aes, Buffer.from(sk.iv!, 'base64'));
    d.setAuthTag(Buffer.from(sk.tag!, 'base64'));
    const secret = Buffer.concat([d.update(Buffer.from(sk.blob!, 'base64')), d.final()]).toString('utf8');
    console.log(`    secret: ${secret}`);

    say('Replaying the same request: the nonce is spent');
    const again = await fetch(`${base}/kb/v0/get_secret`, { method: 'POST', headers: { 'x-api-key': clientKey, 'content-type': 'application/json' }, body });
    console.log(`    ${again.status} ${await again.text()}`);

    say('The audit trail: tas audit verify', tas(['audit', 'verify', join(dir, 'audit.jsonl')]).split('\n').slice(-1)[0]);
    if (secret !== SECRET) throw new Error('decrypted secret differs');
    console.log(`\ndemo: OK — the CVM decrypted the secret "${secret}"`);
  } finally {
    if (child && child.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child!.once('exit', r));
    }
    await kds.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(`demo: FAILED — ${(e as Error).message}`);
  process.exit(1);
});
