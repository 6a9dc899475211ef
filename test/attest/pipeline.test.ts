/**
 * The pipeline's ordering rules with in-memory ports: what touches the nonce when, which status
 * each refusal gets, and exactly one audit record per request. End-to-end runs against the real
 * modules live in test/attest/e2e.test.ts.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Pipeline } from '../../src/attest/pipeline';
import type { AttestPorts, UsablePolicy } from '../../src/attest/ports';
import type { GetSecretRequest } from '../../src/attest/types';
import type { AuditEvent } from '../../src/audit/types';
import { TasError } from '../../src/errors';

const NONCE = 'ab'.repeat(32);
const WK = Buffer.from('wrapping-key-bytes');

type NonceState = 'issued' | 'claimed' | 'consumed';

function harness(over: Partial<{ verifyFails: boolean; kbm: 'ok' | 'down' | 'missing'; kds: 'ok' | 'down'; rulesOk: boolean; keyBindingSigned: boolean; policyType: 'SEV' | 'TDX' }> = {}) {
  const o = { verifyFails: false, kbm: 'ok', kds: 'ok', rulesOk: true, keyBindingSigned: true, policyType: 'SEV', ...over };
  const nonces = new Map<string, NonceState>([[NONCE, 'issued']]);
  const audit: AuditEvent[] = [];
  let brokerCalls = 0;
  const policy: UsablePolicy = { id: 'p1', keyId: 'k1', policyType: o.policyType as 'SEV', requireBinding: undefined, rules: {}, keyBindingSigned: o.keyBindingSigned };
  const ports: AttestPorts = {
    peek: (r) => {
      if (r.length !== 1184) throw new TasError('TEE_EVIDENCE_MALFORMED', 'size', { reason: 'SNP_ERR_REPORT_SIZE' });
      return { version: 3, product: 'Genoa', signingKey: 'VCEK', chipIdMasked: false };
    },
    certificates: async () => {
      if (o.kds === 'down') throw new TasError('KDS_UNAVAILABLE', 'kds down', { retryAfterSeconds: 10 });
      return { leaf: Buffer.alloc(1), source: 'kds' };
    },
    verify: async (report) => {
      if (o.verifyFails) throw new TasError('TEE_VERIFICATION_FAILED', 'sig', { reason: 'SNP_ERR_REPORT_SIGNATURE' });
      return { claims: { measurement: 'aa' }, reportData: report.subarray(0x50, 0x90), product: 'Genoa' };
    },
    nonces: {
      claim: async (n) => (nonces.get(n) === 'issued' ? (nonces.set(n, 'claimed'), true) : false),
      consume: async (n) => void nonces.set(n, 'consumed'),
      release: async (n) => void nonces.set(n, 'issued'),
    },
    policies: {
      forUse: async (id) => (id === 'p1' ? policy : undefined),
      byKeyId: async (k) => (k === 'k1' ? [policy] : []),
      evaluate: () => (o.rulesOk ? { ok: true, failures: [] } : { ok: false, failures: ['measurement: exact_match failed', 'vmpl: max_value failed'] }),
      allowUnsignedKeyBinding: () => false,
    },
    broker: {
      validateWrappingKey: (b) => {
        if (b.length < 4) throw new TasError('KBM_WRAPPING_KEY_INVALID', 'short');
      },
      getSecret: async () => {
        brokerCalls++;
        if (o.kbm === 'down') throw new TasError('KBM_UNAVAILABLE', 'hsm down');
        if (o.kbm === 'missing') throw new TasError('KBM_SECRET_NOT_FOUND', 'no key');
        return { wrapped_key: 'w', blob: 'b', iv: 'i', tag: 't' };
      },
    },
    requireBinding: (d) => d === 'policy-id',
  };
  const pipeline = new Pipeline(ports, { record: (e) => void audit.push(e), close: async () => undefined });
  return { pipeline, nonces, audit, brokerCalls: () => brokerCalls };
}

function report(binding: boolean): Buffer {
  const r = Buffer.alloc(1184);
  const rd = binding ? createHash('sha512').update(NONCE).update(WK).digest() : Buffer.from(NONCE, 'ascii');
  rd.copy(r, 0x50);
  return r;
}

function req(over: Partial<GetSecretRequest> = {}): GetSecretRequest {
  return { teeType: 'amd-sev-snp', nonce: NONCE, evidence: report(true), wrappingKey: WK, certificates: undefined, policyId: 'p1', keyId: undefined, reportDataBinding: true, ...over };
}
const rctx = { requestId: 'r1', clientAddress: '127.0.0.1' };

async function refused(p: Promise<unknown>, code: string): Promise<TasError> {
  const e = await p.then(() => assert.fail('expected a refusal'), (x: unknown) => x);
  assert.ok(e instanceof TasError, String(e));
  assert.equal(e.code, code, e.detail);
  return e;
}

describe('attest: pipeline ordering', () => {
  it('releases the key, consumes the nonce and writes one allow record', async () => {
    const h = harness();
    const r = await h.pipeline.getSecret(req(), rctx);
    assert.equal(r.wrapped_key, 'w');
    assert.equal(h.nonces.get(NONCE), 'consumed');
    assert.equal(h.audit.length, 1);
    assert.equal(h.audit[0]!.outcome, 'allow');
    assert.ok(!JSON.stringify(h.audit).includes(NONCE), 'the nonce never reaches the audit record');
  });
  it('a replay after success is 401 and the broker is not called again', async () => {
    const h = harness();
    await h.pipeline.getSecret(req(), rctx);
    await refused(h.pipeline.getSecret(req(), rctx), 'NONCE_INVALID');
    assert.equal(h.brokerCalls(), 1);
  });
  it('a transient key-backend failure puts the nonce back so the retry wins', async () => {
    const h = harness({ kbm: 'down' });
    const e = await refused(h.pipeline.getSecret(req(), rctx), 'KBM_UNAVAILABLE');
    assert.ok(e.retryAfterSeconds! > 0);
    assert.equal(h.nonces.get(NONCE), 'issued');
    assert.equal(h.audit.at(-1)!.outcome, 'error');
  });
  it('KDS down leaves the nonce untouched (503)', async () => {
    const h = harness({ kds: 'down' });
    await refused(h.pipeline.getSecret(req(), rctx), 'KDS_UNAVAILABLE');
    assert.equal(h.nonces.get(NONCE), 'issued');
  });
  it('a bad signature is 400 and consumes the nonce', async () => {
    const h = harness({ verifyFails: true });
    const e = await refused(h.pipeline.getSecret(req(), rctx), 'TEE_VERIFICATION_FAILED');
    assert.equal(e.reason, 'SNP_ERR_REPORT_SIGNATURE');
    assert.equal(h.nonces.get(NONCE), 'consumed');
    assert.equal(h.audit.length, 1);
    assert.equal(h.audit[0]!.reason, 'SNP_ERR_REPORT_SIGNATURE');
  });
  it('wrong REPORT_DATA is 400 REPORT_DATA_MISMATCH and consumes the nonce', async () => {
    const h = harness();
    const e = await refused(h.pipeline.getSecret(req({ evidence: report(false) }), rctx), 'TEE_VERIFICATION_FAILED');
    assert.equal(e.reason, 'REPORT_DATA_MISMATCH');
    assert.equal(h.nonces.get(NONCE), 'consumed');
  });
  it('malformed evidence and a bad wrapping key never touch the nonce', async () => {
    const h = harness();
    await refused(h.pipeline.getSecret(req({ evidence: Buffer.alloc(1183) }), rctx), 'TEE_EVIDENCE_MALFORMED');
    await refused(h.pipeline.getSecret(req({ wrappingKey: Buffer.alloc(1) }), rctx), 'KBM_WRAPPING_KEY_INVALID');
    assert.equal(h.nonces.get(NONCE), 'issued');
    assert.equal(h.audit.length, 2);
  });
  it('every rule failure is reported together and the nonce is consumed', async () => {
    const h = harness({ rulesOk: false });
    const e = await refused(h.pipeline.getSecret(req(), rctx), 'TEE_VERIFICATION_FAILED');
    assert.match(e.detail, /measurement/);
    assert.match(e.detail, /vmpl/);
    assert.deepEqual((h.audit[0]!.details as { failures: string[] }).failures.length, 2);
    assert.equal(h.nonces.get(NONCE), 'consumed');
  });
  it('policy-id requests need the binding by default; key-id requests do not', async () => {
    const h = harness();
    const e = await refused(h.pipeline.getSecret(req({ evidence: report(false), reportDataBinding: false }), rctx), 'TEE_VERIFICATION_FAILED');
    assert.match(e.detail, /binding/);
    const k = harness();
    const ok = await k.pipeline.getSecret(req({ evidence: report(false), reportDataBinding: false, policyId: undefined, keyId: 'k1' }), rctx);
    assert.equal(ok.blob, 'b');
  });
  it('a rules-only signature never releases a key; an unbound key id is refused', async () => {
    const h = harness({ keyBindingSigned: false });
    const e = await refused(h.pipeline.getSecret(req(), rctx), 'KBM_NOT_BOUND');
    assert.equal(e.reason, 'KEY_BINDING_UNSIGNED');
    const k = harness();
    await refused(k.pipeline.getSecret(req({ policyId: undefined, keyId: 'other' }), rctx), 'KBM_NOT_BOUND');
  });
  it('refuses intel-tdx with 400 and an audit reason, and a TDX policy for SNP evidence', async () => {
    const h = harness();
    const e = await refused(h.pipeline.getSecret(req({ teeType: 'intel-tdx' }), rctx), 'TEE_TYPE_UNSUPPORTED');
    assert.equal(e.status, 400);
    assert.equal(h.audit[0]!.reason, 'TDX_UNSUPPORTED');
    const t = harness({ policyType: 'TDX' });
    const f = await refused(t.pipeline.getSecret(req(), rctx), 'TEE_VERIFICATION_FAILED');
    assert.equal(f.reason, 'POLICY_TYPE_MISMATCH');
  });
  it('an unknown key at the broker is 404 and consumes the nonce', async () => {
    const h = harness({ kbm: 'missing' });
    await refused(h.pipeline.getSecret(req(), rctx), 'KBM_SECRET_NOT_FOUND');
    assert.equal(h.nonces.get(NONCE), 'consumed');
  });
});

/** outagePipeline is a pipeline whose every port works except the nonce store the test supplies. */
function outagePipeline(nonces: AttestPorts['nonces']): Pipeline {
  const policy: UsablePolicy = { id: 'p1', keyId: 'k1', policyType: 'SEV', requireBinding: undefined, rules: {}, keyBindingSigned: true };
  return new Pipeline(
    {
      peek: () => ({ version: 3, product: 'Genoa', signingKey: 'VCEK', chipIdMasked: false }),
      certificates: async () => ({ leaf: Buffer.alloc(1), source: 'kds' }),
      verify: async (report) => ({ claims: {}, reportData: report.subarray(0x50, 0x90), product: 'Genoa' }),
      nonces,
      policies: { forUse: async () => policy, byKeyId: async () => [], evaluate: () => ({ ok: true, failures: [] }), allowUnsignedKeyBinding: () => false },
      broker: { validateWrappingKey: () => undefined, getSecret: async () => ({ wrapped_key: 'w', blob: 'b', iv: 'i', tag: 't' }) },
      requireBinding: () => true,
    },
    { record: () => undefined, close: async () => undefined },
  );
}

