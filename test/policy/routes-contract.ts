/**
 * The policy routes contract (PROTOCOL.md §1 and §3.3): every route, status and error text, run
 * against whatever store backs the PolicyRepo. Call `policyRoutesContract(name, open)` from a
 * `*.test.ts` with a factory that returns an EMPTY repo each time (embedded store in a fresh
 * directory, Redis with a fresh key prefix, ...) and a close function.
 */
import assert from 'node:assert/strict';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { bodyLimit, managementAuth, policyAuth } from '../../src/http';
import { policyRouteModule, PolicyService, PolicyTrust, signPolicy, type PolicyRepo, type PolicySettings } from '../../src/policy';
import { CLIENT_KEY, MGMT_KEY, MemoryAudit, capturedLog } from '../support/daemon';
import { makeApp } from '../http/helpers';
import { doc, fixture, fixtureKey, signer } from './helpers';

export interface RepoHandle {
  readonly repo: PolicyRepo;
  close(): Promise<void>;
}

const M = { 'x-management-api-key': MGMT_KEY };
const FIRST_VIA_API_KEY = { 'x-api-key': MGMT_KEY };

interface Ctx {
  app: FastifyInstance;
  audit: MemoryAudit;
  settings: PolicySettings & { enforceSigned: boolean; allowUnsignedKeyBinding: boolean };
  handle: RepoHandle;
}

function json(r: LightMyRequestResponse): Record<string, unknown> {
  return JSON.parse(r.body) as Record<string, unknown>;
}

function expectError(r: LightMyRequestResponse, status: number, text: string): void {
  assert.equal(r.statusCode, status, r.body);
  assert.deepEqual(json(r), { error: text });
}

