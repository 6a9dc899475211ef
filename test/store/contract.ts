/**
 * The store contract: one suite every backend must pass (embedded, Redis plain / ACL / TLS /
 * Sentinel / Cluster). Call storeContract() inside a describe() whose before() hook has started
 * the backend; `harness()` is read lazily when the tests run.
 */
import assert from 'node:assert/strict';
import { TasError } from '../../src/errors';
import type { Store } from '../../src/store';

/** ContractHarness is what a backend's test file supplies. */
export interface ContractHarness {
  /** open returns a new store instance on the backend (called more than once: fleet tests). */
  open(): Promise<Store>;
  /** pass lets ms of store time pass: a fake monotonic clock (embedded) or a real wait (Redis). */
  pass(ms: number): Promise<void>;
  /** Whether two instances share nonces and rate limits (Redis) or only policies (embedded on one dir). */
  sharedNonces: boolean;
  /** snapshot describes the whole backend state (every key with its value, or every file). */
  snapshot(): Promise<string>;
}

const hex = (i: number): string => i.toString(16).padStart(64, '0');
let counter = 0;
/** fresh returns a nonce value never used before in this process (stores may be shared by suites). */
export function fresh(): string {
  counter++;
  return (Date.now().toString(16) + process.pid.toString(16) + counter.toString(16)).padStart(64, '0').slice(-64);
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof TasError) return e.code;
    throw e;
  }
  return 'no error';
}

/** BAD_NONCES are values that must never reach a key: other key names, wildcards, wrong shapes. */
export const BAD_NONCES: readonly string[] = [
  'policy:x',
  'tas:{policy}:docs',
  '{policy}:docs',
  '{nonce}:outstanding',
  'tas:{nonce}:outstanding',
  '*',
  '?',
  '',
  'a'.repeat(63),
  'a'.repeat(65),
  'A'.repeat(64),
  `${'a'.repeat(63)}g`,
  `${'a'.repeat(63)}\n`,
  `"${'a'.repeat(64)}"`,
  ` ${'a'.repeat(63)}`,
  '../../../../etc/passwd',
  'x'.repeat(100_000),
  '\u0000'.repeat(64),
  'ａ'.repeat(64),
];

