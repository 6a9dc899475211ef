/**
 * Public surface of the policy module: document schema, signatures and trust, the rule engine, the
 * PolicyService and its routes. The daemon calls attachPolicyService once at start.
 */
import { Counter, Gauge } from 'prom-client';
import type { AppContext } from '../daemon/context';
import type { PolicyStore } from '../store/types';
import { PolicyService, type PolicyRepo, type PolicySettings } from './service';
import { PolicyTrust } from './trust';

export { PolicyService, MemoryPolicyRepo, keyBindingSigned, assertId } from './service';
export type { PolicyRepo, PolicySettings, UsablePolicy, PolicySummary, CallerContext, PolicyServiceOptions } from './service';
export { evaluate, compileRules, CompiledRules, OPERATORS, LIMITS as RULE_LIMITS } from './rules';
export type { Evaluation, RuleResult, CompiledRule, Claims, Operator } from './rules';
export { SEV_CLAIM_SCHEMA, claimSchemaFor } from './claims-schema';
export type { ClaimKind, ClaimNode } from './claims-schema';
export { parseDocument, policyTypeOf, normalisePolicyType, isLegacySigned, POLICY_ID_RE } from './schema';
export type { PolicyDocument, PolicyMetadata, PolicySignature, PolicyType, Dialect } from './schema';
export { signPolicy, verifyDocumentSignature, documentSigningBytes, legacySigningBytes, jcs, documentDigest, pythonSortedCompactJson } from './signature';
export type { SignOptions, SignatureVerdict } from './signature';
export { PolicyTrust, loadTrust, parseTrustPem, TrustError } from './trust';
export type { TrustedKey } from './trust';
export { registerPolicyRoutes, policyRouteModule, parseFirstDialectKey, firstDialectDocument } from './routes';
export type { PolicyRouteDeps, PolicyRouteModule } from './routes';

/** repoFromStore adapts the store module's PolicyStore (embedded or Redis) to a PolicyRepo. */
export function repoFromStore(store: PolicyStore): PolicyRepo {
  return {
    putIfAbsent: async (id, document) => (await store.putPolicy(id, document)) === 'created',
    get: (id) => store.getPolicy(id),
    delete: (id) => store.deletePolicy(id),
    list: async () => (await store.listPolicies()).map((p) => ({ id: p.id, document: p.doc })),
  };
}

/** settingsFrom reads the policy settings of the current configuration. */
export function settingsFrom(ctx: Pick<AppContext, 'config'>): PolicySettings {
  const cfg = ctx.config();
  return {
    enforceSigned: cfg.get<boolean>('policy.enforce_signed') ?? true,
    allowUnsignedKeyBinding: cfg.get<boolean>('policy.allow_unsigned_key_binding') ?? false,
  };
}

/**
 * attachPolicyService builds the service for the daemon: loads TAS_POLICY_TRUST (a bad path or PEM
 * stops startup), re-reads it on SIGHUP (a bad reload keeps the previous set and logs why) and
 * warns when signatures are enforced but no key is trusted (every policy would be refused).
 */
export function attachPolicyService(ctx: AppContext, repo: PolicyRepo): PolicyService {
  const trustPath = ctx.config().get<string | undefined>('policy.trust');
  const trust = PolicyTrust.fromPath(trustPath);
  const log = ctx.log.child({ module: 'policy' });
  const report = () => {
    log.info({ trust: trust.source, keys: trust.keys.map((k) => k.fingerprint), generation: trust.generation }, 'policy trust loaded');
    if (trust.keys.length === 0 && settingsFrom(ctx).enforceSigned) {
      log.warn('TAS_POLICY_TRUST names no key while TAS_ENFORCE_SIGNED_POLICIES is true: every policy will be refused');
    }
  };
  report();
  const service = new PolicyService({ repo, trust, settings: () => settingsFrom(ctx), log, audit: ctx.audit });
  registerPolicyMetrics(ctx, service);
  ctx.lifecycle.onReload((cfg) => {
    try {
      const r = trust.reload(cfg.get<string | undefined>('policy.trust'));
      service.clearCache();
      if (r.skipped.length) log.warn({ skipped: r.skipped }, 'files without keys in TAS_POLICY_TRUST skipped');
      report();
    } catch (e) {
      log.error({ err: (e as Error).message }, 'policy trust reload failed; previous trust set kept');
    }
  });
  return service;
}

/** policyStatusProvider is the `policy` member of GET /management/status (src/http StatusProvider shape). */
export function policyStatusProvider(service: PolicyService): { name: string; status(): unknown } {
  return { name: 'policy', status: () => service.status() };
}

/**
 * registerPolicyMetrics exports the verification counters (read at scrape time). Registering twice
 * on one registry (tests building several services) keeps the first.
 */
function registerPolicyMetrics(ctx: AppContext, service: PolicyService): void {
  // Cumulative numbers are counters named _total (advanced to the service's count at scrape time).
  const counters: Array<[string, string, () => number]> = [
    ['tas_policy_signature_verifications_total', 'Policy signature verifications performed (cache misses).', () => service.stats.verifications],
    ['tas_policy_verdict_cache_hits_total', 'Policy uses served from the verdict cache.', () => service.stats.cacheHits],
  ];
  for (const [name, help, read] of counters) {
    if (ctx.metrics.getSingleMetric(name) !== undefined) continue;
    let seen = 0;
    new Counter({
      name,
      help,
      registers: [ctx.metrics],
      collect() {
        const now = read();
        if (now > seen) this.inc(now - seen);
        seen = now;
      },
    });
  }
  if (ctx.metrics.getSingleMetric('tas_policy_trusted_keys') === undefined) {
    new Gauge({
      name: 'tas_policy_trusted_keys',
      help: 'Keys in the policy trust set (TAS_POLICY_TRUST).',
      registers: [ctx.metrics],
      collect() {
        this.set(service.trust.keys.length);
      },
    });
  }
}
