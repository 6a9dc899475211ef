/**
 * The booted-system test's client side. The test runs this with the host's node and tsx inside the
 * container's network namespace only (`nsenter -t <container pid> -n`), so it reaches the container's
 * loopback (tas.socket on 127.0.0.1:5000, the fake KDS on 127.0.0.1:18080) while reading and writing
 * files through the container's root folder on the host.
 *
 *   drive.ts kds ROOT WORK     fake AMD trust dir -> ROOT/etc/tas/test-snp-trust, policy signer public
 *                              key -> ROOT/etc/tas/policy-trust.pem (private key in WORK), then serve
 *                              a fake KDS on 127.0.0.1:18080 until killed; prints "ready" when serving.
 *   drive.ts attest ROOT WORK POLICY_ID [MGMT_PORT]
 *                              store a signed policy (management key from ROOT/etc/tas), get a nonce,
 *                              sign a bound report with the fake AMD signer, get_secret, decrypt; prints
 *                              one JSON line {stored, status, secret}.
 *   drive.ts status ROOT PORT  GET /management/status on 127.0.0.1:PORT; prints the HTTP status.
 */
import { createPrivateKey } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent } from 'undici';
import { certChainPath, crlPath, vcekPath } from '../../src/kds';
import { signPolicy } from '../../src/policy';
import { FakeAmd } from '../support/fake-amd';
import { FakeKds } from '../support/fake-kds';
import { agentKeys, decryptReply, policyDoc, reportData, tcbOf } from '../support/lab';
import { generateKeyPairSync } from 'node:crypto';

export const KDS_PORT = 18080;
const PRODUCT = 'Genoa';

async function kds(root: string, work: string): Promise<void> {
  const kit = await FakeAmd.create({ product: PRODUCT });
  const trust = join(root, 'etc/tas/test-snp-trust');
  await kit.writeTrustDir(trust);
  // As test/support/lab.ts does: the fake ASK/ASVK next to the fake ARK.
  writeFileSync(join(trust, `ask-${PRODUCT}.pem`), kit.askPem);
  writeFileSync(join(trust, `asvk-${PRODUCT}.pem`), kit.asvkPem);
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 3072 });
  writeFileSync(join(root, 'etc/tas/policy-trust.pem'), publicKey.export({ type: 'spki', format: 'pem' }));
  writeFileSync(join(work, 'policy-signer.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  const server = new FakeKds();
  server.serve(vcekPath(PRODUCT, kit.chipId, tcbOf(kit)), kit.vcekDer());
  server.serve(certChainPath(PRODUCT, 'VCEK'), kit.certChainPem('VCEK'), 'application/x-pem-file');
  const now = Date.now();
  server.serve(crlPath(PRODUCT, 'VCEK'), kit.crlDer({ thisUpdate: new Date(now - 3600_000), nextUpdate: new Date(now + 7 * 86400_000) }));
  await server.start(KDS_PORT);
  process.stdout.write('ready\n');
  process.on('SIGTERM', () => void server.stop().then(() => process.exit(0)));
}

async function attest(root: string, work: string, policyId: string, mgmtPort = '5000'): Promise<void> {
  const kit = await FakeAmd.create({ product: PRODUCT });
  const key = (f: string): string => readFileSync(join(root, 'etc/tas', f), 'utf8').split('\n')[0]!.trim();
  const dispatcher = new Agent({ connect: { ca: readFileSync(join(root, 'etc/tas/tls.crt')), servername: 'localhost' } });
  const base = 'https://127.0.0.1:5000';
  const call = async (path: string, init: { method?: string; headers: Record<string, string>; body?: string }): Promise<{ status: number; body: Record<string, unknown> }> => {
    const r = await fetch(path.startsWith('https:') ? path : `${base}${path}`, { ...init, dispatcher } as RequestInit);
    const text = await r.text();
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(text) as Record<string, unknown>;
    } catch {
      body = { text };
    }
    return { status: r.status, body };
  };
  const signer = createPrivateKey(readFileSync(join(work, 'policy-signer.key')));
  const stored = await call(`https://127.0.0.1:${mgmtPort}/management/policy/v0/store`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-management-api-key': key('management-api-key') },
    body: JSON.stringify(signPolicy(policyDoc(policyId), signer)),
  });
  const n = await call('/kb/v0/get_nonce', { headers: { 'x-api-key': key('api-key') } });
  if (n.status !== 200) throw new Error(`get_nonce: ${n.status} ${JSON.stringify(n.body)}`);
  const nonce = n.body.nonce as string;
  const keys = agentKeys();
  const report = kit.signReport({ reportData: reportData(nonce, keys.wire, true) });
  const s = await call('/kb/v0/get_secret', {
    method: 'POST',
    headers: { 'x-api-key': key('api-key'), 'content-type': 'application/json', accept: '*/*' },
    body: JSON.stringify({
      nonce: JSON.stringify(nonce),
      'policy-id': policyId,
      'report-data-binding': true,
      'tee-evidence': report.toString('base64'),
      'tee-type': 'amd-sev-snp',
      'wrapping-key': keys.wire.toString('base64'),
    }),
  });
  const secret = s.status === 200 ? decryptReply(s.body, keys) : undefined;
  process.stdout.write(`${JSON.stringify({ stored: stored.status, storedBody: stored.body, status: s.status, body: s.status === 200 ? undefined : s.body, secret })}\n`);
  await dispatcher.close();
}

/** status: GET /management/status on 127.0.0.1:PORT with the management key; prints the HTTP status. */
async function status(root: string, port: string): Promise<void> {
  const dispatcher = new Agent({ connect: { ca: readFileSync(join(root, 'etc/tas/tls.crt')), servername: 'localhost' } });
  const key = readFileSync(join(root, 'etc/tas/management-api-key'), 'utf8').split('\n')[0]!.trim();
  const r = await fetch(`https://127.0.0.1:${port}/management/status`, { headers: { 'x-management-api-key': key }, dispatcher } as RequestInit);
  await r.arrayBuffer();
  process.stdout.write(`${r.status}\n`);
  await dispatcher.close();
}

const [cmd, root, work, policyId, mgmtPort] = process.argv.slice(2);
const run =
  cmd === 'kds' ? kds(root!, work!)
  : cmd === 'attest' ? attest(root!, work!, policyId!, mgmtPort)
  : cmd === 'status' ? status(root!, work!)
  : Promise.reject(new Error(`unknown command ${cmd}`));
run.catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
