/**
 * The nonce claim lease against a slow key backend (issue #14, finding 3): the lease is derived
 * from every timeout inside a claim, and a request that lost its claim answers 503 without the
 * secret. The pipeline runs over the real embedded store and NonceService (a fake monotonic clock
 * lets the lease lapse while the key backend is still working); the daemon test checks the lease
 * the composition root derives.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { claimLeaseMs, insideClaimMs } from '../../src/attest/lease';
import { Pipeline } from '../../src/attest/pipeline';
import type { AttestPorts, UsablePolicy } from '../../src/attest/ports';
import type { GetSecretRequest, SecretKeyReply } from '../../src/attest/types';
import type { EvidenceVerifier } from '../../src/attest/verifier';
import type { AuditEvent } from '../../src/audit/types';
import { assemble } from '../../src/daemon/assemble';
import { TasError } from '../../src/errors';
import { KBM_CALL_TIMEOUT_MS } from '../../src/kbm';
import { NonceService } from '../../src/nonce';
import { EmbeddedStore, type Store } from '../../src/store';
import { startTestDaemon } from '../support/daemon';

const WK = Buffer.from('wrapping-key-bytes');

/** A verifier whose evidence is the 64 bytes of REPORT_DATA (the nonce's ASCII: no binding). */
const plain: EvidenceVerifier = {
  tee: 'amd-sev-snp',
  policyType: 'SEV',
  peek: () => ({}),
  endorsements: async () => ({}),
  verify: async (ev) => ({ tee: 'amd-sev-snp', claims: {}, reportData: ev }),
};

