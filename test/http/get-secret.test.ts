import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeBase64Strict, parseGetSecretRequest } from '../../src/http';
import { TasError } from '../../src/errors';
import { CLIENT_KEY, NONCE, RecordingAttester, SECRET, clientHeaders, makeApp, validBody, type TestEdge } from './helpers';

const FIXTURES = join(__dirname, 'fixtures');

function refusal(fn: () => unknown): TasError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof TasError, String(e));
    return e;
  }
  assert.fail('expected a refusal');
}

describe('http: get_secret request parsing', () => {
  it('accepts the real agent body byte for byte (quoted nonce, member order) and hands the decoded request to the attester', async () => {
    const ex = JSON.parse(readFileSync(join(FIXTURES, 'agent-ok-03-get_secret.json'), 'utf8'));
    const att = new RecordingAttester();
    const t = await makeApp({ TAS_API_KEY: ex.request.headers[0][1] }, { attester: att });
    try {
      const headers = Object.fromEntries((ex.request.headers as string[][]).filter(([n]) => n !== 'host'));
      const r = await t.app.inject({ method: 'POST', url: ex.request.target, headers, payload: Buffer.from(ex.request.body_base64, 'base64') });
      assert.equal(r.statusCode, 200, r.body);
      assert.deepEqual(r.json(), { secret_key: SECRET });
      const { req, ctx } = att.calls[0]!;
      assert.equal(req.nonce, ex.request.decoded.nonce_unquoted);
      assert.equal(req.teeType, 'amd-sev-snp');
      assert.equal(req.evidence.length, 1184);
      assert.equal(req.wrappingKey.length, 270);
      assert.equal(req.policyId, 'sev-local-001');
      assert.equal(req.keyId, undefined);
      assert.equal(req.reportDataBinding, true);
      assert.equal(req.certificates, undefined);
      assert.equal(ctx.clientAddress, '127.0.0.1');
    } finally {
      await t.app.close();
    }
  });

  it('strips exactly one pair of JSON quotes from the nonce', () => {
    assert.equal(parseGetSecretRequest(validBody({ nonce: NONCE })).nonce, NONCE);
    assert.equal(parseGetSecretRequest(validBody({ nonce: `"${NONCE}"` })).nonce, NONCE);
    for (const bad of [`""${NONCE}""`, `"${NONCE}`, NONCE.toUpperCase(), NONCE.slice(2), `${NONCE}00`, `'${NONCE}'`, ' '.repeat(64)]) {
      const e = refusal(() => parseGetSecretRequest(validBody({ nonce: bad })));
      assert.equal(e.code, 'NONCE_FORMAT', bad);
      assert.equal(e.status, 400);
    }
  });

  it('key-id dialect, optional certificates, null optional fields, unknown fields ignored', () => {
    const r = parseGetSecretRequest(validBody({
      'policy-id': undefined, 'key-id': 'my-key-1', 'tee-certificates': Buffer.from('pem').toString('base64'),
      'report-data-binding': null, 'component-evidence': [{ any: 'thing' }], extra: 1,
    }));
    assert.equal(r.keyId, 'my-key-1');
    assert.equal(r.policyId, undefined);
    assert.equal(r.reportDataBinding, undefined);
    assert.equal(r.certificates?.toString(), 'pem');
  });

  it('wrong type of each field names that field', () => {
    const wrong: Array<[string, unknown]> = [
      ['tee-type', 5], ['tee-type', null], ['nonce', 12], ['nonce', [NONCE]], ['tee-evidence', 123], ['tee-evidence', { a: 1 }],
      ['wrapping-key', true], ['tee-certificates', 7], ['policy-id', 42], ['report-data-binding', 'true'], ['report-data-binding', 1],
    ];
    for (const [field, value] of wrong) {
      const e = refusal(() => parseGetSecretRequest(validBody({ [field]: value })));
      assert.equal(e.status, 400, field);
      if (field === 'nonce') assert.equal(e.code, 'HTTP_FIELD_INVALID');
      assert.match(e.detail, new RegExp(field), `${field}: ${e.detail}`);
      if (e.code === 'HTTP_FIELD_INVALID') assert.equal(e.wireText, `Invalid or missing field '${field}'`);
    }
    assert.equal(refusal(() => parseGetSecretRequest(validBody({ 'key-id': 9, 'policy-id': undefined }))).params.field, 'key-id');
  });

  it('missing fields, both or neither of policy-id/key-id, bad ids and unknown tee-type', () => {
    for (const f of ['tee-type', 'nonce', 'tee-evidence', 'wrapping-key']) {
      const e = refusal(() => parseGetSecretRequest(validBody({ [f]: undefined })));
      assert.equal(e.status, 400, f);
    }
    assert.match(refusal(() => parseGetSecretRequest(validBody({ 'key-id': 'k' }))).detail, /not both/);
    assert.match(refusal(() => parseGetSecretRequest(validBody({ 'policy-id': undefined }))).detail, /required/);
    for (const id of ['', 'a/b', '../x', 'x'.repeat(129), 'caf\u00e9', 'a b', 'a\u0000b', 'policy:x']) {
      assert.equal(refusal(() => parseGetSecretRequest(validBody({ 'policy-id': id }))).code, 'POLICY_ID_INVALID', JSON.stringify(id));
      assert.equal(refusal(() => parseGetSecretRequest(validBody({ 'policy-id': undefined, 'key-id': id }))).params.field, 'key-id');
    }
    assert.equal(refusal(() => parseGetSecretRequest(validBody({ 'tee-type': 'sgx' }))).code, 'TEE_TYPE_UNSUPPORTED');
    for (const body of [null, [], 'str', 5, undefined]) assert.equal(refusal(() => parseGetSecretRequest(body)).status, 400);
  });

  it('strict base64: alphabet, padding, canonical bits, size bound', () => {
    assert.deepEqual(decodeBase64Strict('f', 'YWJj', 10), Buffer.from('abc'));
    assert.deepEqual(decodeBase64Strict('f', 'YWI=', 10), Buffer.from('ab'));
    for (const bad of ['YWJ', 'YW=j', 'YWI', 'Y WJj', 'YWJj\n', 'YW-_', 'YWJ=', 'YWI==', '====', 'YWJj====', 'YWJ\u00e9', 'YWJ\u0000']) {
      assert.throws(() => decodeBase64Strict('f', bad, 100), (e: TasError) => e.code === 'HTTP_FIELD_INVALID', JSON.stringify(bad));
    }
    // The message names what is wrong: the alphabet or padding, or bits a canonical encoder leaves zero.
    for (const [bad, why] of [['YWJ', /alphabet or padding/], ['YW-_', /alphabet or padding/], ['YWJj\n', /alphabet or padding/], ['YWJ=', /non-zero trailing bits/], ['YR==', /non-zero trailing bits/]] as const) {
      assert.throws(() => decodeBase64Strict('f', bad, 100), (e: TasError) => why.test(e.detail), JSON.stringify(bad));
    }
    assert.throws(() => decodeBase64Strict('f', 'YWI=', 1), /longer than 1 bytes/);
    assert.throws(() => decodeBase64Strict('f', '', 10), /empty/);
    // a huge field is refused before decoding
    assert.throws(() => decodeBase64Strict('tee-evidence', 'A'.repeat(1 << 20), 16384), /longer than/);
  });
});

