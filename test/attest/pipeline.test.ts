/**
 * The pipeline's ordering rules with in-memory ports: what touches the nonce when, which status
 * each refusal gets, and exactly one audit record per request. End-to-end runs against the real
 * modules live in test/attest/e2e.test.ts.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Pipeline } from '../../src/attest/pipeline';
import type { AttestPorts, UsablePolicy } from '../../src/attest/ports';
import type { ComponentHook, EvidenceVerifier } from '../../src/attest/verifier';
import type { GetSecretRequest } from '../../src/attest/types';
import type { AuditEvent } from '../../src/audit/types';
import { TasError } from '../../src/errors';

const NONCE = 'ab'.repeat(32);
const WK = Buffer.from('wrapping-key-bytes');

type NonceState = 'issued' | 'claimed' | 'consumed';

/** snpLike is a fake `amd-sev-snp` verifier: REPORT_DATA at 0x50 of a 1184-byte buffer. */
function snpLike(o: { verifyFails: boolean; kds: string }): EvidenceVerifier {
  return {
    tee: 'amd-sev-snp',
    policyType: 'SEV',
    peek: (r) => {
      if (r.length !== 1184) throw new TasError('TEE_EVIDENCE_MALFORMED', 'size', { reason: 'SNP_ERR_REPORT_SIZE' });
      return { version: 3 };
    },
    endorsements: async () => {
      if (o.kds === 'down') throw new TasError('KDS_UNAVAILABLE', 'kds down', { retryAfterSeconds: 10 });
      return { leaf: Buffer.alloc(1), source: 'kds' };
    },
    verify: async (report) => {
      if (o.verifyFails) throw new TasError('TEE_VERIFICATION_FAILED', 'sig', { reason: 'SNP_ERR_REPORT_SIGNATURE' });
      return { tee: 'amd-sev-snp', claims: { measurement: 'aa' }, reportData: report.subarray(0x50, 0x90), audit: { product: 'Genoa' } };
    },
  };
}

/** tdxLike is a second fake verifier (`intel-tdx`, REPORT_DATA at 0x238 of a 1024-byte buffer). */
function tdxLike(): EvidenceVerifier {
  return {
    tee: 'intel-tdx',
    policyType: 'TDX',
    peek: (q) => {
      if (q.length !== 1024) throw new TasError('TEE_EVIDENCE_MALFORMED', 'size', { reason: 'TDX_ERR_QUOTE_SIZE' });
      return q.readUInt16LE(0);
    },
    describe: (v) => ({ quote_version: v }),
    endorsements: async () => 'collateral',
    describeEndorsements: (e) => ({ collateral: e }),
    verify: async (q) => ({ tee: 'intel-tdx', claims: { tcb_status: 'UpToDate' }, reportData: q.subarray(0x238, 0x278), audit: { tcb_status: 'UpToDate' } }),
  };
}

