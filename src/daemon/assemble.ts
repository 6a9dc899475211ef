/**
 * assemble builds the modules behind the edge from the configuration — store, nonces, policies,
 * key broker, SNP trust and verifier, KDS certificate cache — and joins them into the get_secret
 * pipeline (src/attest). It returns what startDaemon needs: the HTTP services and a configure hook
 * that attaches readiness checks, reload and close hooks to the AppContext.
 */
import { createHash } from 'node:crypto';
import { Counter, Gauge } from 'prom-client';
import type { Config } from '../config';
import { claimLeaseMs, Pipeline, type AttestPorts, type Attester, type EvidenceVerifier, type TeeType, type UsablePolicy as AttestPolicy } from '../attest';
import { TasError } from '../errors';
import { bodyLimit, clientAuth, managementAuth, policyAuth, type HttpServices, type RateLimitStore, type RouteModule, type StatusProvider } from '../http';
import { parseWrappingKey } from '../kbm';
import { KBM_API_VERSION, KbmError, KbmService, openKeyBroker } from '../kbm';
import { kbmUnconfigured, NO_KBM_REASON } from './preflight';
import { serviceMetrics } from './metrics';
import { CertIssuer, certSettings, openCertSigner } from '../cert';
import { certifyRoutes } from '../http/certify';
import type { CertCache } from '../kds';
import { createCertCache } from './certs';
import { snpEvidenceVerifier } from './snp-verifier';
import { GpuCache, gpuAppraiser, gpuComponentHook, gpuTestRootsWarning, loadGpuTrust, type GpuTrust } from '../gpu';
import { join } from 'node:path';
import { createCollateralCache } from './collateral';
import { tdxEvidenceVerifier } from './tdx-verifier';
import type { CollateralCache, CollateralUpdate } from '../pcs';
import { TdxVerifier } from '../tdx/verify';
import { loadTdxTrust, tdxTestRootsWarning, tdxTrustStatus, type TdxTrust } from '../tdx/trust';
import { registerTrustMetrics, registerVekTableMetric } from '../snp/metrics';
import { NonceService, nonceRoutes } from '../nonce';
import { attachPolicyService, evaluate, jcs, policyRouteModule, policyStatusProvider, repoFromStore, type UsablePolicy } from '../policy';
import { SnpVerifier, loadSnpTrust, testRootsWarning, trustStatus, type Product, type SnpTrust } from '../snp';
import { openStore, type Store } from '../store';
import type { AppContext } from './context';

/** Handles are the assembled modules, for `tas` subcommands and tests (set once configure ran). */
export interface Handles {
  store: Store;
  nonces: NonceService;
  cache: CertCache;
  collateral: CollateralCache;
}

export interface Assembly {
  readonly services: HttpServices & { rateLimitStore: RateLimitStore };
  /** The assembled modules; throws before configure() ran. */
  handles(): Handles;
  /** configure attaches everything to the context; call it from startDaemon's configure hook. */
  configure(ctx: AppContext): Promise<void>;
}

/** DelegatingAttester lets the edge be built before the pipeline exists (configure fills it in). */
class DelegatingAttester implements Attester {
  target: Attester | undefined;
  getSecret(...a: Parameters<Attester['getSecret']>): ReturnType<Attester['getSecret']> {
    if (!this.target) return Promise.reject(new TasError('HTTP_NOT_READY', 'attestation pipeline not assembled yet'));
    return this.target.getSecret(...a);
  }
}

