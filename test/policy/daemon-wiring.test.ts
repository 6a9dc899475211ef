/** attachPolicyService: TAS_POLICY_TRUST loaded at start, re-read on SIGHUP (lifecycle reload). */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import type { AppContext } from '../../src/daemon/context';
import { createLifecycle, createReadiness } from '../../src/daemon/runtime';
import { isTasError } from '../../src/errors';
import { attachPolicyService, MemoryPolicyRepo, signPolicy } from '../../src/policy';
import { MemoryAudit, capturedLog, testConfig } from '../support/daemon';
import { doc, signer } from './helpers';

describe('policy service wiring (settings, SIGHUP trust reload)', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tas-policy-wiring-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('reads TAS_POLICY_TRUST and the enforcement settings; a reload swaps keys and voids cached verdicts', async () => {
    const a = signer('wire-A');
    const b = signer('wire-B');
    const trustFile = join(dir, 'trust.pem');
    writeFileSync(trustFile, a.publicPem);
    let cfg = testConfig({ TAS_POLICY_TRUST: trustFile });
    const lifecycle = createLifecycle();
    const { log, lines } = capturedLog();
    const audit = new MemoryAudit();
    const ctx: AppContext = { config: () => cfg, log, audit, metrics: new Registry(), readiness: createReadiness(200), lifecycle };
    const svc = attachPolicyService(ctx, new MemoryPolicyRepo());
    assert.equal(svc.trust.keys.length, 1);

    await svc.store(signPolicy(doc('w1'), a.privateKey), { dialect: 'management' });
    assert.equal(audit.records.length, 1);
    await svc.forUse('w1');
    assert.equal(svc.stats.verifications, 1);

    // SIGHUP with B only: the stored policy stops verifying at once.
    writeFileSync(trustFile, b.publicPem);
    assert.deepEqual(await lifecycle.runReload(cfg), []);
    await assert.rejects(svc.forUse('w1'), (e: unknown) => isTasError(e) && e.code === 'POLICY_SIGNATURE_FAILED');

    // A broken reload keeps the previous set and logs why.
    cfg = testConfig({ TAS_POLICY_TRUST: join(dir, 'missing.pem') });
    await lifecycle.runReload(cfg);
    assert.equal(svc.trust.keys[0]!.fingerprint, b.trusted.fingerprint);
    assert.ok(lines.some((l) => /policy trust reload failed/.test(String(l.msg))));

    // Status and metrics show the trust set (fingerprints only) and the counters.
    const st = svc.status() as { trusted_keys: Array<{ fingerprint: string }>; trust_generation: number; signature_verifications: number };
    assert.deepEqual(st.trusted_keys.map((k) => k.fingerprint), [b.trusted.fingerprint]);
    assert.equal(st.trust_generation, 2);
    assert.equal(st.signature_verifications, 2);
    const metrics = await ctx.metrics.metrics();
    assert.match(metrics, /tas_policy_signature_verifications_total 2/);
    assert.match(metrics, /tas_policy_trusted_keys 1/);

    // Enforcement follows the current configuration.
    cfg = testConfig({ TAS_POLICY_TRUST: trustFile, TAS_ENFORCE_SIGNED_POLICIES: 'false', TAS_ALLOW_UNSIGNED_KEY_BINDING: 'true' });
    const u = await svc.store(doc('w2'), { dialect: 'management' });
    assert.equal(svc.keyReleaseAllowed(u), true);
    cfg = testConfig({ TAS_POLICY_TRUST: trustFile });
    await assert.rejects(svc.forUse('w2'), (e: unknown) => isTasError(e) && e.code === 'POLICY_UNSIGNED');
  });

  it('an unreadable TAS_POLICY_TRUST stops startup; no trust with enforcement on is logged loudly', () => {
    const ctxFor = (env: Record<string, string>) => {
      const { log, lines } = capturedLog();
      const cfg = testConfig(env);
      const ctx: AppContext = { config: () => cfg, log, audit: new MemoryAudit(), metrics: new Registry(), readiness: createReadiness(200), lifecycle: createLifecycle() };
      return { ctx, lines };
    };
    assert.throws(() => attachPolicyService(ctxFor({ TAS_POLICY_TRUST: join(dir, 'nope') }).ctx, new MemoryPolicyRepo()), /ENOENT/);
    const { ctx, lines } = ctxFor({});
    attachPolicyService(ctx, new MemoryPolicyRepo());
    assert.ok(lines.some((l) => l.level === 40 && /every policy will be refused/.test(String(l.msg))));
  });
});