function harness(over: Partial<{ verifyFails: boolean; kbm: 'ok' | 'down' | 'missing'; kds: 'ok' | 'down'; rulesOk: boolean; keyBindingSigned: boolean; policyType: 'SEV' | 'TDX'; tdx: boolean; components: ComponentHook; policyComponents: Record<string, unknown> }> = {}) {
  const o = { verifyFails: false, kbm: 'ok', kds: 'ok', rulesOk: true, keyBindingSigned: true, policyType: 'SEV', tdx: false, ...over };
  const nonces = new Map<string, NonceState>([[NONCE, 'issued']]);
  const audit: AuditEvent[] = [];
  const forgotten: string[] = [];
  let brokerCalls = 0;
  const policy: UsablePolicy = {
    id: 'p1', keyId: 'k1', policyType: o.policyType as 'SEV', requireBinding: undefined, rules: {}, keyBindingSigned: o.keyBindingSigned,
    ...(o.policyComponents ? { components: o.policyComponents } : {}),
  };
  const verifiers = new Map([['amd-sev-snp', snpLike(o)]]);
  if (o.tdx) verifiers.set('intel-tdx', tdxLike());
  const ports: AttestPorts = {
    verifiers: verifiers as AttestPorts['verifiers'],
    ...(o.components ? { components: o.components } : {}),
    nonces: {
      claim: async (n) => (nonces.get(n) === 'issued' ? (nonces.set(n, 'claimed'), true) : false),
      consume: async (n) => (nonces.set(n, 'consumed'), true),
      release: async (n) => void nonces.set(n, 'issued'),
      unconsume: async () => false,
      forgetConsumed: (n) => void forgotten.push(n),
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
  return { pipeline, nonces, audit, forgotten, brokerCalls: () => brokerCalls };
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
    assert.deepEqual(h.forgotten, [NONCE], 'the consume was answered: the store may drop its marker');
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
    assert.deepEqual(h.forgotten, [], 'nothing consumed, nothing to forget');
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
    assert.deepEqual(h.forgotten, [NONCE], 'burnt: the marker of the burning consume is dropped too');
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
    assert.deepEqual(h.forgotten, [NONCE], 'refused after the claim: consumed, marker dropped');
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

  it('reads the policy while the claim is under way, but decides nothing on it before the claim is won', async () => {
    const h = harness();
    const ports = (h.pipeline as unknown as { ports: AttestPorts }).ports;
    const events: string[] = [];
    const claim = ports.nonces.claim;
    let claimResult: ((won: boolean) => void) | undefined;
    (ports.nonces as { claim: typeof claim }).claim = (n, o) => {
      events.push('claim sent');
      return new Promise<boolean>((resolve) => (claimResult = resolve)).then(async (won) => (won ? claim(n, o) : false));
    };
    let policyOutcome: 'ok' | 'missing' | 'store down' = 'ok';
    const forUse = ports.policies.forUse;
    (ports.policies as { forUse: typeof forUse }).forUse = async (id) => {
      events.push('policy read');
      if (policyOutcome === 'store down') throw new TasError('STORE_UNAVAILABLE', 'redis down', { retryAfterSeconds: 1 });
      return policyOutcome === 'missing' ? undefined : forUse(id);
    };
    const settle = async (won: boolean, p: Promise<unknown>) => {
      while (claimResult === undefined) await new Promise((r) => setImmediate(r));
      assert.deepEqual(events.slice(-2).sort(), ['claim sent', 'policy read'], 'both are in flight together');
      claimResult(won);
      claimResult = undefined;
      return p;
    };
    // A lost claim answers 401 even when the policy read failed (that failure is not reported).
    policyOutcome = 'store down';
    await refused(settle(false, h.pipeline.getSecret(req(), rctx)), 'NONCE_INVALID');
    assert.equal(h.nonces.get(NONCE), 'issued');
    // A won claim with a failed policy read: 503, and the nonce goes back to issued for the retry.
    await refused(settle(true, h.pipeline.getSecret(req(), rctx)), 'STORE_UNAVAILABLE');
    assert.equal(h.nonces.get(NONCE), 'issued');
    // A won claim with a missing policy: the definitive refusal consumes the nonce, as before.
    policyOutcome = 'missing';
    await refused(settle(true, h.pipeline.getSecret(req(), rctx)), 'POLICY_NOT_FOUND');
    assert.equal(h.nonces.get(NONCE), 'consumed');
    assert.equal(h.brokerCalls(), 0);
  });
});

/** outagePipeline is a pipeline whose every port works except the nonce store the test supplies. */
function outagePipeline(nonces: AttestPorts['nonces']): Pipeline {
  const policy: UsablePolicy = { id: 'p1', keyId: 'k1', policyType: 'SEV', requireBinding: undefined, rules: {}, keyBindingSigned: true };
  return new Pipeline(
    {
      verifiers: new Map([['amd-sev-snp', snpLike({ verifyFails: false, kds: 'ok' })]]),
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
      consume: async () => (down(), state.set(NONCE, 'consumed'), true),
      release: async () => (down(), void state.set(NONCE, 'issued')),
      unconsume: async () => false,
      forgetConsumed: () => undefined,
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
      consume: async () => (state.set(NONCE, 'consumed'), true),
      release: async () => {
        if (!storeUp) throw new TasError('STORE_UNAVAILABLE', 'redis down');
        if (state.get(NONCE) === 'claimed') state.set(NONCE, 'issued');
      },
      unconsume: async () => false,
      forgetConsumed: () => undefined,
    });
    await refused(p.getSecret(req(), rctx), 'STORE_UNAVAILABLE');
    assert.equal(state.get(NONCE), 'claimed');
    storeUp = true;
    await untilIssued(state);
    assert.equal(state.get(NONCE), 'issued');
    assert.equal((await p.getSecret(req(), rctx)).wrapped_key, 'w');
  });
});