export function storeContract(name: string, harness: () => ContractHarness): void {
  describe(`store contract: ${name}`, () => {
    let h: ContractHarness;
    let s: Store;
    let opened: Store[] = [];
    const open = async (): Promise<Store> => {
      const st = await h.open();
      opened.push(st);
      return st;
    };
    beforeEach(async () => {
      h = harness();
      s = await open();
    });
    afterEach(async () => {
      for (const st of opened) await st.close();
      opened = [];
    });

    it('answers health', async () => {
      assert.equal(await s.health(), undefined);
      assert.ok(s.info.persistence.length > 0);
      assert.ok(Number.isSafeInteger(s.opTimeoutMs) && s.opTimeoutMs > 0, `opTimeoutMs ${s.opTimeoutMs}`);
    });

    it('runs issue -> claim -> consume, and a consumed nonce is invalid', async () => {
      const n = fresh();
      assert.equal(await s.issue(n, 60_000, 1000), 'issued');
      assert.equal(await s.issue(n, 60_000, 1000), 'exists');
      assert.equal(await s.claim(n, 'owner-a', 10_000), 'claimed');
      assert.equal(await s.claim(n, 'owner-b', 10_000), 'invalid', 'a held claim blocks others');
      assert.equal(await s.consume(n, 'owner-b'), false, 'only the owner consumes');
      assert.equal(await s.release(n, 'owner-b'), false, 'only the owner releases');
      assert.equal(await s.consume(n, 'owner-a'), true);
      assert.equal(await s.consume(n, 'owner-b'), false, 'consumed: no one else can consume it');
      assert.equal(await s.claim(n, 'owner-c', 10_000), 'invalid');
      assert.equal(await s.release(n, 'owner-a'), false);
    });

    it('unknown nonces are invalid', async () => {
      assert.equal(await s.claim(hex(0xdead), 'o', 1000), 'invalid');
      assert.equal(await s.consume(hex(0xdead), 'o'), false);
      assert.equal(await s.release(hex(0xdead), 'o'), false);
    });

    it('lets exactly one of 100 concurrent claims win', async () => {
      const other = h.sharedNonces ? await open() : s;
      for (let round = 0; round < 3; round++) {
        const n = fresh();
        assert.equal(await s.issue(n, 60_000, 1000), 'issued');
        const results = await Promise.all(Array.from({ length: 100 }, (_, i) => (i % 2 ? other : s).claim(n, `owner-${i}`, 10_000)));
        assert.equal(results.filter((r) => r === 'claimed').length, 1, `round ${round}: ${results.join(',')}`);
        assert.equal(results.filter((r) => r === 'invalid').length, 99);
      }
    });

    it('release after a transient failure lets the next claim win, with the original expiry', async () => {
      const n = fresh();
      assert.equal(await s.issue(n, 1500, 1000), 'issued');
      assert.equal(await s.claim(n, 'first', 10_000), 'claimed');
      // The request fails transiently (injected): the pipeline releases the claim.
      const failing = async (): Promise<void> => {
        throw new TasError('KBM_UNAVAILABLE', 'injected');
      };
      await failing().catch(async () => assert.equal(await s.release(n, 'first'), true));
      assert.equal(await s.consume(n, 'first'), false, 'a released claim is not the first owner\'s any more');
      await h.pass(700);
      assert.equal(await s.claim(n, 'second', 10_000), 'claimed', 'the retry wins');
      assert.equal(await s.release(n, 'second'), true);
      // 700 ms after the release, 1400+ ms after issue: a renewed TTL would still be valid here.
      await h.pass(900);
      assert.equal(await s.claim(n, 'third', 10_000), 'invalid', 'expired at the original expiry');
    });

    it('a lapsed lease returns the nonce to issued; the late owner can no longer consume', async () => {
      const n = fresh();
      assert.equal(await s.issue(n, 60_000, 1000), 'issued');
      assert.equal(await s.claim(n, 'dies', 300), 'claimed');
      assert.equal(await s.claim(n, 'waits', 10_000), 'invalid');
      await h.pass(450);
      assert.equal(await s.claim(n, 'waits', 10_000), 'claimed');
      assert.equal(await s.consume(n, 'dies'), false);
      assert.equal(await s.consume(n, 'waits'), true);
    });

    it('a repeated consume by its owner answers true (consumed-by-owner marker), and only for that owner', async () => {
      const n = fresh();
      assert.equal(await s.issue(n, 60_000, 1000), 'issued');
      assert.equal(await s.claim(n, 'owner-a', 10_000), 'claimed');
      assert.equal(await s.consume(n, 'owner-a'), true);
      // The first reply was lost (say the connection died): the owner's retry learns it was its own.
      assert.equal(await s.consume(n, 'owner-a'), true, 'the retry sees its own consume');
      assert.equal(await s.consume(n, 'owner-b'), false, 'a stranger never does');
      assert.equal(await s.claim(n, 'owner-b', 10_000), 'invalid', 'the marker never revives the nonce');
      assert.equal(await s.release(n, 'owner-a'), false, 'nothing to release');
    });

    it('forgetConsumed leaves the nonce consumed; a stranger\'s forget, an unknown or a malformed nonce change nothing, and it never throws', async () => {
      const n = fresh();
      assert.equal(await s.issue(n, 60_000, 1000), 'issued');
      const before = await s.count();
      assert.equal(await s.claim(n, 'owner-a', 10_000), 'claimed');
      assert.equal(await s.consume(n, 'owner-a'), true);
      s.forgetConsumed(n, 'owner-b');
      assert.equal(await s.consume(n, 'owner-a'), true, "a stranger's forget leaves owner-a's marker");
      s.forgetConsumed(fresh(), 'owner-a');
      s.forgetConsumed('not a nonce', 'owner-a');
      s.forgetConsumed(n, 'bad owner with spaces');
      assert.equal(await s.consume(n, 'owner-a'), true, 'nor does an unknown or malformed nonce or owner');
      s.forgetConsumed(n, 'owner-a');
      assert.equal(await s.claim(n, 'owner-b', 10_000), 'invalid', 'still consumed');
      assert.equal(await s.consume(n, 'owner-b'), false);
      assert.equal(await s.count(), before - 1, 'not outstanding');
    });

    it('unconsume returns a nonce its owner consumed (secret unsent) to issued, with the original expiry, once', async () => {
      const n = fresh();
      const before = await s.count();
      assert.equal(await s.issue(n, 1500, 1000), 'issued');
      assert.equal(await s.claim(n, 'owner-a', 10_000), 'claimed');
      assert.equal(await s.consume(n, 'owner-a'), true);
      assert.equal(await s.count(), before, 'consumed: not outstanding');
      assert.equal(await s.unconsume(n, 'owner-b'), false, 'only the owner of the consume');
      assert.equal(await s.unconsume(n, 'owner-a'), true);
      assert.equal(await s.count(), before + 1, 'outstanding again');
      assert.equal(await s.unconsume(n, 'owner-a'), false, 'once');
      assert.equal(await s.consume(n, 'owner-a'), false, 'the marker is gone with the unconsume');
      assert.equal(await s.claim(n, 'retry', 10_000), 'claimed', "the agent's retry wins");
      assert.equal(await s.release(n, 'retry'), true);
      await h.pass(1600);
      assert.equal(await s.claim(n, 'late', 10_000), 'invalid', 'expired at the original expiry');
      // An unconsume after the nonce's expiry does not bring it back.
      const m = fresh();
      assert.equal(await s.issue(m, 400, 1000), 'issued');
      assert.equal(await s.claim(m, 'o', 10_000), 'claimed');
      assert.equal(await s.consume(m, 'o'), true);
      await h.pass(550);
      assert.equal(await s.unconsume(m, 'o'), false, 'expired meanwhile');
      assert.equal(await s.claim(m, 'o2', 10_000), 'invalid');
    });

    it('a request whose lease lapsed and was overtaken can neither consume nor unconsume: exactly one consume wins', async () => {
      const n = fresh();
      assert.equal(await s.issue(n, 60_000, 1000), 'issued');
      assert.equal(await s.claim(n, 'slow', 300), 'claimed');
      await h.pass(450); // the slow request is still inside its key backend call
      assert.equal(await s.claim(n, 'replay', 10_000), 'claimed', 'the lapsed lease is taken by a replay');
      const [slow, replay] = await Promise.all([s.consume(n, 'slow'), s.consume(n, 'replay')]);
      assert.deepEqual([slow, replay], [false, true], 'only the current holder consumes');
      assert.equal(await s.consume(n, 'slow'), false, 'still not the late owner\'s, even repeated');
      assert.equal(await s.unconsume(n, 'slow'), false);
      assert.equal(await s.claim(n, 'third', 10_000), 'invalid');
      // A lapsed lease no one took is still its owner's to consume (one consume, one release).
      const m = fresh();
      assert.equal(await s.issue(m, 60_000, 1000), 'issued');
      assert.equal(await s.claim(m, 'slow', 300), 'claimed');
      await h.pass(450);
      assert.equal(await s.consume(m, 'slow'), true);
      assert.equal(await s.claim(m, 'replay', 10_000), 'invalid');
    });

    it('an expired nonce is invalid and no longer outstanding', async () => {
      const before = await s.count();
      const n = fresh();
      assert.equal(await s.issue(n, 400, 1_000_000), 'issued');
      await h.pass(550);
      assert.equal(await s.claim(n, 'late', 1000), 'invalid');
      assert.equal(await s.count(), before);
    });

    it('refuses every malformed nonce with NONCE_FORMAT and changes nothing', async () => {
      assert.equal(await s.putPolicy('x', '{"keep":true}'), 'created');
      const live = fresh();
      assert.equal(await s.issue(live, 60_000, 1000), 'issued');
      const before = await h.snapshot();
      for (const bad of BAD_NONCES) {
        const label = JSON.stringify(bad.slice(0, 40));
        assert.equal(await code(s.issue(bad, 60_000, 1000)), 'NONCE_FORMAT', `issue ${label}`);
        assert.equal(await code(s.claim(bad, 'o', 1000)), 'NONCE_FORMAT', `claim ${label}`);
        assert.equal(await code(s.consume(bad, 'o')), 'NONCE_FORMAT', `consume ${label}`);
        assert.equal(await code(s.release(bad, 'o')), 'NONCE_FORMAT', `release ${label}`);
        assert.equal(await code(s.unconsume(bad, 'o')), 'NONCE_FORMAT', `unconsume ${label}`);
      }
      for (const bad of [undefined, null, 42, ['a'.repeat(64)], { toString: () => 'a'.repeat(64) }] as unknown[]) {
        assert.equal(await code(s.claim(bad as string, 'o', 1000)), 'NONCE_FORMAT');
      }
      assert.equal(await h.snapshot(), before, 'the backend state is unchanged');
      assert.equal(await s.getPolicy('x'), '{"keep":true}');
      assert.equal(await s.claim(live, 'o', 1000), 'claimed', 'the live nonce is untouched');
      assert.equal(await s.deletePolicy('x'), true);
    });

    it('caps outstanding nonces', async () => {
      const base = await s.count();
      const cap = base + 3;
      const ns = [fresh(), fresh(), fresh(), fresh()];
      for (const n of ns.slice(0, 3)) assert.equal(await s.issue(n, 60_000, cap), 'issued');
      assert.equal(await s.issue(ns[3]!, 60_000, cap), 'capacity');
      assert.equal(await s.count(), cap);
      assert.equal(await s.claim(ns[0]!, 'o', 1000), 'claimed');
      assert.equal(await s.issue(ns[3]!, 60_000, cap), 'capacity', 'a claimed nonce is still outstanding');
      assert.equal(await s.consume(ns[0]!, 'o'), true);
      assert.equal(await s.issue(ns[3]!, 60_000, cap), 'issued', 'consuming frees a slot');
      for (const n of ns.slice(1)) {
        assert.equal(await s.claim(n, 'o', 1000), 'claimed');
        assert.equal(await s.consume(n, 'o'), true);
      }
      assert.equal(await s.count(), base);
    });

    it('stores policies create-only, byte-exact, listed by id, with a generation', async () => {
      const g0 = await s.policyGeneration();
      const big = JSON.stringify({ rules: 'é∑😀'.repeat(60_000), nested: { a: [1, 2.5, null] } });
      assert.equal(await s.putPolicy('b-policy', big), 'created');
      assert.equal(await s.putPolicy('a.policy_1', '{"n":1}'), 'created');
      assert.equal(await s.putPolicy('a.policy_1', '{"n":2}'), 'exists');
      assert.equal(await s.getPolicy('a.policy_1'), '{"n":1}', 'the first document stays');
      assert.equal(await s.getPolicy('b-policy'), big);
      assert.equal(await s.getPolicy('missing'), undefined);
      const g1 = await s.policyGeneration();
      assert.notEqual(g1, g0);
      const list = await s.listPolicies();
      const ids = list.map((p) => p.id).filter((id) => id === 'a.policy_1' || id === 'b-policy');
      assert.deepEqual(ids, ['a.policy_1', 'b-policy']);
      assert.deepEqual([...list.map((p) => p.id)], [...list.map((p) => p.id)].sort());
      assert.equal(await s.deletePolicy('a.policy_1'), true);
      assert.equal(await s.deletePolicy('a.policy_1'), false);
      assert.equal(await s.getPolicy('a.policy_1'), undefined);
      assert.notEqual(await s.policyGeneration(), g1);
      assert.equal(await s.deletePolicy('b-policy'), true);
    });

    it('refuses bad policy ids with POLICY_ID_INVALID', async () => {
      for (const id of ['', '.', '..', '../x', 'a/b', 'a\\b', 'x'.repeat(129), 'policy:x', 'a b', '{x}', '*', 'é']) {
        assert.equal(await code(s.putPolicy(id, '{}')), 'POLICY_ID_INVALID', JSON.stringify(id));
        assert.equal(await code(s.getPolicy(id)), 'POLICY_ID_INVALID', JSON.stringify(id));
        assert.equal(await code(s.deletePolicy(id)), 'POLICY_ID_INVALID', JSON.stringify(id));
      }
      assert.equal(await s.putPolicy('x'.repeat(128), '{}'), 'created');
      assert.equal(await s.deletePolicy('x'.repeat(128)), true);
    });

    it('caches blobs with replace and optional TTL', async () => {
      const k = `vcek/Genoa/${fresh().slice(0, 16)}`;
      assert.equal(await s.getBlob(k), undefined);
      const bytes = Buffer.from([0, 1, 2, 0x0a, 255, 0x0a]);
      await s.putBlob(k, bytes);
      assert.deepEqual(await s.getBlob(k), bytes);
      await s.putBlob(k, Buffer.from('second'), 1);
      assert.equal((await s.getBlob(k))?.toString(), 'second');
      await new Promise((r) => setTimeout(r, 1200)); // blob TTLs are wall-clock seconds
      assert.equal(await s.getBlob(k), undefined);
      assert.equal(await code(s.getBlob('has space')), 'INTERNAL');
    });

    it('counts rate-limit hits in fixed windows', async () => {
      const k = `client-${fresh()}`;
      const a = await s.hit(k, 400);
      const b = await s.hit(k, 400);
      assert.equal(a.count, 1);
      assert.equal(b.count, 2);
      assert.ok(b.resetMs > 0 && b.resetMs <= 400, String(b.resetMs));
      assert.equal((await s.hit(`other-${k}`, 400)).count, 1, 'keys are independent');
      await h.pass(500);
      assert.equal((await s.hit(k, 400)).count, 1, 'a new window starts');
    });

    it('issueCharged counts the hit on the rate counter every time and issues only within the limit', async () => {
      assert.equal(typeof s.issueCharged, 'function', 'both stores charge get_nonce in the issue');
      const k = `charged-${fresh()}`;
      const charge = { key: k, windowMs: 60_000, limit: 3 };
      await s.hit(k, 60_000); // another route of the same client: one budget
      const a = fresh();
      const r1 = await s.issueCharged!(a, 60_000, 1000, charge);
      assert.equal(r1.result, 'issued');
      assert.equal(r1.hit.count, 2);
      assert.ok(r1.hit.resetMs > 0 && r1.hit.resetMs <= 60_000, String(r1.hit.resetMs));
      assert.equal((await s.issueCharged!(a, 60_000, 1000, charge)).result, 'exists', 'a duplicate is still refused (and counted)');
      const b = fresh();
      const r3 = await s.issueCharged!(b, 60_000, 1000, charge);
      assert.equal(r3.result, 'limited');
      assert.equal(r3.hit.count, 4);
      assert.ok(r3.hit.resetMs >= 1);
      assert.equal(await s.claim(b, 'o', 10_000), 'invalid', 'nothing issued beyond the budget');
      assert.equal((await s.hit(k, 60_000)).count, 5, 'the refused charge was counted too');
      const c = fresh();
      assert.equal((await s.issueCharged!(c, 60_000, 1000, { key: `other-${k}`, windowMs: 60_000, limit: 1 })).result, 'issued', 'budgets are per key');
      assert.equal((await s.issueCharged!(fresh(), 60_000, 1, { key: `cap-${k}`, windowMs: 60_000, limit: 10 })).result, 'capacity', 'the cap still holds');
      assert.equal(await code(s.issueCharged!('not-a-nonce', 60_000, 1000, charge)), 'NONCE_FORMAT');
    });

    it('two instances share policies (and, on a shared backend, nonces and the rate budget)', async () => {
      const t = await open();
      assert.equal(await s.putPolicy('shared-p', '{"v":1}'), 'created');
      assert.equal(await t.getPolicy('shared-p'), '{"v":1}');
      assert.equal(await s.getPolicy('shared-p'), '{"v":1}');
      assert.equal(await t.putPolicy('shared-p', '{"v":2}'), 'exists');
      assert.ok((await t.listPolicies()).some((p) => p.id === 'shared-p'));
      assert.ok((await s.listPolicies()).some((p) => p.id === 'shared-p'));
      assert.equal(await t.deletePolicy('shared-p'), true);
      // Each instance read (and may cache) the document and the list above: a change made through
      // the other instance shows at once, on every read.
      assert.equal(await s.getPolicy('shared-p'), undefined);
      assert.ok(!(await s.listPolicies()).some((p) => p.id === 'shared-p'));
      assert.equal(await t.putPolicy('shared-p', '{"v":3}'), 'created');
      assert.equal(await s.getPolicy('shared-p'), '{"v":3}');
      assert.equal((await s.listPolicies()).find((p) => p.id === 'shared-p')?.doc, '{"v":3}');
      assert.equal(await s.deletePolicy('shared-p'), true);
      assert.equal(await t.getPolicy('shared-p'), undefined);
      if (h.sharedNonces) {
        const n = fresh();
        assert.equal(await s.issue(n, 60_000, 1000), 'issued');
        assert.equal(await t.claim(n, 'on-t', 10_000), 'claimed');
        assert.equal(await s.claim(n, 'on-s', 10_000), 'invalid');
        assert.equal(await t.consume(n, 'on-t'), true);
        const k = `fleet-${fresh()}`;
        for (let i = 0; i < 5; i++) await (i % 2 ? s : t).hit(k, 60_000);
        assert.equal((await s.hit(k, 60_000)).count, 6, 'one budget for the fleet');
        assert.equal((await t.issueCharged!(fresh(), 60_000, 1000, { key: k, windowMs: 60_000, limit: 6 })).result, 'limited', 'get_nonce on another node draws on it');
        assert.equal(await t.count(), await s.count());
      }
    });
  });
}
