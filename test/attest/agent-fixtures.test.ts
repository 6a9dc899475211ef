/**
 * Interoperability with the real agent: the exchanges recorded from `tas_agent` talking to the
 * upstream TAS (test/fixtures/agent-fixtures) are replayed byte for byte against tas — same request
 * line, header names/order/case and body bytes. The recorded nonce is seeded as issued, the
 * fixture's fake ARKs are trusted explicitly (TAS_SNP_EXTRA_TRUST_DIR), VCEKs come from a fake KDS,
 * the recorded signed policy is stored through the management route.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { assemble, type Handles } from '../../src/daemon/assemble';
import { vcekPath, crlPath, certChainPath } from '../../src/kds';
import { FakeKds } from '../support/fake-kds';
import { MGMT_KEY, startTestDaemon, type TestDaemon } from '../support/daemon';

const FIX = resolve(__dirname, '../fixtures/agent-fixtures');
const CLIENT_KEY = 'fixture-client-key-71522a715872ecea3b9ddb6ab8b5924a35b3f1fef8700c604e0eb1749db4936d';

interface Exchange {
  request: { method: string; target: string; headers: Array<[string, string]>; body_base64?: string; decoded?: { nonce_unquoted: string } };
  response_recorded_from_upstream: { status: number };
  server_must: string;
}

const load = (f: string): Exchange => JSON.parse(readFileSync(join(FIX, 'exchanges', f), 'utf8')) as Exchange;

function replay(base: string, ex: Exchange): Promise<{ status: number; body: Record<string, unknown> }> {
  const u = new URL(base);
  const body = ex.request.body_base64 ? Buffer.from(ex.request.body_base64, 'base64') : undefined;
  // Same header lines in the same order and case; `host` is the recording proxy's, so ours is sent.
  const raw: string[] = [];
  for (const [k, v] of ex.request.headers) raw.push(k, k.toLowerCase() === 'host' ? u.host : v);
  return new Promise((res, rej) => {
    const req = request({ host: u.hostname, port: u.port, method: ex.request.method, path: ex.request.target, headers: raw, setHost: false }, (r) => {
      const chunks: Buffer[] = [];
      r.on('data', (c: Buffer) => chunks.push(c));
      r.on('end', () => res({ status: r.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString() || '{}') as Record<string, unknown> }));
    });
    req.on('error', rej);
    req.end(body);
  });
}

// The fixtures ship their fake ARKs alone (ark-trust/), as TAS_SNP_EXTRA_TRUST_DIR's description
// says: the ASK then comes from the fake KDS cert_chain, verified to that ARK (issue #14, finding 6).
// The second run also puts each chain's ASK in the directory.
for (const withAsk of [false, true]) describe(`attest: replay of the real agent (tas_agent) recordings, trust dir with ${withAsk ? 'ARKs and ASKs' : 'ARKs only'}`, function () {
  this.timeout(60_000);
  let dir: string;
  let kds: FakeKds;
  let daemon: TestDaemon;
  let handles: Handles;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tas-agentfix-'));
    kds = await new FakeKds().start();
    const trust = join(dir, 'trust');
    mkdirSync(trust);
    for (const chain of ['chain', 'chain-milan', 'chain-turin']) {
      const params = JSON.parse(readFileSync(join(FIX, chain, 'params.json'), 'utf8')) as { product: 'Milan' | 'Genoa' | 'Turin'; chip_id: string; reported_tcb: { bootloader: number; tee: number; snp: number; microcode: number; fmc?: number } };
      if (withAsk) {
        copyFileSync(join(FIX, chain, 'ark.pem'), join(trust, `${chain}-ark.pem`));
        copyFileSync(join(FIX, chain, 'ask.pem'), join(trust, `${chain}-ask.pem`));
      }
      kds.serve(vcekPath(params.product, Buffer.from(params.chip_id, 'hex'), params.reported_tcb), readFileSync(join(FIX, chain, 'vcek.der')));
      kds.serve(certChainPath(params.product, 'VCEK'), readFileSync(join(FIX, chain, 'cert_chain.pem')));
      kds.serve(crlPath(params.product, 'VCEK'), readFileSync(join(FIX, chain, 'crl.der')));
    }
    if (!withAsk) for (const f of readdirSync(join(FIX, 'ark-trust'))) copyFileSync(join(FIX, 'ark-trust', f), join(trust, f));
    writeFileSync(join(dir, 'kbm.yaml'), 'secrets:\n  my-key-1:\n    value_utf8: "0xdeadbeef"\n');
    const asm = await assemble(undefined as never);
    daemon = await startTestDaemon(
      {
        TAS_API_KEY: CLIENT_KEY,
        TAS_STATE_DIR: join(dir, 'state'),
        TAS_KBM_CONFIG_FILE: join(dir, 'kbm.yaml'),
        TAS_POLICY_TRUST: join(FIX, 'policy-trust'),
        TAS_SNP_EXTRA_TRUST_DIR: trust,
        TAS_KDS_BASE_URL: kds.url,
      },
      { services: asm.services, configure: asm.configure },
    );
    handles = asm.handles();
    const policy = (JSON.parse(readFileSync(join(FIX, 'policy.json'), 'utf8')) as { signed_policy: unknown }).signed_policy;
    const r = await fetch(`${daemon.urls.main}/management/policy/v0/store`, {
      method: 'POST', headers: { 'content-type': 'application/json', 'x-management-api-key': MGMT_KEY }, body: JSON.stringify(policy),
    });
    assert.equal(r.status, 201, await r.text());
  });
  after(async () => {
    await daemon?.close();
    await kds?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const seed = async (ex: Exchange) => {
    const n = ex.request.decoded!.nonce_unquoted;
    assert.equal(await handles.store.issue(n, 120_000, 1000), 'issued');
  };

  for (const run of ['ok', 'ok-milan', 'ok-turin']) {
    it(`${run}: version, get_nonce and get_secret answer as the agent expects (200 secret_key)`, async () => {
      const v = await replay(daemon.urls.main, load(`${run}-01-version.json`));
      assert.equal(v.status, 200);
      assert.equal(typeof v.body.version, 'string');
      const n = await replay(daemon.urls.main, load(`${run}-02-get_nonce.json`));
      assert.equal(n.status, 200);
      assert.match(String(n.body.nonce), /^[0-9a-f]{64}$/);
      const ex = load(`${run}-03-get_secret.json`);
      await seed(ex);
      const s = await replay(daemon.urls.main, ex);
      assert.equal(s.status, ex.response_recorded_from_upstream.status, JSON.stringify(s.body));
      const sk = s.body.secret_key as Record<string, string>;
      assert.equal(Buffer.from(sk.wrapped_key!, 'base64').length, 256);
      assert.equal(Buffer.from(sk.blob!, 'base64').length, 10);
      assert.equal(Buffer.from(sk.iv!, 'base64').length, 12);
      assert.equal(Buffer.from(sk.tag!, 'base64').length, 16);
    });
  }

  it('nonce-reuse: the ok request sent again is 401 Invalid or expired nonce', async () => {
    const s = await replay(daemon.urls.main, load('nonce-reuse-01-get_secret.json'));
    assert.equal(s.status, 401);
    assert.deepEqual(s.body, { error: 'Invalid or expired nonce' });
  });

  for (const [run, reason] of [['bad-signature', 'SNP_ERR_REPORT_SIGNATURE'], ['bad-report-data', 'REPORT_DATA_MISMATCH'], ['bad-measurement', 'POLICY_RULES_FAILED']] as const) {
    it(`${run}: 400 TEE verification failed, the nonce consumed, the audit record says ${reason}`, async () => {
      const ex = load(`${run}-03-get_secret.json`);
      await seed(ex);
      const s = await replay(daemon.urls.main, ex);
      assert.equal(s.status, 400);
      assert.deepEqual(s.body, { error: 'TEE verification failed' });
      assert.equal(daemon.audit.records.filter((r) => r.event === 'get_secret').at(-1)!.reason, reason);
      // consumed: the same request again is a nonce refusal or the same verification refusal, never a release
      assert.equal(await handles.store.claim(ex.request.decoded!.nonce_unquoted, 'probe', 1000), 'invalid');
    });
  }

  it('wrong-api-key: 401 Unauthorized', async () => {
    const s = await replay(daemon.urls.main, load('wrong-api-key-01-version.json'));
    assert.equal(s.status, 401);
    assert.deepEqual(s.body, { error: 'Unauthorized' });
  });

  it('every recorded exchange was replayed', () => {
    const files = readdirSync(join(FIX, 'exchanges'));
    assert.equal(files.length, 20);
  });
});
