/**
 * assemble builds the modules behind the edge from the configuration — store, nonces, policies,
 * key broker, SNP trust and verifier, KDS certificate cache — and joins them into the get_secret
 * pipeline (src/attest). It returns what startDaemon needs: the HTTP services and a configure hook
 * that attaches readiness checks, reload and close hooks to the AppContext.
 */
import { Counter, Gauge } from 'prom-client';
import type { Config } from '../config';
import { Pipeline, type AttestPorts, type Attester, type EndorsementCerts, type ReportPeek as AttestPeek, type UsablePolicy as AttestPolicy } from '../attest';
import { TasError } from '../errors';
import { bodyLimit, clientAuth, managementAuth, policyAuth, type HttpServices, type RateLimitStore, type RouteModule, type StatusProvider } from '../http';
import { parseWrappingKey } from '../kbm';
import { KBM_API_VERSION, KbmError, KbmService, openKeyBroker } from '../kbm';
import { kbmUnconfigured, NO_KBM_REASON } from './preflight';
import { parseTeeCertificates, type CertCache, type EvidenceCerts } from '../kds';
import { createCertCache, normSerial, serialHex } from './certs';
import { registerTrustMetrics } from '../snp/metrics';
import { certInfo, NativeError } from '../native';
import { NonceService, nonceRoutes } from '../nonce';
import { attachPolicyService, evaluate, policyRouteModule, policyStatusProvider, repoFromStore, type UsablePolicy } from '../policy';
import { SnpVerifier, loadSnpTrust, peekReport, testRootsWarning, trustStatus, type Product, type SnpTrust } from '../snp';
import { openStore, type Store } from '../store';
import type { AppContext } from './context';

/** Handles are the assembled modules, for `tas` subcommands and tests (set once configure ran). */
export interface Handles {
  store: Store;
  nonces: NonceService;
  cache: CertCache;
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

/** classify sorts evidence certificates (a PEM bundle does not say which is which). */
function classify(ec: EvidenceCerts): { vcek?: Buffer; vlek?: Buffer; intermediate?: Buffer } {
  const out: { vcek?: Buffer; vlek?: Buffer; intermediate?: Buffer } = {};
  if (ec.vcek) out.vcek = ec.vcek;
  if (ec.vlek) out.vlek = ec.vlek;
  if (ec.ask) out.intermediate = ec.ask;
  for (const der of ec.unclassified) {
    let cn: string;
    try {
      cn = certInfo(der).subjectCN;
    } catch (e) {
      throw e instanceof NativeError ? new TasError('HTTP_BAD_REQUEST', `tee-certificates: ${e.message}`, { reason: e.code }) : e;
    }
    if (cn === 'SEV-VCEK') out.vcek ??= der;
    else if (cn === 'SEV-VLEK') out.vlek ??= der;
    else if (/^SEV-(VLEK-)?(Milan|Genoa|Turin)$/.test(cn)) out.intermediate ??= der;
    // ARKs in evidence are ignored: trust comes only from the pinned (and explicit extra) anchors.
  }
  return out;
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

    // Nonces.
    const nonces = new NonceService(st, {
      ttlSeconds: cfg.get<number>('nonce.ttl_seconds'),
      maxOutstanding: cfg.get<number>('nonce.max_outstanding'),
      log: log.child({ module: 'nonce' }),
    });
    ctx.lifecycle.onReload((c) => nonces.reload(c));
    routes.push(nonceRoutes(nonces, clientAuth));

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
    registerTrustMetrics(ctx.metrics, () => trust);
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

    const v2 = () => ctx.config().get<Product | undefined>('snp.v2_product');
    const parsedKeys = new WeakMap<Buffer, ReturnType<typeof parseWrappingKey>>();
    const ports: AttestPorts = {
      peek(report) {
        const p = peekReport(report, { v2Product: v2() });
        if (p.productError) throw p.productError;
        if (!p.signingKey) throw new TasError('TEE_VERIFICATION_FAILED', 'SIGNING_KEY names no endorsement key', { reason: 'SNP_ERR_SIGNER_KIND' });
        const out: AttestPeek & { raw: typeof p } = { version: p.version, product: p.product, signingKey: p.signingKey, chipIdMasked: p.chipIdMasked, raw: p };
        return out;
      },
      async certificates(_report, peek, tee): Promise<EndorsementCerts> {
        const raw = (peek as AttestPeek & { raw: ReturnType<typeof peekReport> }).raw;
        if (tee) {
          const c = classify(parseTeeCertificates(tee));
          const leaf = peek.signingKey === 'VCEK' ? c.vcek : c.vlek;
          if (!leaf) throw new TasError('TEE_VERIFICATION_FAILED', `tee-certificates hold no ${peek.signingKey}`, { reason: 'SNP_ERR_SIGNER_KIND' });
          return { leaf, ...(c.intermediate ? { intermediate: c.intermediate } : {}), source: 'evidence' };
        }
        if (peek.signingKey === 'VLEK') {
          throw new TasError('TEE_VERIFICATION_FAILED', 'a VLEK report needs its VLEK in tee-certificates (KDS does not serve VLEKs publicly)', { reason: 'VLEK_NOT_SUPPLIED' });
        }
        const t = raw.reportedTcb!;
        const r = await cache.vcek(peek.product!, Buffer.from(raw.chipId, 'hex'), { bootloader: t.bootloader, tee: t.tee, snp: t.snp, microcode: t.microcode, fmc: t.fmc });
        return { leaf: r.leaf, ...(r.intermediate ? { intermediate: r.intermediate } : {}), source: r.source };
      },
      async verify(report, certs, peek) {
        const product = peek.product!;
        const crl = await cache.crl(product, peek.signingKey);
        // The cache verified the CRL (ARK signature, freshness) when it loaded it and noted which
        // known intermediates and leaves it revokes; with an intermediate the cache vouched for, a
        // request only looks serials up. Intermediates from the evidence get the full native check.
        const fast = crl.der !== undefined && crl.revoked !== undefined && certs.intermediate !== undefined && certs.source !== 'evidence';
        const v = await verifier.verify({
          report, vek: certs.leaf, intermediate: certs.intermediate, crl: fast ? undefined : crl.der, at: new Date(), product,
        });
        if (fast) {
          const hit = [serialHex(certs.intermediate!), normSerial(v.vek.serialHex)].find((s) => crl.revoked!.has(s));
          if (hit) throw new TasError('TEE_VERIFICATION_FAILED', `certificate serial ${hit} is revoked by the ${product} CRL`, { reason: 'SNP_ERR_REVOKED' });
        }
        if (crl.note) log.warn({ product }, crl.note);
        const claims = v.claims as unknown as Record<string, unknown>;
        return { claims, reportData: Buffer.from(String(claims.report_data), 'hex'), product: v.product, ...(crl.note ? { notes: [crl.note] } : {}) };
      },
      nonces: {
        claim: (n, owner) => nonces.claim(n, owner),
        consume: (n, owner) => nonces.consume(n, owner),
        release: (n, owner) => nonces.release(n, owner),
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
        getSecret: (keyId, wk) => kbm.getSecret(keyId, parsedKeys.get(wk) ?? parseWrappingKey(wk)),
      },
      requireBinding: (dialect) => {
        const v = ctx.config().get<boolean | undefined>('attest.require_binding');
        return v ?? dialect === 'policy-id';
      },
    };
    attester.target = new Pipeline(ports, ctx.audit);
    handles = { store: st, nonces, cache };
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
      compiled: p,
    };
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