export function policyRoutesContract(name: string, open: () => Promise<RepoHandle>): void {
  describe(`policy routes contract (${name})`, function () {
    this.timeout(20_000);
    const a = signer('routes-A');
    let c: Ctx;

    beforeEach(async () => {
      const handle = await open();
      const audit = new MemoryAudit();
      const settings = { enforceSigned: true, allowUnsignedKeyBinding: false };
      const trust = new PolicyTrust([a.trusted, fixtureKey('agent-policy-signer.pem'), fixtureKey('python-signer.pem')]);
      const service = new PolicyService({ repo: handle.repo, trust, settings: () => settings, audit, log: capturedLog().log });
      const { app } = await makeApp({}, { routes: [policyRouteModule(service, { managementAuth, policyAuth, bodyLimit: bodyLimit.management })] });
      c = { app, audit, settings, handle };
    });
    afterEach(async () => {
      await c.app.close();
      await c.handle.close();
    });

    const post = (url: string, body: unknown, headers: Record<string, string> = M) =>
      c.app.inject({ method: 'POST', url, headers: { ...headers, 'content-type': 'application/json' }, payload: JSON.stringify(body) });
    const get = (url: string, headers: Record<string, string> = M) => c.app.inject({ method: 'GET', url, headers });
    const del = (url: string, headers: Record<string, string> = M) => c.app.inject({ method: 'DELETE', url, headers });

    describe('management routes', () => {
      it('store 201, get, list, delete 200, then 404 with the original texts', async () => {
        const d = signPolicy(doc('p1'), a.privateKey);
        const s = await post('/management/policy/v0/store', d);
        assert.equal(s.statusCode, 201, s.body);
        assert.deepEqual(json(s), { message: "Policy 'policy:p1' stored successfully" });

        const g = await get('/management/policy/v0/get/p1');
        assert.equal(g.statusCode, 200);
        assert.deepEqual(json(g), { policy_key: 'policy:p1', policy: d });

        const l = await get('/management/policy/v0/list');
        assert.equal(l.statusCode, 200);
        assert.deepEqual(json(l), {
          policies: [{ policy_id: 'p1', name: 'policy p1', policy_type: 'SEV', key_id: 'my-key-1', version: '1.0', description: 'test policy', signed: true }],
          count: 1,
        });

        const x = await del('/management/policy/v0/delete/p1');
        assert.equal(x.statusCode, 200);
        assert.deepEqual(json(x), { message: "Policy 'policy:p1' deleted successfully" });
        expectError(await get('/management/policy/v0/get/p1'), 404, "Policy 'policy:p1' not found");
        expectError(await del('/management/policy/v0/delete/p1'), 404, "Policy 'policy:p1' not found");
        assert.deepEqual(json(await get('/management/policy/v0/list')), { policies: [], count: 0 });
      });

      it('409 when the id exists (the first document stays)', async () => {
        const d = signPolicy(doc('dup'), a.privateKey);
        assert.equal((await post('/management/policy/v0/store', d)).statusCode, 201);
        const other = signPolicy(doc('dup', { key_id: 'other-key' }), a.privateKey);
        expectError(await post('/management/policy/v0/store', other), 409, "Policy 'policy:dup' already exists");
        assert.deepEqual(json(await get('/management/policy/v0/get/dup')).policy, d);
      });

      it('stores the agent-fixtures policy (genuine signature, PSS salt 48)', async () => {
        const f = fixture<{ signed_policy: Record<string, unknown> }>('agent-policy.json');
        const s = await post('/management/policy/v0/store', f.signed_policy);
        assert.equal(s.statusCode, 201, s.body);
        assert.deepEqual(json(s), { message: "Policy 'policy:sev-local-001' stored successfully" });
        assert.deepEqual(json(await get('/management/policy/v0/get/sev-local-001')).policy, f.signed_policy);
      });

      it('authentication: management key in X-MANAGEMENT-API-KEY only', async () => {
        expectError(await get('/management/policy/v0/list', {}), 401, 'Unauthorized');
        expectError(await get('/management/policy/v0/list', { 'x-management-api-key': CLIENT_KEY }), 401, 'Unauthorized');
        expectError(await get('/management/policy/v0/list', { 'x-api-key': MGMT_KEY }), 401, 'Unauthorized');
        expectError(await post('/management/policy/v0/store', signPolicy(doc('nope'), a.privateKey), { 'x-api-key': CLIENT_KEY }), 401, 'Unauthorized');
        expectError(await del('/management/policy/v0/delete/x', {}), 401, 'Unauthorized');
      });

      it('400 for ids outside ^[A-Za-z0-9_.-]{1,128}$ (path and body)', async () => {
        expectError(await get('/management/policy/v0/get/bad$id'), 400, 'Invalid policy id');
        expectError(await get(`/management/policy/v0/get/${'a'.repeat(129)}`), 400, 'Invalid policy id');
        expectError(await del('/management/policy/v0/delete/a%3Ab'), 400, 'Invalid policy id');
        expectError(await post('/management/policy/v0/store', signPolicy(doc('bad id'), a.privateKey)), 400, 'Invalid policy id');
        assert.equal((await get(`/management/policy/v0/get/${'a'.repeat(128)}`)).statusCode, 404);
      });

      it('refusals keep the original texts', async () => {
        const d = signPolicy(doc('r1'), a.privateKey);
        expectError(await post('/management/policy/v0/store', doc('r1')), 400, 'Unsigned policies are not allowed by configuration');
        const tampered = structuredClone(d) as { metadata: { key_id: string } };
        tampered.metadata.key_id = 'my-key-2';
        expectError(await post('/management/policy/v0/store', tampered), 400, 'Policy signature verification failed');
        const foreign = signPolicy(doc('r1'), signer('routes-untrusted').privateKey);
        expectError(await post('/management/policy/v0/store', foreign), 400, 'Policy signature verification failed');
        expectError(
          await post('/management/policy/v0/store', { ...d, signature: { ...(d.signature as object), signed_data: 'validation_rules' } }),
          400,
          "The 'signed_data' field in the signature object is deprecated and no longer supported. Please re-sign the policy so that the signature covers all top-level fields.",
        );
        expectError(await post('/management/policy/v0/store', { validation_rules: {} }), 400, "Policy must contain 'metadata' section");
        expectError(await post('/management/policy/v0/store', { metadata: {} }), 400, "Policy must contain 'validation_rules' section");
        expectError(await post('/management/policy/v0/store', [d]), 400, 'Policy must be a JSON object');
        expectError(await post('/management/policy/v0/store', signPolicy(doc('r2', { rules: { debug: false } }), a.privateKey)), 400, 'Invalid policy');
        const noKey = doc('r3') as { metadata: Record<string, unknown> };
        delete noKey.metadata.key_id;
        expectError(await post('/management/policy/v0/store', signPolicy(noKey, a.privateKey)), 400, 'Invalid policy');
        const r = await c.app.inject({ method: 'POST', url: '/management/policy/v0/store', headers: { ...M, 'content-type': 'application/json' }, payload: '{"metadata": ' });
        assert.equal(r.statusCode, 400);
        assert.deepEqual(json(await get('/management/policy/v0/list')), { policies: [], count: 0 });
      });

      it('a non-finite number (1e400) anywhere in the document is a 400 Invalid policy, signed or not, both dialects; nothing stored', async () => {
        const raw = (body: string) => c.app.inject({ method: 'POST', url: '/management/policy/v0/store', headers: { ...M, 'content-type': 'application/json' }, payload: body });
        const rawFirst = (body: string) => c.app.inject({ method: 'POST', url: '/policy/v0/store', headers: { ...M, 'content-type': 'application/json' }, payload: body });
        const d = signPolicy(doc('nf1', { rules: { vmpl: { max_value: 1 } } }), a.privateKey);
        const text = JSON.stringify(d);
        // Signed: a rule value, a negative one, one inside an array of an unknown member.
        for (const body of [text.replace('"max_value":1', '"max_value":1e400'), text.replace('"max_value":1', '"max_value":-1e400'), text.replace('"max_value":1', '"max_value":1,"x":[1e999]')]) {
          assert.notEqual(body, text);
          expectError(await raw(body), 400, 'Invalid policy');
        }
        c.settings.enforceSigned = false;
        expectError(await raw(JSON.stringify(doc('nf2')).replace('"validation_rules":{', '"validation_rules":{"guest_svn":{"min_value":1e400},')), 400, 'Invalid policy');
        const envelope = JSON.stringify({ policy_type: 'SNP', policy_identifier: 'nf3', policy: fixture('legacy-rules-only.json') });
        assert.ok(envelope.includes('"validation_rules":{'));
        expectError(await rawFirst(envelope.replace('"validation_rules":{', '"validation_rules":{"guest_svn":{"min_value":1e400},')), 400, 'Invalid policy');
        assert.deepEqual(json(await get('/management/policy/v0/list')), { policies: [], count: 0 });
        const reasons = c.audit.records.map((r) => r.reason);
        assert.ok(reasons.includes('POLICY_NUMBER_NOT_FINITE'), JSON.stringify(reasons));
      });

      it('unsigned policies are stored with a warning when TAS_ENFORCE_SIGNED_POLICIES=false', async () => {
        c.settings.enforceSigned = false;
        const s = await post('/management/policy/v0/store', doc('u1'));
        assert.equal(s.statusCode, 201);
        assert.deepEqual(json(s), { message: "Policy 'policy:u1' stored successfully", warning: 'WARNING: Policy is not signed and cannot be verified for integrity' });
        assert.equal((json(await get('/management/policy/v0/list')).policies as Array<{ signed: boolean }>)[0]!.signed, false);
      });

      it('413 beyond the 1 MiB management body limit', async () => {
        const big = doc('big', { rules: { measurement: { allow_list: Array.from({ length: 12_000 }, () => 'ab'.repeat(48)) } } });
        const r = await post('/management/policy/v0/store', big);
        assert.equal(r.statusCode, 413);
      });

      it('writes one audit record per store and delete, allowed or refused', async () => {
        await post('/management/policy/v0/store', signPolicy(doc('aud'), a.privateKey));
        await post('/management/policy/v0/store', doc('aud2'));
        await del('/management/policy/v0/delete/aud');
        await del('/management/policy/v0/delete/aud');
        const recs = c.audit.records.map((r) => [r.event, r.outcome, r.reason, (r.details as { policy_id?: string }).policy_id]);
        assert.deepEqual(recs, [
          ['policy.store', 'allow', 'POLICY_STORED', 'aud'],
          ['policy.store', 'deny', 'POLICY_UNSIGNED', 'aud2'],
          ['policy.delete', 'allow', 'POLICY_DELETED', 'aud'],
          ['policy.delete', 'deny', 'POLICY_NOT_FOUND', 'aud'],
        ]);
        assert.ok(c.audit.records.every((r) => typeof r.requestId === 'string' && typeof r.client === 'string'));
        assert.equal((c.audit.records[0]!.details as { signer: string }).signer, a.trusted.fingerprint);
      });
    });

    describe('first-dialect routes (§3.3)', () => {
      const legacy = () => fixture('legacy-rules-only.json');

      it('store, policy_identifier form: metadata filled, 201 text; get with the three key forms', async () => {
        const s = await post('/policy/v0/store', { policy_type: 'SNP', policy_identifier: 'fd1', policy: legacy() });
        assert.equal(s.statusCode, 201, s.body);
        assert.deepEqual(json(s), { message: "Policy 'policy:fd1' stored successfully" });
        assert.equal(s.headers.deprecation, 'true');
        for (const key of ['policy:SNP:fd1', 'policy:SEV:fd1', 'SEV:fd1', 'policy:fd1', 'fd1']) {
          const g = await get(`/policy/v0/get/${key}`);
          assert.equal(g.statusCode, 200, key);
          const body = json(g) as { policy_key: string; policy: { metadata: Record<string, unknown> } };
          assert.equal(body.policy_key, 'policy:fd1');
          assert.equal(body.policy.metadata.policy_id, 'fd1');
          assert.equal(body.policy.metadata.policy_type, 'SNP');
          assert.equal(body.policy.metadata.key_id, undefined);
        }
        expectError(await get('/policy/v0/get/policy:TDX:fd1'), 404, "Policy 'policy:fd1' not found");
        expectError(await get('/policy/v0/get/policy:XYZ:fd1'), 400, 'Invalid policy id');
        expectError(await get('/policy/v0/get/fd2'), 404, "Policy 'policy:fd2' not found");
      });

      it('store, key_id form: stored under the key id with key_id filled in', async () => {
        const s = await post('/policy/v0/store', { policy_type: 'SEV', key_id: 'my-key-1', policy: legacy() });
        assert.equal(s.statusCode, 201, s.body);
        assert.deepEqual(json(s), { message: "Policy 'policy:my-key-1' stored successfully" });
        const body = json(await get('/management/policy/v0/get/my-key-1')) as { policy: { metadata: Record<string, unknown> } };
        assert.deepEqual(
          { id: body.policy.metadata.policy_id, type: body.policy.metadata.policy_type, key: body.policy.metadata.key_id },
          { id: 'my-key-1', type: 'SEV', key: 'my-key-1' },
        );
      });

      it('a whole-document signed policy is accepted as well (metadata already filled)', async () => {
        const d = signPolicy(doc('fd-whole'), a.privateKey);
        const s = await post('/policy/v0/store', { policy_type: 'SEV', policy_identifier: 'fd-whole', policy: d });
        assert.equal(s.statusCode, 201, s.body);
        expectError(await post('/policy/v0/store', { policy_type: 'SEV', policy_identifier: 'other', policy: d }), 400, "Request must contain 'policy_type', 'policy' and either 'policy_identifier' or 'key_id'");
      });

      it('management key also accepted in X-API-KEY; client keys never', async () => {
        assert.equal((await post('/policy/v0/store', { policy_type: 'SNP', policy_identifier: 'k1', policy: legacy() }, FIRST_VIA_API_KEY)).statusCode, 201);
        assert.equal((await get('/policy/v0/list', FIRST_VIA_API_KEY)).statusCode, 200);
        expectError(await get('/policy/v0/list', { 'x-api-key': CLIENT_KEY }), 401, 'Unauthorized');
        expectError(await get('/policy/v0/get/k1', {}), 401, 'Unauthorized');
        expectError(await del('/policy/v0/delete/k1', { 'x-api-key': CLIENT_KEY }), 401, 'Unauthorized');
      });

      it('list shape, one namespace with the management routes', async () => {
        await post('/policy/v0/store', { policy_type: 'SNP', policy_identifier: 'a1', policy: legacy() });
        await post('/management/policy/v0/store', signPolicy(doc('b1'), a.privateKey));
        const l = json(await get('/policy/v0/list'));
        assert.deepEqual(l, {
          policies: [
            { policy_key: 'policy:a1', name: 'legacy rules-only', version: '1.0', description: 'signed like the first-dialect demo signer', signed: true },
            { policy_key: 'policy:b1', name: 'policy b1', version: '1.0', description: 'test policy', signed: true },
          ],
          count: 2,
        });
        expectError(await post('/policy/v0/store', { policy_type: 'SEV', policy_identifier: 'b1', policy: legacy() }), 409, "Policy 'policy:b1' already exists");
        assert.equal((json(await get('/management/policy/v0/list')) as { count: number }).count, 2);
      });

      it('delete with the three name forms', async () => {
        for (const id of ['d1', 'd2', 'd3']) await post('/policy/v0/store', { policy_type: 'SNP', policy_identifier: id, policy: legacy() });
        for (const [name, id] of [['SEV:d1', 'd1'], ['policy:d2', 'd2'], ['d3', 'd3']]) {
          const r = await del(`/policy/v0/delete/${name}`);
          assert.equal(r.statusCode, 200, name);
          assert.deepEqual(json(r), { message: `Policy 'policy:${id}' deleted successfully` });
        }
        expectError(await del('/policy/v0/delete/d1'), 404, "Policy 'policy:d1' not found");
        assert.deepEqual(json(await get('/policy/v0/list')), { policies: [], count: 0 });
        await post('/policy/v0/store', { policy_type: 'SNP', policy_identifier: 'd4', policy: legacy() });
        expectError(await del('/policy/v0/delete/TDX:d4'), 404, "Policy 'policy:d4' not found");
        expectError(await del('/policy/v0/delete/a:b:c'), 400, 'Invalid policy id');
      });

      it('rules-only signatures only through the first dialect; bad envelopes refused', async () => {
        const l = legacy();
        Object.assign(l.metadata as object, { policy_type: 'SEV', policy_id: 'lg', key_id: 'k' });
        expectError(
          await post('/management/policy/v0/store', l),
          400,
          "The 'signed_data' field in the signature object is deprecated and no longer supported. Please re-sign the policy so that the signature covers all top-level fields.",
        );
        const env = "Request must contain 'policy_type', 'policy' and either 'policy_identifier' or 'key_id'";
        expectError(await post('/policy/v0/store', { policy_identifier: 'x', policy: legacy() }), 400, env);
        expectError(await post('/policy/v0/store', { policy_type: 'SEV', policy: legacy() }), 400, env);
        expectError(await post('/policy/v0/store', { policy_type: 'SEV', policy_identifier: 'x' }), 400, env);
        expectError(await post('/policy/v0/store', { policy_type: 'SEV', policy_identifier: 'x', policy: l }), 400, env);
        expectError(await post('/policy/v0/store', { policy_type: 'SEV', policy_identifier: 'x y', policy: legacy() }), 400, 'Invalid policy id');
        expectError(await post('/policy/v0/store', 'x'), 400, env);
        const tampered = legacy() as { validation_rules: Record<string, unknown> };
        tampered.validation_rules.vmpl = { exact_match: 3 };
        expectError(await post('/policy/v0/store', { policy_type: 'SEV', policy_identifier: 'x', policy: tampered }), 400, 'Policy signature verification failed');
        assert.equal(c.audit.records.filter((r) => r.event === 'policy.store' && r.outcome === 'deny').length, 8);
      });
    });
  });
}