describe('http: get_secret route', () => {
  let t: TestEdge;
  before(async () => { t = await makeApp(); });
  after(() => t.app.close());
  const post = (payload: unknown, headers: Record<string, string> = {}) =>
    t.app.inject({ method: 'POST', url: '/kb/v0/get_secret', headers: { ...clientHeaders, 'content-type': 'application/json', ...headers }, payload: typeof payload === 'string' ? payload : JSON.stringify(payload) });

  it('without a verifier: amd-sev-snp is 503 TEE verification unavailable + Retry-After, intel-tdx is 400', async () => {
    const r = await post(validBody());
    assert.equal(r.statusCode, 503);
    assert.deepEqual(r.json(), { error: 'TEE verification unavailable' });
    assert.ok(Number(r.headers['retry-after']) >= 1);
    const tdx = await post(validBody({ 'tee-type': 'intel-tdx' }));
    assert.equal(tdx.statusCode, 400);
    assert.deepEqual(tdx.json(), { error: 'Unsupported TEE type' });
  });

  it('wrong types reach the wire as 400 naming the field; the value is never logged', async () => {
    const r = await post(validBody({ 'wrapping-key': 12345 }));
    assert.equal(r.statusCode, 400);
    assert.deepEqual(r.json(), { error: "Invalid or missing field 'wrapping-key'" });
    const n = await post(validBody({ nonce: 'zz-secret-nonce-value' }));
    assert.deepEqual(n.json(), { error: 'Invalid nonce format' });
    assert.ok(!JSON.stringify(t.logLines).includes('zz-secret-nonce-value'));
    const rec = t.audit.records.find((x) => x.event === 'get_secret' && x.details?.field === 'wrapping-key');
    assert.ok(rec, 'edge refusals are audited');
    assert.equal(rec.outcome, 'deny');
    assert.equal(rec.reason, 'REQUEST_FIELD_INVALID');
    assert.ok(t.audit.records.some((x) => x.event === 'get_secret' && x.reason === 'NONCE_FORMAT'));
    assert.ok(!JSON.stringify(t.audit.records).includes('zz-secret-nonce-value'));
    assert.ok(!JSON.stringify(t.logLines).includes(CLIENT_KEY));
  });
});
