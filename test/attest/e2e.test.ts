/**
 * get_secret end to end over HTTP: the real daemon composition (embedded store, mock broker, SNP
 * verifier on the native addon, KDS cache against a fake KDS), fresh nonce-bound reports from the
 * fake AMD signer for Milan, Genoa and Turin, VCEK and VLEK, both dialects, binding true and false.
 * Replies are decrypted by an independent client holding the wrapping key.
 */
import assert from 'node:assert/strict';
import { certChainPath, vcekPath } from '../../src/kds';
import { guidBytes, CERT_TABLE_GUIDS } from '../../src/kds/cert-table';
import { agentKeys, createLab, decryptReply, getNonce, getSecret, KEY_ID, policyDoc, reportData, SECRET, storePolicy, tcbOf, type Lab } from '../support/lab';
import type { Product } from '../support/fake-amd';
import { startPlain, type RedisNode } from '../support/redis';
import { agentDecrypt } from '../kbm/agent-decrypt';

function certTable(entries: Array<[string, Buffer]>): Buffer {
  const head = Buffer.alloc((entries.length + 1) * 24);
  const bodies: Buffer[] = [];
  let off = head.length;
  entries.forEach(([guid, der], i) => {
    guidBytes(guid).copy(head, i * 24);
    head.writeUInt32LE(off, i * 24 + 16);
    head.writeUInt32LE(der.length, i * 24 + 20);
    bodies.push(der);
    off += der.length;
  });
  return Buffer.concat([head, ...bodies]);
}