/** untilIssued waits (bounded) for the background release to put the nonce back. */
async function untilIssued(state: Map<string, string>): Promise<void> {
  for (let i = 0; i < 40 && state.get(NONCE) !== 'issued'; i++) await new Promise((r) => setTimeout(r, 100));
}

describe('attest: pipeline and a store outage', () => {
  it('a release that fails while the store is down is retried until it succeeds', async () => {
    let storeUp = false;
    const state = new Map<string, string>([[NONCE, 'issued']]);
    const down = () => {
      if (!storeUp) throw new TasError('STORE_UNAVAILABLE', 'redis down');
    };
    const p = outagePipeline({
      claim: async () => (state.get(NONCE) === 'issued' ? (state.set(NONCE, 'claimed'), true) : false),
      consume: async () => (down(), void state.set(NONCE, 'consumed')),
      release: async () => (down(), void state.set(NONCE, 'issued')),
    });
    await refused(p.getSecret(req(), rctx), 'STORE_UNAVAILABLE');
    assert.equal(state.get(NONCE), 'claimed', 'the store could not take the release yet');
    storeUp = true;
    await untilIssued(state);
    assert.equal(state.get(NONCE), 'issued', 'released in the background once the store answered');
    const ok = await p.getSecret(req(), rctx);
    assert.equal(ok.wrapped_key, 'w');
  });

  it('a claim the store applied but could not confirm is handed back once the store answers', async () => {
    let storeUp = false;
    const state = new Map<string, string>([[NONCE, 'issued']]);
    const p = outagePipeline({
      claim: async () => {
        const won = state.get(NONCE) === 'issued';
        if (won) state.set(NONCE, 'claimed');
        if (!storeUp) throw new TasError('STORE_UNAVAILABLE', 'connection lost before the reply');
        return won;
      },
      consume: async () => void state.set(NONCE, 'consumed'),
      release: async () => {
        if (!storeUp) throw new TasError('STORE_UNAVAILABLE', 'redis down');
        if (state.get(NONCE) === 'claimed') state.set(NONCE, 'issued');
      },
    });
    await refused(p.getSecret(req(), rctx), 'STORE_UNAVAILABLE');
    assert.equal(state.get(NONCE), 'claimed');
    storeUp = true;
    await untilIssued(state);
    assert.equal(state.get(NONCE), 'issued');
    assert.equal((await p.getSecret(req(), rctx)).wrapped_key, 'w');
  });
});