/** quote builds a fake 1024-byte TDX-shaped buffer with REPORT_DATA at 0x238. */
function quote(rd: Buffer): Buffer {
  const q = Buffer.alloc(1024);
  q.writeUInt16LE(4, 0);
  rd.copy(q, 0x238);
  return q;
}

/** gpuHook is a component hook over `{gpu: [hex…]}` whose binding suffix is SHA-512 of each entry. */
function gpuHook(appraise: ComponentHook['appraise'] = async (c, pol) => ({ audit: { components_evaluated: pol.components !== undefined, gpus: (c as Buffer[] | undefined)?.length ?? 0 } })): ComponentHook<Buffer[]> & { calls: number } {
  const hook = {
    calls: 0,
    parse(raw: unknown): Buffer[] {
      const g = (raw as { gpu?: unknown }).gpu;
      if (!Array.isArray(g) || !g.every((x) => typeof x === 'string' && /^[0-9a-f]+$/.test(x))) {
        throw new TasError('HTTP_BAD_REQUEST', 'component-evidence: malformed', { reason: 'COMPONENT_EVIDENCE_MALFORMED' });
      }
      return g.map((x) => Buffer.from(x as string, 'hex'));
    },
    bindingSuffix: (c: Buffer[]) => Buffer.concat(c.map((b) => createHash('sha512').update(b).digest())),
    appraise: async (...a: Parameters<ComponentHook['appraise']>) => {
      hook.calls++;
      return appraise(...a);
    },
  };
  return hook;
}

function boundWithGpus(gpus: string[]): Buffer {
  const h = createHash('sha512').update(NONCE).update(WK);
  for (const g of gpus) h.update(createHash('sha512').update(Buffer.from(g, 'hex')).digest());
  const r = Buffer.alloc(1184);
  h.digest().copy(r, 0x50);
  return r;
}