for (const backend of ['embedded', 'redis'] as const) describe(`attest: get_secret end to end (${backend} store, mock broker, fake KDS)`, function () {
  this.timeout(120_000);
  let lab: Lab;
  let redis: (RedisNode & { url: string }) | undefined;
  before(async () => {
    if (backend === 'redis') redis = await startPlain();
    lab = await createLab(redis ? { env: { TAS_STORE: 'redis', TAS_REDIS_URL: redis.url } } : {});
    assert.equal((await storePolicy(lab, policyDoc('p-all'))).status, 201);
  });
  after(async () => {
    await lab?.close();
    await redis?.stop();
  });

  for (const product of ['Milan', 'Genoa', 'Turin'] as Product[]) {
    it(`${product} VCEK from KDS: the reply decrypts to the secret`, async () => {
      const keys = agentKeys();
      const nonce = await getNonce(lab);
      const report = lab.kits[product].signReport({ reportData: reportData(nonce, keys.wire, true) });
      const r = await getSecret(lab, { nonce, report, keys, policyId: 'p-all' });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.deepEqual(Object.keys(r.body.secret_key as object).sort(), ['blob', 'iv', 'tag', 'wrapped_key']);
      assert.equal(decryptReply(r.body, keys), SECRET);
    });
  }

  it('fetches a VCEK once from KDS and then serves it from the cache', async () => {
    const kit = lab.kits.Genoa;
    const path = vcekPath('Genoa', kit.chipId, tcbOf(kit));
    const before = lab.kds.total(path.split('?')[0]);
    for (let i = 0; i < 3; i++) {
      const keys = agentKeys();
      const nonce = await getNonce(lab);
      const r = await getSecret(lab, { nonce, report: kit.signReport({ reportData: reportData(nonce, keys.wire, true) }), keys, policyId: 'p-all' });
      assert.equal(r.status, 200);
    }
    assert.ok(lab.kds.total(path.split('?')[0]) - before <= 0, 'no further KDS request for a cached VCEK');
  });

  it('VLEK through tee-certificates (extended-report certificate table)', async () => {
    const kit = lab.kits.Milan;
    const keys = agentKeys();
    const nonce = await getNonce(lab);
    const report = kit.signReport({ reportData: reportData(nonce, keys.wire, true), signingKey: 'VLEK', chipId: Buffer.alloc(64) });
    const table = certTable([[CERT_TABLE_GUIDS.VLEK, kit.vlekDer()], [CERT_TABLE_GUIDS.ASK, kit.asvkDer]]);
    const r = await getSecret(lab, { nonce, report, keys, policyId: 'p-all', certificates: table });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(decryptReply(r.body, keys), SECRET);
  });

  it('VCEK through tee-certificates as a PEM bundle, key-id dialect without binding', async () => {
    const kit = lab.kits.Turin;
    const keys = agentKeys();
    const nonce = await getNonce(lab);
    const report = kit.signReport({ reportData: reportData(nonce, keys.wire, false) });
    const pem = Buffer.from(`-----BEGIN CERTIFICATE-----\n${kit.vcekDer().toString('base64')}\n-----END CERTIFICATE-----\n${kit.askPem}`);
    const r = await getSecret(lab, { nonce, report, keys, keyId: KEY_ID, binding: false, certificates: pem });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(decryptReply(r.body, keys), SECRET);
  });

  it('replayed, unknown and wrong-REPORT_DATA requests are refused with the protocol texts', async () => {
    const kit = lab.kits.Genoa;
    const keys = agentKeys();
    const nonce = await getNonce(lab);
    const report = kit.signReport({ reportData: reportData(nonce, keys.wire, true) });
    assert.equal((await getSecret(lab, { nonce, report, keys, policyId: 'p-all' })).status, 200);
    const replay = await getSecret(lab, { nonce, report, keys, policyId: 'p-all' });
    assert.equal(replay.status, 401);
    assert.deepEqual(replay.body, { error: 'Invalid or expired nonce' });

    const n2 = await getNonce(lab);
    const other = agentKeys();
    const wrong = await getSecret(lab, { nonce: n2, report: kit.signReport({ reportData: reportData(n2, other.wire, true) }), keys, policyId: 'p-all' });
    assert.equal(wrong.status, 400);
    assert.deepEqual(wrong.body, { error: 'TEE verification failed' });
    const audit = lab.daemon.audit.records.filter((r) => r.event === 'get_secret');
    assert.equal(audit.at(-1)!.reason, 'REPORT_DATA_MISMATCH');
  });

  it('a policy rule failure lists every failed rule in the audit record', async () => {
    assert.equal((await storePolicy(lab, policyDoc('p-strict', { vmpl: { exact_match: 2 }, measurement: { exact_match: 'ab'.repeat(48) } }))).status, 201);
    const kit = lab.kits.Genoa;
    const keys = agentKeys();
    const nonce = await getNonce(lab);
    const r = await getSecret(lab, { nonce, report: kit.signReport({ reportData: reportData(nonce, keys.wire, true) }), keys, policyId: 'p-strict' });
    assert.equal(r.status, 400);
    const rec = lab.daemon.audit.records.filter((x) => x.event === 'get_secret').at(-1)!;
    assert.equal(rec.reason, 'POLICY_RULES_FAILED');
    const failures = (rec.details as { failures: string[] }).failures;
    assert.ok(failures.some((f) => f.includes('vmpl')) && failures.some((f) => f.includes('measurement')), failures.join('|'));
  });

  it('KDS down with nothing cached: 503 + Retry-After, and the same nonce succeeds once it is back', async () => {
    const kit = lab.kits.Milan;
    const chip = Buffer.alloc(64, 0x5a);
    const path = vcekPath('Milan', chip, tcbOf(kit));
    const keys = agentKeys();
    const nonce = await getNonce(lab);
    const report = kit.signReport({ reportData: reportData(nonce, keys.wire, true), chipId: chip });
    lab.kds.fault(path.split('?')[0]!, { status: 503, retryAfter: '1' });
    const down = await getSecret(lab, { nonce, report, keys, policyId: 'p-all' });
    assert.equal(down.status, 503);
    assert.ok(Number(down.headers.get('retry-after')) > 0);
    lab.kds.clearFaults();
    lab.kds.serve(path, kit.vcekDer({ chipId: chip }));
    // The fetcher spaces requests to one URL; the agent retries after Retry-After.
    const again = async () => getSecret(lab, { nonce, report, keys, policyId: 'p-all' });
    let r = await again();
    for (let i = 0; i < 60 && r.status === 503; i++) {
      await new Promise((res) => setTimeout(res, 500));
      r = await again();
    }
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(decryptReply(r.body, keys), SECRET);
  });

  it('a CRL that revokes the ASK refuses every report under it (400, SNP_ERR_REVOKED)', async () => {
    const kit = lab.kits.Genoa;
    const now = Date.now();
    const revoking = kit.crlDer({ thisUpdate: new Date(now - 3600_000), nextUpdate: new Date(now + 86400_000), revoked: [0x20002] });
    await lab.handles.store.putBlob('crl/Genoa/VCEK', revoking, 3600);
    lab.handles.cache.clearMemory();
    try {
      const keys = agentKeys();
      const nonce = await getNonce(lab);
      const r = await getSecret(lab, { nonce, report: kit.signReport({ reportData: reportData(nonce, keys.wire, true) }), keys, policyId: 'p-all' });
      assert.equal(r.status, 400);
      assert.equal(lab.daemon.audit.records.filter((x) => x.event === 'get_secret').at(-1)!.reason, 'SNP_ERR_REVOKED');
    } finally {
      await lab.handles.store.putBlob('crl/Genoa/VCEK', kit.crlDer({ thisUpdate: new Date(now - 3600_000), nextUpdate: new Date(now + 86400_000) }), 3600);
      lab.handles.cache.clearMemory();
    }
  });

  it('intel-tdx with evidence that is no TDX quote is 400 with the TDX verifier\'s reason; an unsigned policy is refused at store time', async () => {
    const keys = agentKeys();
    const nonce = await getNonce(lab);
    const r = await getSecret(lab, { nonce, report: Buffer.alloc(1184), keys, policyId: 'p-all', teeType: 'intel-tdx' });
    assert.equal(r.status, 400);
    assert.equal(lab.daemon.audit.records.filter((x) => x.event === 'get_secret').at(-1)!.reason, 'TDX_ERR_HEADER');
    const s = await storePolicy(lab, policyDoc('p-unsigned'), { sign: false });
    assert.equal(s.status, 400);
    void certChainPath;
  });
});

describe('attest: the AES-KWP reply form end to end', function () {
  this.timeout(60_000);
  it('a broker answering in RFC 5649 form: the agent-way client unwraps it', async () => {
    const lab = await createLab({ products: ['Genoa'], kbmForm: 'aes-kwp' });
    try {
      assert.equal((await storePolicy(lab, policyDoc('p'))).status, 201);
      const keys = agentKeys();
      const nonce = await getNonce(lab);
      const r = await getSecret(lab, { nonce, report: lab.kits.Genoa.signReport({ reportData: reportData(nonce, keys.wire, true) }), keys, policyId: 'p' });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      const sk = r.body.secret_key as Record<string, string>;
      assert.equal(Buffer.from(sk.algorithm!, 'base64').toString(), 'AES-KWP');
      assert.equal(sk.iv, '');
      assert.equal(sk.tag, '');
      const d = agentDecrypt(sk as never, keys.privateKey);
      assert.equal(d.form, 'aes-kwp');
      assert.equal(Buffer.from(d.secret).toString('utf8'), SECRET);
    } finally {
      await lab.close();
    }
  });
});
