/**
 * Hostile documents: seeded random mutations of valid policies and envelopes must end in a
 * TasError with a 4xx status (or be accepted), never in another exception (which would be a 500).
 */
import assert from 'node:assert/strict';
import { isTasError } from '../../src/errors';
import { firstDialectDocument, MemoryPolicyRepo, PolicyService, PolicyTrust, signPolicy } from '../../src/policy';
import { doc, signer } from './helpers';

/** mulberry32: small deterministic PRNG so that a failure reproduces. */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Infinity and -Infinity are what JSON.parse makes of 1e400 and -1e400.
const ODD: unknown[] = [null, true, false, 0, -1, 1.5, 2 ** 64, Infinity, -Infinity, '', 'x', '0x', 'SNP', [], [1, 'a'], {}, { exact_match: 1 }, { min_value: '9' }, 'constructor', { __proto__: 1 }, 'a'.repeat(5000)];
const KEYS = ['metadata', 'validation_rules', 'signature', 'policy_id', 'key_id', 'policy_type', 'signed_data', 'padding', 'value', 'measurement', 'vmpl', 'policy', 'debug_allowed', 'exact_match', 'allow_list', 'min_version', 'constructor', '__proto__', 'x'];

function mutate(v: unknown, rnd: () => number, depth = 0): unknown {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  if (rnd() < 0.15 || depth > 6) return structuredClone(pick(ODD));
  if (Array.isArray(v)) return v.map((x) => (rnd() < 0.3 ? mutate(x, rnd, depth + 1) : x));
  if (v !== null && typeof v === 'object') {
    const o: Record<string, unknown> = { ...(v as Record<string, unknown>) };
    const keys = Object.keys(o);
    if (keys.length && rnd() < 0.3) delete o[pick(keys)];
    if (rnd() < 0.3) Object.defineProperty(o, pick(KEYS), { value: structuredClone(pick(ODD)), enumerable: true, configurable: true, writable: true });
    for (const k of Object.keys(o)) if (rnd() < 0.3) o[k] = mutate(o[k], rnd, depth + 1);
    return o;
  }
  return rnd() < 0.5 ? structuredClone(pick(ODD)) : v;
}

describe('policy robustness (seeded random documents)', () => {
  const a = signer('robust');
  const svc = new PolicyService({ repo: new MemoryPolicyRepo(), trust: new PolicyTrust([a.trusted]), settings: () => ({ enforceSigned: false, allowUnsignedKeyBinding: false }) });
  const base = signPolicy(doc('robust'), a.privateKey);

  it('2000 mutated documents: every refusal is a 4xx TasError', () => {
    const rnd = prng(0x7a5);
    let refused = 0;
    let accepted = 0;
    for (let i = 0; i < 2000; i++) {
      const m = mutate(base, rnd);
      for (const dialect of ['management', 'first'] as const) {
        try {
          svc.check(m, dialect);
          accepted++;
        } catch (e) {
          assert.ok(isTasError(e) && e.status >= 400 && e.status < 500, `iteration ${i}: ${String(e)} for ${JSON.stringify(m).slice(0, 300)}`);
          refused++;
        }
      }
    }
    assert.ok(refused > 1000, `refused ${refused}`);
    assert.ok(accepted > 0, `accepted ${accepted}`);
  });

  it('1000 mutated first-dialect envelopes: every refusal is a 4xx TasError', () => {
    const rnd = prng(0x3d1);
    const env = { policy_type: 'SNP', policy_identifier: 'robust', key_id: 'k', policy: doc('robust') };
    let refused = 0;
    for (let i = 0; i < 1000; i++) {
      const m = mutate(env, rnd);
      try {
        const { doc: d } = firstDialectDocument(m);
        svc.check(d, 'first');
      } catch (e) {
        assert.ok(isTasError(e) && e.status >= 400 && e.status < 500, `iteration ${i}: ${String(e)} for ${JSON.stringify(m).slice(0, 300)}`);
        refused++;
      }
    }
    assert.ok(refused > 500, `refused ${refused}`);
  });
});
