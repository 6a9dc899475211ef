/**
 * Every refusal of get_secret over HTTP, with the protocol's status and text and EXACTLY ONE audit
 * record naming the precise reason: replayed, expired and unknown nonce; wrong REPORT_DATA; wrong
 * wrapping key for the binding; tampered report; wrong product root; policy rule failure; unsigned,
 * tampered and rules-only-signed policies; key not bound; TDX evidence; malformed evidence.
 */
import assert from 'node:assert/strict';
import { signPolicy } from '../../src/policy';
import { MGMT_KEY } from '../support/daemon';
import { agentKeys, createLab, getNonce, getSecret, KEY_ID, policyDoc, reportData, storePolicy, type AgentKeys, type Lab, type SecretRequest } from '../support/lab';

describe('attest: refusals, each with its status, text and one audit record', function () {
  this.timeout(120_000);
  let lab: Lab;
  let keys: AgentKeys;
  before(async () => {
    lab = await createLab({ products: ['Genoa', 'Milan'] });
    keys = agentKeys();
    assert.equal((await storePolicy(lab, policyDoc('good'))).status, 201);
    assert.equal((await storePolicy(lab, policyDoc('strict', { measurement: { exact_match: 'ab'.repeat(48) }, vmpl: { max_value: 0 }, guest_svn: { min_value: 9 } }))).status, 201);
    assert.equal((await storePolicy(lab, policyDoc('other-key', undefined, { key_id: 'other-key' }))).status, 201);
    // A rules-only signature, the first dialect's way, through the first-dialect route.
    const legacy = signPolicy(policyDoc('legacy', undefined, { key_id: 'legacy-key' }), lab.policyKey, { legacyRulesOnly: true });
    const r = await fetch(`${lab.daemon.urls.main}/policy/v0/store`, {
      method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': MGMT_KEY },
      body: JSON.stringify({ policy_type: 'SNP', policy_identifier: 'legacy', key_id: 'legacy-key', policy: legacy }),
    });
    assert.equal(r.status, 201, await r.text());
  });
  after(async () => lab?.close());

  /** attempt sends one request and returns the reply and the audit records it produced. */
  async function attempt(req: Omit<SecretRequest, 'keys'> & { keys?: AgentKeys }) {
    const before = lab.daemon.audit.records.filter((x) => x.event === 'get_secret').length;
    const r = await getSecret(lab, { keys, ...req });
    const recs = lab.daemon.audit.records.filter((x) => x.event === 'get_secret').slice(before);
    return { ...r, recs };
  }
  async function good(product: 'Genoa' | 'Milan' = 'Genoa', binding = true) {
    const nonce = await getNonce(lab);
    return { nonce, report: lab.kits[product].signReport({ reportData: reportData(nonce, keys.wire, binding) }) };
  }
  function expect(r: Awaited<ReturnType<typeof attempt>>, status: number, text: string, reason: string) {
    assert.equal(r.status, status, JSON.stringify(r.body));
    assert.deepEqual(r.body, { error: text });
    assert.equal(r.recs.length, 1, `exactly one audit record, got ${r.recs.length}`);
    assert.equal(r.recs[0]!.reason, reason);
    assert.notEqual(r.recs[0]!.outcome, 'allow');
  }

  it('replayed nonce: 401 Invalid or expired nonce', async () => {
    const g = await good();
    assert.equal((await attempt({ ...g, policyId: 'good' })).status, 200);
    expect(await attempt({ ...g, policyId: 'good' }), 401, 'Invalid or expired nonce', 'NONCE_INVALID');
  });

  it('unknown nonce: 401', async () => {
    const nonce = 'f'.repeat(64);
    const report = lab.kits.Genoa.signReport({ reportData: reportData(nonce, keys.wire, true) });
    expect(await attempt({ nonce, report, policyId: 'good' }), 401, 'Invalid or expired nonce', 'NONCE_INVALID');
  });

  it('expired nonce: 401', async () => {
    const nonce = 'e'.repeat(64);
    assert.equal(await lab.handles.store.issue(nonce, 50, 1000), 'issued');
    await new Promise((r) => setTimeout(r, 120));
    const report = lab.kits.Genoa.signReport({ reportData: reportData(nonce, keys.wire, true) });
    expect(await attempt({ nonce, report, policyId: 'good' }), 401, 'Invalid or expired nonce', 'NONCE_INVALID');
  });

  it('wrong REPORT_DATA (nonce not bound) and a wrapping key other than the bound one: 400', async () => {
    const nonce = await getNonce(lab);
    const report = lab.kits.Genoa.signReport({ reportData: Buffer.alloc(64, 7) });
    expect(await attempt({ nonce, report, policyId: 'good' }), 400, 'TEE verification failed', 'REPORT_DATA_MISMATCH');
    const g = await good();
    expect(await attempt({ ...g, keys: agentKeys(), policyId: 'good' }), 400, 'TEE verification failed', 'REPORT_DATA_MISMATCH');
  });

  it('tampered report (a signed byte flipped): 400 with the signature reason', async () => {
    const g = await good();
    g.report[0x90] ^= 0x01; // MEASUREMENT
    expect(await attempt({ ...g, policyId: 'good' }), 400, 'TEE verification failed', 'SNP_ERR_REPORT_SIGNATURE');
  });

  it('wrong product root: a Genoa report with a VCEK under the Milan chain is refused', async () => {
    const g = await good('Genoa');
    const milanVcek = lab.kits.Milan.vcekDer({ chipId: lab.kits.Genoa.chipId });
    const pem = Buffer.from(`-----BEGIN CERTIFICATE-----\n${milanVcek.toString('base64')}\n-----END CERTIFICATE-----\n`);
    const r = await attempt({ ...g, policyId: 'good', certificates: pem });
    assert.equal(r.status, 400);
    assert.deepEqual(r.body, { error: 'TEE verification failed' });
    assert.equal(r.recs.length, 1);
    assert.match(r.recs[0]!.reason, /^SNP_ERR_/);
  });

  it('policy rule failure: 400, every failed rule in the one audit record', async () => {
    const g = await good();
    const r = await attempt({ ...g, policyId: 'strict' });
    expect(r, 400, 'TEE verification failed', 'POLICY_RULES_FAILED');
    const failures = (r.recs[0]!.details as { failures: string[] }).failures;
    assert.equal(failures.length, 2, failures.join(' | ')); // measurement and guest_svn (vmpl passes)
  });

  it('unsigned and tampered policies are refused at store time', async () => {
    const un = await storePolicy(lab, policyDoc('unsigned'), { sign: false });
    assert.equal(un.status, 400);
    const signed = signPolicy(policyDoc('tampered'), lab.policyKey) as { metadata: { key_id: string } };
    signed.metadata.key_id = 'other-key';
    const t = await fetch(`${lab.daemon.urls.main}/management/policy/v0/store`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-management-api-key': MGMT_KEY }, body: JSON.stringify(signed) });
    assert.equal(t.status, 400);
  });

  it('a policy tampered in the store after it was accepted is refused at use', async () => {
    const doc = signPolicy(policyDoc('edited-later'), lab.policyKey) as { metadata: { key_id: string } };
    doc.metadata.key_id = 'other-key'; // rebind the key behind tas's back
    assert.equal(await lab.handles.store.putPolicy('edited-later', JSON.stringify(doc)), 'created');
    const g = await good();
    const r = await attempt({ ...g, policyId: 'edited-later' });
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.equal(r.recs.length, 1);
    assert.match(r.recs[0]!.reason, /SIGNATURE/);
  });

  it('a rules-only-signed policy never releases its key (binding not signed)', async () => {
    const g = await good('Genoa', false);
    const r = await attempt({ ...g, keyId: 'legacy-key', binding: false });
    assert.equal(r.status, 404, JSON.stringify(r.body));
    assert.deepEqual(r.body, { error: 'Secret retrieval failed' });
    assert.equal(r.recs.length, 1);
    assert.equal(r.recs[0]!.reason, 'KEY_BINDING_UNSIGNED');
  });

  it('key not bound by any policy (key-id dialect): 404 Secret retrieval failed', async () => {
    const g = await good('Genoa', false);
    expect(await attempt({ ...g, keyId: 'nobody-binds-this', binding: false }), 404, 'Secret retrieval failed', 'KEY_NOT_BOUND');
  });

  it('the key-id dialect releases only the key the passing policy binds', async () => {
    const g = await good('Genoa', false);
    const r = await attempt({ ...g, keyId: KEY_ID, binding: false });
    assert.equal(r.status, 200);
    assert.equal((r.recs[0]!.details as { key_id: string }).key_id, KEY_ID);
  });

  it('an SNP report sent as intel-tdx: 400 from the TDX verifier and an audit reason', async () => {
    const g = await good();
    expect(await attempt({ ...g, policyId: 'good', teeType: 'intel-tdx' }), 400, 'TEE verification failed', 'TDX_ERR_HEADER');
  });

  it('malformed evidence (short, wrong version, unsigned tail) is 400, never 500, and keeps the nonce', async () => {
    const nonce = await getNonce(lab);
    const short = await attempt({ nonce, report: Buffer.alloc(1000), policyId: 'good' });
    assert.equal(short.status, 400);
    const v9 = lab.kits.Genoa.signReport({ reportData: reportData(nonce, keys.wire, true) });
    v9.writeUInt32LE(9, 0);
    const r9 = await attempt({ nonce, report: v9, policyId: 'good' });
    assert.equal(r9.status, 400);
    const tail = lab.kits.Genoa.signReport({ reportData: reportData(nonce, keys.wire, true) });
    tail[0x400] = 1;
    const rt = await attempt({ nonce, report: tail, policyId: 'good' });
    assert.equal(rt.status, 400);
    for (const r of [short, r9, rt]) assert.equal(r.recs.length <= 1, true);
    // the nonce is still good for a well-formed request
    const ok = await attempt({ nonce, report: lab.kits.Genoa.signReport({ reportData: reportData(nonce, keys.wire, true) }), policyId: 'good' });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
  });
});