describe('attest: verifier registry, component hook and actions', () => {
  it('dispatches on tee-type to the registered verifier and matches policy_type to it', async () => {
    const h = harness({ tdx: true, policyType: 'TDX' });
    const rd = createHash('sha512').update(NONCE).update(WK).digest();
    const r = await h.pipeline.getSecret(req({ teeType: 'intel-tdx', evidence: quote(rd) }), rctx);
    assert.equal(r.wrapped_key, 'w');
    const d = h.audit[0]!.details as Record<string, unknown>;
    assert.equal(d.tee_type, 'intel-tdx');
    assert.equal(d.quote_version, 4, 'describe() of the verifier reaches the audit record');
    assert.equal(d.collateral, 'collateral', 'describeEndorsements() reaches the audit record');
    assert.equal(d.tcb_status, 'UpToDate', 'VerifiedEvidence.audit reaches the audit record');
    // A TDX policy never admits SNP evidence, and the SNP verifier is not asked about TDX quotes.
    const s = harness({ tdx: true, policyType: 'TDX' });
    const e = await refused(s.pipeline.getSecret(req(), rctx), 'TEE_VERIFICATION_FAILED');
    assert.equal(e.reason, 'POLICY_TYPE_MISMATCH');
    const m = harness({ tdx: true, policyType: 'TDX' });
    await refused(m.pipeline.getSecret(req({ teeType: 'intel-tdx', evidence: report(true) }), rctx), 'TEE_EVIDENCE_MALFORMED');
    assert.equal(m.nonces.get(NONCE), 'issued');
  });
  it('key-id requests look up policies of the verifier\'s policy_type', async () => {
    const seen: string[] = [];
    const h = harness({ tdx: true, policyType: 'TDX' });
    const base = (h.pipeline as unknown as { ports: AttestPorts }).ports;
    const orig = base.policies.byKeyId;
    (base.policies as { byKeyId: typeof orig }).byKeyId = async (k, t) => (seen.push(t), orig(k, t));
    const q = quote(Buffer.from(NONCE, 'ascii'));
    await h.pipeline.getSecret(req({ teeType: 'intel-tdx', evidence: q, policyId: undefined, keyId: 'k1', reportDataBinding: false }), rctx);
    assert.deepEqual(seen, ['TDX']);
  });
  it('component evidence is bound into REPORT_DATA after the key; dropping a GPU is a mismatch', async () => {
    const gpus = ['aa01', 'bb02'];
    const h = harness({ components: gpuHook() });
    const ok = await h.pipeline.getSecret(req({ evidence: boundWithGpus(gpus), components: { gpu: gpus } }), rctx);
    assert.equal(ok.blob, 'b');
    const d = h.audit[0]!.details as Record<string, unknown>;
    assert.equal(d.components, 'bound');
    assert.equal(d.components_evaluated, false, 'a policy without components: bound, not evaluated');
    const k = harness({ components: gpuHook() });
    const e = await refused(k.pipeline.getSecret(req({ evidence: boundWithGpus(gpus), components: { gpu: ['aa01'] } }), rctx), 'TEE_VERIFICATION_FAILED');
    assert.equal(e.reason, 'REPORT_DATA_MISMATCH');
    assert.match(e.detail, /component/);
    assert.equal(k.nonces.get(NONCE), 'consumed');
  });
  it('malformed component evidence is 400 and keeps the nonce; no hook means the field is ignored', async () => {
    const h = harness({ components: gpuHook() });
    const e = await refused(h.pipeline.getSecret(req({ components: { gpu: ['zz'] } }), rctx), 'HTTP_BAD_REQUEST');
    assert.equal(e.reason, 'COMPONENT_EVIDENCE_MALFORMED');
    assert.equal(h.nonces.get(NONCE), 'issued');
    const n = harness();
    const ok = await n.pipeline.getSecret(req({ components: { gpu: ['zz'] } }), rctx);
    assert.equal(ok.blob, 'b');
  });
  it('component appraisal runs under the selected policy: 503 hands the nonce back, 400 consumes it, no key released', async () => {
    const gpus = ['aa01'];
    const policyComponents = { gpu: { 'gpu-nvidia': { count: 1 } } };
    const down = gpuHook(async () => {
      throw new TasError('KDS_UNAVAILABLE', 'ocsp down', { retryAfterSeconds: 5 });
    });
    const h = harness({ components: down, policyComponents });
    await refused(h.pipeline.getSecret(req({ evidence: boundWithGpus(gpus), components: { gpu: gpus } }), rctx), 'KDS_UNAVAILABLE');
    assert.equal(h.nonces.get(NONCE), 'issued');
    assert.equal(h.brokerCalls(), 0);
    const bad = gpuHook(async (_c, pol) => {
      assert.deepEqual(pol.components, policyComponents);
      throw new TasError('TEE_VERIFICATION_FAILED', 'gpu 0: measurement', { reason: 'GPU_ERR_MEASUREMENT' });
    });
    const b = harness({ components: bad, policyComponents });
    const e = await refused(b.pipeline.getSecret(req({ evidence: boundWithGpus(gpus), components: { gpu: gpus } }), rctx), 'TEE_VERIFICATION_FAILED');
    assert.equal(e.reason, 'GPU_ERR_MEASUREMENT');
    assert.equal(b.nonces.get(NONCE), 'consumed');
    assert.equal(b.brokerCalls(), 0);
    // A policy that requires components is appraised even when the request carries none.
    const none = gpuHook();
    const c = harness({ components: none, policyComponents });
    await c.pipeline.getSecret(req(), rctx);
    assert.equal(none.calls, 1);
  });
  it('the action is a parameter: validate runs before any state change, run only for the claimant', async () => {
    const h = harness({ keyBindingSigned: false });
    const base = { event: 'certify', teeType: 'amd-sev-snp' as const, nonce: NONCE, evidence: report(true), certificates: undefined, policyId: 'p1', keyId: undefined, reportDataBinding: true, bindingKey: WK, needsKeyBinding: false };
    await refused(h.pipeline.attest(base, rctx, {
      validate: () => {
        throw new TasError('HTTP_BAD_REQUEST', 'csr: bad signature', { reason: 'CSR_INVALID' });
      },
      run: async () => assert.fail('must not run'),
    }), 'HTTP_BAD_REQUEST');
    assert.equal(h.nonces.get(NONCE), 'issued');
    let runs = 0;
    const out = await h.pipeline.attest(base, rctx, { run: async (pol, ev) => (runs++, `${pol.id}:${String(ev.claims.measurement)}`) });
    assert.equal(out, 'p1:aa', 'a domain policy without a signed key binding is fine when no key is released');
    assert.equal(runs, 1);
    assert.equal(h.brokerCalls(), 0);
    assert.equal(h.audit.at(-1)!.event, 'certify');
    assert.equal(h.nonces.get(NONCE), 'consumed');
  });
});
