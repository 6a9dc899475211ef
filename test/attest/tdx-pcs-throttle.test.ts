/**
 * PCS 429 + Retry-After over HTTP (issue #12's acceptance), on the embedded store and on Redis:
 *  - a long Retry-After is passed on to the agent (503 + that Retry-After, audit PCS_UNAVAILABLE)
 *    and honoured: the agent's retry inside it gets 503 again WITHOUT tas asking PCS again, and the
 *    nonce is kept (it is neither claimed nor burnt: the retry is not NONCE_INVALID);
 *  - a short Retry-After is waited out inside the request: released, PCS asked exactly twice.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeIntel } from '../support/fake-intel';
import { FakePcs } from '../support/fake-pcs';
import { startPlain } from '../support/redis';
import { agentKeys, createLab, decryptReply, getNonce, getSecret, policyDoc, reportData, SECRET, storePolicy, type Lab } from '../support/lab';

const MR_TD = Buffer.alloc(48, 0x3c);
const RULES = { tcb: { update: 'standard', platform_tcb: 'UpToDate', tdx_module_tcb: 'UpToDate', qe_tcb: 'UpToDate' }, body: { mr_td: MR_TD.toString('hex') } };

for (const backend of ['embedded', 'redis'] as const) {
  describe(`attest: PCS 429 + Retry-After over HTTP (${backend} store)`, function () {
    this.timeout(120_000);
    let kit: FakeIntel;
    let trustDir: string;
    let pcs: FakePcs;
    let lab: Lab | undefined;
    let stopRedis: (() => Promise<void>) | undefined;
    let redisUrl: string | undefined;

    before(async () => {
      kit = FakeIntel.create();
      trustDir = mkdtempSync(join(tmpdir(), 'tas-tdx-429-'));
      kit.writeTrustDir(trustDir);
      if (backend === 'redis') {
        const r = await startPlain();
        stopRedis = () => r.stop();
        redisUrl = r.url;
      }
    });
    after(async () => {
      await stopRedis?.();
      rmSync(trustDir, { recursive: true, force: true });
    });
    beforeEach(async () => {
      pcs = await new FakePcs().start();
      pcs.serveCollateral({ fmspc: kit.sgx.fmspc, ...kit.collateral() });
      lab = await createLab({
        products: ['Genoa'],
        env: {
          TAS_PCS_BASE_URL: pcs.url, TAS_PCS_ROOT_CRL_URL: pcs.rootCrlUrl, TAS_TDX_EXTRA_TRUST_DIR: trustDir,
          ...(redisUrl ? { TAS_STORE: 'redis', TAS_REDIS_URL: redisUrl, TAS_REDIS_KEY_PREFIX: `t429${Date.now()}:` } : {}),
        },
      });
      assert.equal((await storePolicy(lab, policyDoc('tdx-429', RULES, { policy_type: 'TDX' }))).status, 201);
    });
    afterEach(async () => {
      await lab?.close();
      lab = undefined;
      await pcs.stop();
    });

    const send = (nonce: string, keys: ReturnType<typeof agentKeys>, q: Buffer) => getSecret(lab!, { nonce, report: q, keys, policyId: 'tdx-429', teeType: 'intel-tdx' });
    const tcbPath = () => `/tdx/certification/v4/tcb?fmspc=${kit.sgx.fmspc.toUpperCase()}&update=standard`;

    it('a long Retry-After is passed on and honoured (PCS not asked again inside it); the nonce is kept', async () => {
      pcs.fault('/tdx/certification/v4/tcb', { status: 429, retryAfter: '120' });
      const keys = agentKeys();
      const nonce = await getNonce(lab!);
      const q = kit.quote({ reportData: reportData(nonce, keys.wire, true), mrTd: MR_TD });
      const r = await send(nonce, keys, q);
      assert.equal(r.status, 503, JSON.stringify(r.body));
      assert.deepEqual(r.body, { error: 'TEE verification unavailable' });
      const ra = Number(r.headers.get('retry-after'));
      assert.ok(ra >= 118 && ra <= 120, `Retry-After ${ra}`);
      const rec = lab!.daemon.audit.records.filter((x) => x.event === 'get_secret').at(-1)!;
      assert.equal(rec.reason, 'PCS_UNAVAILABLE');
      assert.match(JSON.stringify(rec.details), /HTTP 429, Retry-After 120/);
      assert.equal(pcs.total(tcbPath()), 1);

      const again = await send(nonce, keys, q);
      assert.equal(again.status, 503, 'same nonce: still unavailable, not NONCE_INVALID');
      assert.ok(Number(again.headers.get('retry-after')) <= ra);
      assert.equal(pcs.total(tcbPath()), 1, 'PCS was not asked again before its Retry-After');
    });

    it('a short Retry-After is waited out inside the request: released, PCS asked exactly twice', async () => {
      pcs.fault('/tdx/certification/v4/tcb', { status: 429, retryAfter: '1', times: 1 });
      const keys = agentKeys();
      const nonce = await getNonce(lab!);
      const r = await send(nonce, keys, kit.quote({ reportData: reportData(nonce, keys.wire, true), mrTd: MR_TD }));
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(decryptReply(r.body, keys), SECRET);
      assert.equal(pcs.total(tcbPath()), 2);
    });
  });
}