export async function assemble(initial: Config): Promise<Assembly> {
  const attester = new DelegatingAttester();
  const routes: RouteModule[] = [];
  const status: StatusProvider[] = [];
  let store: Store | undefined;
  let handles: Handles | undefined;
  const rateLimitStore: RateLimitStore = {
    hit: (key, windowMs) => {
      if (!store) throw new TasError('HTTP_NOT_READY', 'store not open');
      return store.hit(key, windowMs);
    },
    // The nonces below live in this same store: get_nonce counts its hit inside the issue.
    get chargesWithNonces() {
      return typeof store?.issueCharged === 'function';
    },
  };

  async function configure(ctx: AppContext): Promise<void> {
    const cfg = ctx.config();
    const log = ctx.log;

    // State store (embedded or Redis).
    store = openStore(cfg, log.child({ module: 'store' }));
    const st = store;
    ctx.readiness.register('store', () => st.health());
    ctx.lifecycle.onClose(() => st.close());
    status.push({ name: 'store', status: () => st.info });

    // Policies.
    const policies = attachPolicyService(ctx, repoFromStore(st));
    routes.push(policyRouteModule(policies, { managementAuth, policyAuth, bodyLimit: bodyLimit.management }) as RouteModule);
    status.push(policyStatusProvider(policies));

    // Key broker plugin. None configured (the shipped /etc/tas/tas.yaml leaves it commented out):
    // serve not ready and say why (readiness `kbm`, STATUS= in `systemctl status`) instead of
    // exiting into a restart loop.
    const kbm: KbmService = kbmUnconfigured(cfg) ? unconfiguredBroker(ctx) : await openKeyBroker(cfg, ctx);
    if (kbmUnconfigured(cfg)) log.warn(NO_KBM_REASON);
    status.push({ name: 'key_broker', status: async () => ({ plugin: cfg.get<string>('kbm.plugin'), health: await kbm.health() }) });

    // Nonces. The claim lease outlives every timeout inside a claim (src/attest/lease.ts).
    const leaseMs = claimLeaseMs({ storeOpMs: st.opTimeoutMs, actionMs: kbm.timeoutMs });
    const nonces = new NonceService(st, {
      ttlSeconds: cfg.get<number>('nonce.ttl_seconds'),
      maxOutstanding: cfg.get<number>('nonce.max_outstanding'),
      leaseMs,
      log: log.child({ module: 'nonce' }),
    });
    ctx.lifecycle.onReload((c) => nonces.reload(c));
    routes.push(nonceRoutes(nonces, clientAuth));

    // SNP trust: pinned AMD roots, plus explicit extra (test/lab) roots, loudly.
    let trust: SnpTrust = loadSnpTrust({ extraTrustDir: cfg.get<string | undefined>('snp.extra_trust_dir') });
    const warn = testRootsWarning(trust);
    if (warn) log.warn(warn);
    let verifier = new SnpVerifier({ trust, v2Product: cfg.get<Product | undefined>('snp.v2_product') });
    ctx.lifecycle.onReload((c) => {
      trust = loadSnpTrust({ extraTrustDir: c.get<string | undefined>('snp.extra_trust_dir') });
      verifier = new SnpVerifier({ trust, v2Product: c.get<Product | undefined>('snp.v2_product') });
      const w = testRootsWarning(trust);
      if (w) log.warn(w);
    });
    status.push({ name: 'trust_roots', status: () => trustStatus(trust) });

    // KDS certificate cache.
    const kdsCalls = new Counter({ name: 'tas_kds_requests_total', help: 'Upstream KDS attempts by HTTP status (or error)', labelNames: ['status'], registers: [ctx.metrics] });
    const cacheEvents = new Counter({ name: 'tas_kds_cache_total', help: 'Certificate cache lookups by outcome', labelNames: ['outcome'], registers: [ctx.metrics] });
    const { cache, fetcher } = createCertCache({
      cfg, blobs: st, trust: () => trust,
      fetcher: { onAttempt: (status) => kdsCalls.inc({ status }) },
      onEvent: (kind) => cacheEvents.inc({ outcome: kind }),
    });
    new Gauge({
      name: 'tas_kds_crl_next_update_seconds', help: 'Seconds until the earliest cached CRL nextUpdate (negative: stale)', registers: [ctx.metrics],
      collect() {
        const t = cache.earliestCrlUpdate();
        if (t !== undefined) this.set((t - Date.now()) / 1000);
      },
    });
    new Gauge({
      name: 'tas_kds_cert_expiry_seconds', help: 'Seconds until the earliest cached VCEK/VLEK notAfter', registers: [ctx.metrics],
      collect() {
        const t = cache.earliestExpiry();
        if (t !== undefined) this.set((t - Date.now()) / 1000);
      },
    });
    // TDX trust: the pinned Intel root, plus explicit extra (test/lab) roots, loudly.
    let tdxTrust: TdxTrust = loadTdxTrust({ extraTrustDir: cfg.get<string | undefined>('tdx.extra_trust_dir') });
    const tdxWarn = tdxTestRootsWarning(tdxTrust);
    if (tdxWarn) log.warn(tdxWarn);
    const tdxVerifierFor = (c: Config, t: TdxTrust) => new TdxVerifier({ trustRoots: () => [...t.roots], minEvalNumber: () => c.get<number>('tdx.min_tcb_eval_number') });
    let tdxVerifier = tdxVerifierFor(cfg, tdxTrust);
    ctx.lifecycle.onReload((c) => {
      tdxTrust = loadTdxTrust({ extraTrustDir: c.get<string | undefined>('tdx.extra_trust_dir') });
      tdxVerifier = tdxVerifierFor(c, tdxTrust);
      const w = tdxTestRootsWarning(tdxTrust);
      if (w) log.warn(w);
    });
    status.push({ name: 'tdx_trust_roots', status: () => tdxTrustStatus(tdxTrust) });
    registerTrustMetrics(ctx.metrics, () => ({ testRoots: trust.testRoots || tdxTrust.testRoots }));
    registerVekTableMetric(ctx.metrics);

    // Intel PCS collateral cache (like KDS's, with its own metrics and status).
    const pcsCalls = new Counter({ name: 'tas_pcs_requests_total', help: 'Upstream Intel PCS attempts by HTTP status (or error)', labelNames: ['status'], registers: [ctx.metrics] });
    const pcsEvents = new Counter({ name: 'tas_pcs_cache_total', help: 'Intel collateral cache lookups by outcome', labelNames: ['outcome'], registers: [ctx.metrics] });
    const { cache: collateral, fetcher: pcsFetcher } = createCollateralCache({
      cfg, blobs: st, trust: () => tdxTrust,
      crlFailMode: () => ctx.config().get<'closed' | 'open'>('kds.crl_fail_mode'),
      fetcher: { onAttempt: (s) => pcsCalls.inc({ status: s }) },
      onEvent: (kind) => pcsEvents.inc({ outcome: kind }),
    });
    new Gauge({
      name: 'tas_pcs_collateral_next_update_seconds', help: 'Seconds until the earliest cached Intel collateral nextUpdate (TCB Info, QE identity, CRLs)', registers: [ctx.metrics],
      collect() {
        const t = collateral.earliestNextUpdate();
        if (t !== undefined) this.set((t - Date.now()) / 1000);
      },
    });
    ctx.lifecycle.onClose(() => pcsFetcher.close());
    ctx.lifecycle.onReload(() => collateral.clearMemory());
    status.push({
      name: 'pcs',
      status: () => ({
        base_url: cfg.get<string>('pcs.base_url'), offline: cfg.get<boolean>('pcs.offline'),
        collateral_update: ctx.config().get<string>('tdx.collateral_update'),
        memory_entries: collateral.memorySize(), stats: collateral.stats,
        earliest_next_update: collateral.earliestNextUpdate() ? new Date(collateral.earliestNextUpdate()!).toISOString() : null,
      }),
    });
    ctx.lifecycle.onClose(() => fetcher.close());
    status.push({
      name: 'kds',
      status: () => ({
        base_url: cfg.get<string>('kds.base_url'), offline: cfg.get<boolean>('kds.offline'),
        memory_entries: cache.memorySize(), stats: cache.stats,
        earliest_expiry: cache.earliestExpiry() ? new Date(cache.earliestExpiry()!).toISOString() : null,
        crl_next_update: cache.earliestCrlUpdate() ? new Date(cache.earliestCrlUpdate()!).toISOString() : null,
      }),
    });
    ctx.lifecycle.onReload(() => cache.clearMemory());

    // NVIDIA GPUs (component-evidence): pinned roots (+ lab roots, loudly), RIM and OCSP cache.
    let gpuTrust: GpuTrust = loadGpuTrust(cfg.get<string | undefined>('nvidia.extra_trust_dir'));
    const gpuWarn = gpuTestRootsWarning(gpuTrust);
    if (gpuWarn) log.warn(gpuWarn);
    ctx.lifecycle.onReload((c) => {
      gpuTrust = loadGpuTrust(c.get<string | undefined>('nvidia.extra_trust_dir'));
      const w = gpuTestRootsWarning(gpuTrust);
      if (w) log.warn(w);
    });
    const gpuCache = new GpuCache({
      dir: join(cfg.get<string>('kds.cache_dir'), 'nvidia'),
      rimUrl: cfg.get<string>('nvidia.rim_url'),
      ocspUrl: cfg.get<string>('nvidia.ocsp_url'),
      offline: () => ctx.config().get<boolean>('nvidia.offline'),
      failMode: () => ctx.config().get<'closed' | 'open'>('kds.crl_fail_mode'),
      trust: () => gpuTrust,
    });
    const gpuHook = gpuComponentHook(gpuAppraiser({ anchors: () => gpuTrust.deviceRoots, revocation: () => gpuCache.revocation(), rims: () => gpuCache.rims() }));
    status.push({ name: 'gpu', status: () => ({ ...gpuCache.status(), test_roots: gpuTrust.testRoots, extra_trust_dir: gpuTrust.extraTrustDir ?? null }) });

    const v2 = () => ctx.config().get<Product | undefined>('snp.v2_product');
    const parsedKeys = new WeakMap<Buffer, ReturnType<typeof parseWrappingKey>>();
    const snp = snpEvidenceVerifier({ verifier: () => verifier, cache, v2Product: v2, log, trust: () => trust });
    const tdx = tdxEvidenceVerifier({ verifier: () => tdxVerifier, cache: collateral, update: () => ctx.config().get<CollateralUpdate>('tdx.collateral_update'), log });
    const metrics = serviceMetrics(ctx.metrics);
    const release = metrics.release((keyId: string, wk: Buffer) => kbm.getSecret(keyId, parsedKeys.get(wk) ?? parseWrappingKey(wk)));
    const ports: AttestPorts = {
      verifiers: new Map<TeeType, EvidenceVerifier>([[snp.tee, metrics.verifier(snp as EvidenceVerifier)], [tdx.tee, metrics.verifier(tdx as EvidenceVerifier)]]),
      // component-evidence (GPUs, PROTOCOL.md §2.1): bound into REPORT_DATA; appraised under a GPU policy.
      components: gpuHook as AttestPorts['components'],
      nonces: {
        claim: (n, owner) => nonces.claim(n, owner),
        consume: (n, owner) => nonces.consume(n, owner),
        release: (n, owner) => nonces.release(n, owner),
        unconsume: (n, owner) => nonces.unconsume(n, owner),
        forgetConsumed: (n, owner) => nonces.forgetConsumed(n, owner),
      },
      policies: {
        forUse: async (id) => {
          try {
            return toPort(await policies.forUse(id));
          } catch (e) {
            if (e instanceof TasError && e.code === 'POLICY_NOT_FOUND') return undefined;
            throw e;
          }
        },
        byKeyId: async (keyId, type) => (await policies.findByKeyId(keyId, type, { includeUnsignedBinding: true })).map(toPort),
        evaluate: (pol, claims) => {
          const ev = evaluate((pol as AttestPolicy & { compiled: UsablePolicy }).compiled.rules, claims as never);
          return { ok: ev.ok, failures: ev.failures };
        },
        allowUnsignedKeyBinding: () => ctx.config().get<boolean>('policy.allow_unsigned_key_binding'),
      },
      broker: {
        // Parsed once per request: validateWrappingKey runs first, getSecret reuses its result.
        validateWrappingKey: (b) => void parsedKeys.set(b, parseWrappingKey(b)),
        getSecret: (keyId, wk) => release(keyId, wk),
      },
      requireBinding: (dialect) => {
        const v = ctx.config().get<boolean | undefined>('attest.require_binding');
        return v ?? dialect === 'policy-id';
      },
    };
    const pipeline = new Pipeline(ports, metrics.audit(ctx.audit), { leaseMs });
    attester.target = pipeline;

    // Workload certificates (PROTOCOL.md §2.2): routes and signer only when enabled.
    if (cfg.get<boolean>('cert.enabled')) {
      const signer = await openCertSigner(cfg, ctx);
      const settings = () => certSettings(ctx.config());
      const issuer = new CertIssuer(signer, settings);
      routes.push(certifyRoutes({ pipeline, issuer, settings, nonces }));
      status.push({
        name: 'cert_signer',
        status: async () => ({ plugin: cfg.get<string>('cert.plugin'), ready: (await signer.readiness()) ?? 'ok', ...(await signer.signer.describe?.()) }),
      });
    }
    handles = { store: st, nonces, cache, collateral };
  }

  function toPort(p: UsablePolicy): AttestPolicy & { compiled: UsablePolicy } {
    const md = p.document.metadata;
    return {
      id: p.id,
      keyId: md.key_id ?? '',
      policyType: p.policyType,
      requireBinding: md.require_report_data_binding,
      rules: p.document.validation_rules as Record<string, unknown>,
      keyBindingSigned: p.keyBindingSigned,
      digest: () => createHash('sha512').update(jcs(p.document)).digest(),
      ...(componentsOf(p) ? { components: componentsOf(p) } : {}),
      compiled: p,
    };
  }

  /** componentsOf reads the signed top-level `components` section (PROTOCOL.md §2.1), when present. */
  function componentsOf(p: UsablePolicy): Readonly<Record<string, unknown>> | undefined {
    const c = (p.document as { components?: unknown }).components;
    return c !== null && typeof c === 'object' && !Array.isArray(c) ? (c as Record<string, unknown>) : undefined;
  }

  void initial;
  return {
    services: { attester, routes, status, rateLimitStore },
    configure,
    handles: () => {
      if (!handles) throw new Error('assemble: configure() has not run');
      return handles;
    },
  };
}

/** unconfiguredBroker stands in when no key broker is configured: never ready, releases nothing. */
function unconfiguredBroker(ctx: AppContext): KbmService {
  const svc = new KbmService(
    {
      manifest: { name: 'none', apiVersion: KBM_API_VERSION, description: 'no key broker configured' },
      getSecret: async () => { throw new KbmError('unavailable', NO_KBM_REASON, { retryAfterSeconds: 300 }); },
      health: async () => ({ ok: false, detail: NO_KBM_REASON }),
      close: async () => undefined,
    },
    ctx.log.child({ kbm: 'none' }),
  );
  ctx.readiness.register('kbm', () => svc.readiness());
  return svc;
}