interface Gate {
  promise: Promise<void>;
  open(): void;
}
function gate(): Gate {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

/** rig is a pipeline over a real embedded store; the key backend waits for the test's gates. */
function rig(leaseMs: number, storeOver: (s: Store) => Partial<Store> = () => ({})) {
  const dir = mkdtempSync(join(tmpdir(), 'tas-lease-'));
  let t = 1_000;
  const real = new EmbeddedStore({ stateDir: dir, cacheDir: join(dir, 'c'), now: () => t });
  const store = Object.assign(Object.create(real) as Store, storeOver(real));
  const nonces = new NonceService(store, { ttlSeconds: 120, maxOutstanding: 100, leaseMs });
  const gates: Gate[] = [];
  const entered: Array<() => void> = [];
  const policy: UsablePolicy = { id: 'p', keyId: 'k', policyType: 'SEV', requireBinding: undefined, rules: {}, keyBindingSigned: true };
  const audit: AuditEvent[] = [];
  const ports: AttestPorts = {
    verifiers: new Map([['amd-sev-snp', plain]]) as AttestPorts['verifiers'],
    nonces: {
      claim: (n, o) => nonces.claim(n, o),
      consume: (n, o) => nonces.consume(n, o),
      release: (n, o) => nonces.release(n, o),
      unconsume: (n, o) => nonces.unconsume(n, o),
      forgetConsumed: (n, o) => nonces.forgetConsumed(n, o),
    },
    policies: { forUse: async () => policy, byKeyId: async () => [], evaluate: () => ({ ok: true, failures: [] }), allowUnsignedKeyBinding: () => false },
    broker: {
      validateWrappingKey: () => undefined,
      getSecret: async (): Promise<SecretKeyReply> => {
        const g = gate();
        const which = gates.push(g);
        entered.shift()?.();
        await g.promise;
        return { wrapped_key: `secret-${which}`, blob: 'b', iv: 'i', tag: 't' };
      },
    },
    requireBinding: () => false,
  };
  const pipeline = new Pipeline(ports, { record: (e) => void audit.push(e), close: async () => undefined }, { leaseMs });
  return {
    pipeline, nonces, audit, gates, store: real,
    advance: (ms: number) => void (t += ms),
    /** inBackend resolves when the next request reaches the key backend. */
    inBackend: () => new Promise<void>((r) => entered.push(r)),
    close: async () => {
      await real.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const req = (nonce: string): GetSecretRequest => ({
  teeType: 'amd-sev-snp', nonce, evidence: Buffer.from(nonce, 'ascii'), wrappingKey: WK, certificates: undefined,
  policyId: 'p', keyId: undefined, reportDataBinding: false,
});
const rctx = { requestId: 'r', clientAddress: '127.0.0.1' };

async function outcome(p: Promise<SecretKeyReply>): Promise<string> {
  try {
    return `200 ${(await p).wrapped_key}`;
  } catch (e) {
    if (e instanceof TasError) return `${e.status} ${e.code}`;
    throw e;
  }
}

/**
 * replayAfterLapse sends a request that reaches the (gated) key backend, lets its 30 s lease lapse,
 * and sends the same nonce again: both end up waiting in the backend, the replay holding the claim.
 */
async function replayAfterLapse(r: ReturnType<typeof rig>): Promise<{ nonce: string; first: Promise<string>; replay: Promise<string> }> {
  const nonce = await r.nonces.issue();
  const atBackend = r.inBackend();
  const first = outcome(r.pipeline.getSecret(req(nonce), rctx));
  await atBackend;
  // The key backend is slow: the lease lapses while the first request waits for it.
  r.advance(30_001);
  const replayAt = r.inBackend();
  const replay = outcome(r.pipeline.getSecret(req(nonce), rctx));
  await replayAt; // the replay won the lapsed claim and is in the backend too
  return { nonce, first, replay };
}

describe('attest: the claim lease and a slow key backend', () => {
  it('a replay that claims a lapsed lease while the first request is in the key backend: one release, the loser answers 503', async () => {
    const r = rig(30_000);
    try {
      const { nonce, first, replay } = await replayAfterLapse(r);
      r.gates[1]!.open();
      r.gates[0]!.open();
      const results = [await first, await replay];
      assert.deepEqual(results, ['503 NONCE_CLAIM_LOST', '200 secret-2'], 'exactly one release; the request that lost its claim sends nothing');
      assert.equal(results.filter((x) => x.startsWith('200')).length, 1);
      const lost = r.audit.find((a) => a.reason === 'NONCE_CLAIM_LOST');
      assert.ok(lost && lost.outcome === 'error', 'the loser is audited with its own reason');
      // And the nonce is spent: a third redemption is refused.
      assert.equal(await outcome(r.pipeline.getSecret(req(nonce), rctx)), '401 NONCE_INVALID');
    } finally {
      await r.close();
    }
  });

  it('the same race with the first request answering first: it still sends nothing, only the replay that holds the claim releases', async () => {
    const r = rig(30_000);
    try {
      const { first, replay } = await replayAfterLapse(r);
      r.gates[0]!.open();
      const a = await first;
      r.gates[1]!.open();
      const b = await replay;
      assert.deepEqual([a, b], ['503 NONCE_CLAIM_LOST', '200 secret-2'], 'the claim belongs to the replay now: only it may send');
    } finally {
      await r.close();
    }
  });

  it("a consume whose reply was lost is retried; the consumed-by-owner marker says it was ours, and the secret goes out once", async () => {
    let lose = 1;
    const r = rig(60_000, (s) => ({
      consume: async (n: string, o: string) => {
        const ok = await s.consume(n, o);
        if (lose-- > 0) throw new TasError('STORE_UNAVAILABLE', 'connection lost after the store applied the consume');
        return ok;
      },
    }));
    try {
      const nonce = await r.nonces.issue();
      const done = outcome(r.pipeline.getSecret(req(nonce), rctx));
      await new Promise((res) => setImmediate(res));
      r.gates[0]!.open();
      assert.equal(await done, '200 secret-1');
      assert.equal(r.store.consumedMarkers.live, 0, 'answered at last: the marker is dropped, not kept for the lease');
      assert.equal(await outcome(r.pipeline.getSecret(req(nonce), rctx)), '401 NONCE_INVALID', 'and it is spent');
    } finally {
      await r.close();
    }
  });

  it("a consume the store applied but never confirmed, with the store gone for good: 503 without the secret, then the nonce is handed back for the agent's retry", async () => {
    let down = true;
    const r = rig(60_000, (s) => ({
      consume: async (n: string, o: string) => {
        if (!down) return s.consume(n, o);
        await s.consume(n, o); // applied…
        throw new TasError('STORE_UNAVAILABLE', 'connection lost'); // …but never answered
      },
      release: async (n: string, o: string) => {
        if (down) throw new TasError('STORE_UNAVAILABLE', 'down');
        return s.release(n, o);
      },
      unconsume: async (n: string, o: string) => {
        if (down) throw new TasError('STORE_UNAVAILABLE', 'down');
        return s.unconsume(n, o);
      },
    }));
    try {
      const nonce = await r.nonces.issue();
      const done = outcome(r.pipeline.getSecret(req(nonce), rctx));
      await new Promise((res) => setImmediate(res));
      r.gates[0]!.open();
      assert.equal(await done, '503 STORE_UNAVAILABLE', 'the secret is not sent without a confirmed consume');
      down = false;
      for (let i = 0; i < 40 && (await r.store.count()) === 0; i++) await new Promise((res) => setTimeout(res, 100));
      assert.equal(await r.store.count(), 1, 'the consume was undone in the background (marker: it was ours)');
      const retry = outcome(r.pipeline.getSecret(req(nonce), rctx));
      await new Promise((res) => setImmediate(res));
      r.gates[1]!.open();
      assert.equal(await retry, '200 secret-2', "the agent's retry with the same nonce gets the secret");
    } finally {
      await r.close();
    }
  });
});

describe('attest: the claim lease is derived from the timeouts inside a claim', () => {
  it('outlives the sum of every timeout inside it by a margin', () => {
    for (const t of [{ storeOpMs: 2_000, actionMs: 30_000 }, { storeOpMs: 7_000, actionMs: 30_000, componentsMs: 20_000 }, { storeOpMs: 1, actionMs: 1 }]) {
      const lease = claimLeaseMs(t);
      const inside = insideClaimMs(t);
      assert.ok(inside >= t.actionMs + 5 * t.storeOpMs + (t.componentsMs ?? 0), JSON.stringify(t));
      assert.ok(lease >= inside + 5_000 && lease >= inside * 1.25, `${lease} vs ${inside}`);
    }
    assert.throws(() => claimLeaseMs({ storeOpMs: Number.NaN, actionMs: 1 }));
  });

  it("the daemon's lease exceeds the key-backend timeout plus the store's (it used to equal the key-backend timeout)", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tas-lease-d-'));
    const asm = await assemble(undefined as never);
    writeFileSync(join(dir, 'kbm.yaml'), 'secrets:\n  k:\n    value_utf8: "x"\n');
    const d = await startTestDaemon({ TAS_STATE_DIR: join(dir, 'state'), TAS_KBM_CONFIG_FILE: join(dir, 'kbm.yaml') }, { services: asm.services, configure: asm.configure });
    try {
      const h = asm.handles();
      const lease = h.nonces.lease;
      assert.ok(lease > KBM_CALL_TIMEOUT_MS + 5 * h.store.opTimeoutMs, `lease ${lease} ms, key backend ${KBM_CALL_TIMEOUT_MS} ms, store op ${h.store.opTimeoutMs} ms`);
      assert.equal(lease, claimLeaseMs({ storeOpMs: h.store.opTimeoutMs, actionMs: KBM_CALL_TIMEOUT_MS }));
    } finally {
      await d.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
