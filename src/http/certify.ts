/**
 * certify routes (PROTOCOL.md §2.2), registered only when TAS_CERT_ENABLED:
 *
 *   GET  /alphav1/nonce      client key; the same nonce store and life cycle as get_nonce
 *   POST /alphav1/certify    client key; attested issuance or renewal of a workload certificate
 *   GET  /alphav1/ca-bundle  no key (relying parties need it); the active chain as PEM
 *
 * POST /alphav1/certify runs the get_secret pipeline (src/attest) with the CSR's key bound into
 * REPORT_DATA and the policy `policy:<policy-domain>` deciding; the final action issues the
 * certificate, run only by the request that won the nonce. Statuses are the original's for this
 * route: 400 malformed input or renewal refused, 403 bad nonce or failed attestation, 503 +
 * Retry-After when transient (the nonce is kept).
 */
import type { FastifyInstance } from 'fastify';
import type { AttestAction, AttestRequest } from '../attest/pipeline';
import type { RequestContext, TeeType } from '../attest/types';
import type { UsablePolicy } from '../attest/ports';
import type { VerifiedEvidence } from '../attest/verifier';
import { sanitizeCsr, type CertIssuer, type CertSettings, type EvidenceEntry, type SanitizedCsr } from '../cert';
import type { AppContext } from '../daemon/context';
import { isTasError, TasError, type ErrorCode } from '../errors';
import { clientAuth } from './auth';
import { decodeBase64Strict, fieldLimits, ID_RE, parseNonce } from './get-secret';
import { bodyLimit } from './limits';
import type { RouteModule } from './server';

/** AttestRunner is the pipeline's generic entry (Pipeline.attest). */
export interface AttestRunner {
  attest<T>(req: AttestRequest, rctx: RequestContext, action: AttestAction<T>): Promise<T>;
}

/** CertifyRequest is a syntactically valid certify body. */
export interface CertifyRequest {
  readonly teeType: TeeType;
  readonly nonce: string;
  readonly evidence: Buffer;
  readonly certificates: Buffer | undefined;
  readonly csr: Buffer;
  readonly policyDomain: string;
  readonly renewCert: string | undefined;
  /** `gpu-evidence` entries as sent, and their decoded evidence for the digest extension. */
  readonly gpu: readonly Record<string, unknown>[] | undefined;
  readonly gpuRaw: readonly { type: string; index: number; raw: Buffer }[];
}

const TEE_TYPES: readonly TeeType[] = ['amd-sev-snp', 'intel-tdx'];
/** CSRs are bounded again by TAS_CERT_MAX_CSR_BYTES (at most 64 KiB); renew_cert is one PEM certificate. */
const CSR_FIELD_MAX = 64 * 1024;
const RENEW_CERT_MAX = 16 * 1024;
const GPU_MAX = 16;
const GPU_EVIDENCE_MAX = 64 * 1024;

function bad(field: string, why: string): TasError {
  return new TasError('CERT_REQUEST_INVALID', `${field}: ${why}`, { reason: 'REQUEST_FIELD_INVALID', params: { field } });
}

function present(b: Record<string, unknown>, k: string): unknown {
  const v = Object.hasOwn(b, k) ? b[k] : undefined;
  return v === null ? undefined : v;
}

/** parseCertifyRequest validates a parsed JSON body; throws TasError naming the first bad field. */
export function parseCertifyRequest(body: unknown): CertifyRequest {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new TasError('CERT_REQUEST_INVALID', 'body must be a JSON object', { reason: 'REQUEST_INVALID' });
  const b = body as Record<string, unknown>;
  const teeType = present(b, 'tee-type');
  if (typeof teeType !== 'string') throw bad('tee-type', 'must be a string');
  if (!(TEE_TYPES as readonly string[]).includes(teeType)) throw new TasError('TEE_TYPE_UNSUPPORTED', `tee-type: unknown value (length ${teeType.length})`, { reason: 'TEE_TYPE_UNKNOWN' });
  const nonce = parseNonce(present(b, 'nonce'));
  const evidence = decodeBase64Strict('tee-evidence', present(b, 'tee-evidence'), fieldLimits.evidenceBytes);
  const certsRaw = present(b, 'tee-certificates');
  const certificates = certsRaw === undefined ? undefined : decodeBase64Strict('tee-certificates', certsRaw, fieldLimits.certificatesBytes);
  const csr = decodeBase64Strict('csr', present(b, 'csr'), CSR_FIELD_MAX);

  // The original's newer drafts call the field domain-policy: either name, never both.
  const pd = present(b, 'policy-domain');
  const dp = present(b, 'domain-policy');
  if (pd !== undefined && dp !== undefined) throw bad('policy-domain', 'send policy-domain or domain-policy, not both');
  const domain = pd ?? dp;
  if (typeof domain !== 'string') throw bad('policy-domain', 'is required (a string)');
  if (!ID_RE.test(domain)) throw bad('policy-domain', `does not match ^[A-Za-z0-9_.-]{1,128}$ (length ${domain.length})`);
  if (domain === '.' || domain === '..') throw bad('policy-domain', 'must not be a dot segment (it is a SPIFFE path segment)');

  const renew = present(b, 'renew_cert');
  if (renew !== undefined && (typeof renew !== 'string' || renew.trim() === '' || renew.length > RENEW_CERT_MAX)) throw bad('renew_cert', `must be a non-empty PEM string of at most ${RENEW_CERT_MAX} characters`);

  const gpuIn = present(b, 'gpu-evidence');
  let gpu: Record<string, unknown>[] | undefined;
  const gpuRaw: { type: string; index: number; raw: Buffer }[] = [];
  if (gpuIn !== undefined) {
    if (!Array.isArray(gpuIn) || gpuIn.length === 0 || gpuIn.length > GPU_MAX) throw bad('gpu-evidence', `must be a list of 1..${GPU_MAX} entries`);
    gpu = gpuIn as Record<string, unknown>[];
    gpuIn.forEach((e: unknown, i) => {
      if (e === null || typeof e !== 'object' || Array.isArray(e)) throw bad('gpu-evidence', `entry ${i} is not an object`);
      const o = e as Record<string, unknown>;
      const idx = o['device-index'];
      if (typeof o.type !== 'string' || !/^[a-z0-9-]{1,32}$/.test(o.type)) throw bad('gpu-evidence', `entry ${i}: type must be a short lower-case name`);
      if (typeof idx !== 'number' || !Number.isSafeInteger(idx) || idx < 0 || idx >= GPU_MAX) throw bad('gpu-evidence', `entry ${i}: device-index must be 0..${GPU_MAX - 1}`);
      gpuRaw.push({ type: o.type, index: idx, raw: decodeBase64Strict(`gpu-evidence[${i}].evidence`, o.evidence, GPU_EVIDENCE_MAX) });
    });
  }
  return {
    teeType: teeType as TeeType, nonce, evidence, certificates, csr, policyDomain: domain,
    renewCert: renew as string | undefined, gpu, gpuRaw,
  };
}

/** TEE evidence names of the evidence-digests extension (the original's). */
const EVIDENCE_TYPE: Record<TeeType, string> = { 'amd-sev-snp': 'sev-snp-report', 'intel-tdx': 'tdx-report' };

/** Pipeline codes this route answers with its own statuses (403 for nonce and attestation). */
const REMAP: Partial<Record<ErrorCode, ErrorCode>> = {
  NONCE_INVALID: 'CERT_NONCE_INVALID',
  TEE_VERIFICATION_FAILED: 'CERT_ATTESTATION_FAILED',
  POLICY_NOT_FOUND: 'CERT_ATTESTATION_FAILED',
  KBM_NOT_BOUND: 'CERT_ATTESTATION_FAILED',
};

function remap(e: unknown): unknown {
  if (!isTasError(e)) return e;
  const to = REMAP[e.code];
  return to ? new TasError(to, e.detail, { reason: e.reason, cause: e }) : e;
}

export interface CertifyDeps {
  readonly pipeline: AttestRunner;
  readonly issuer: CertIssuer;
  readonly settings: () => CertSettings;
  readonly nonces: { issue(): Promise<string> };
}

/** certify runs one parsed request (exported for tests and the bench). */
export async function certify(deps: CertifyDeps, req: CertifyRequest, csr: SanitizedCsr, rctx: RequestContext): Promise<{ certificate: string; ca_chain: string[]; ca_bundle: string }> {
  const evidence: EvidenceEntry[] = [
    { platformId: req.teeType, role: 'cpu', evidenceType: EVIDENCE_TYPE[req.teeType], raw: req.evidence },
    ...[...req.gpuRaw].sort((a, b) => a.index - b.index).map((g) => ({ platformId: g.type, slot: g.index, evidenceType: 'gpu-attestation-report', raw: g.raw })),
  ];
  const platforms = [req.teeType, ...req.gpuRaw.map((g) => g.type)];
  let uuid: string | undefined;
  const action: AttestAction<{ certificate: string; ca_chain: string[]; ca_bundle: string }> = {
    validate: () => {
      // Refusals that no attestation can fix come before any state changes (the nonce is kept);
      // so does a signer that is not ready (503: the agent's retry finds its nonce issued).
      deps.issuer.caBundle();
      deps.issuer.checkEvidenceDigests(evidence);
      uuid = req.renewCert !== undefined ? deps.issuer.checkRenewal(req.renewCert, csr, req.policyDomain, new Date()) : deps.issuer.newUuid();
    },
    run: async (policy: UsablePolicy, _ev: VerifiedEvidence, trail: Record<string, unknown>) => {
      const issued = await deps.issuer.issue({
        csr, policyDomain: req.policyDomain, spiffeUuid: uuid!, policyDigest: policy.digest?.() ?? Buffer.alloc(64),
        platforms, evidence, now: new Date(),
      });
      Object.assign(trail, { serial: issued.serial, spiffe_id: issued.spiffeId, not_after: issued.notAfter });
      return issued.reply;
    },
  };
  try {
    return await deps.pipeline.attest(
      {
        event: 'certify', teeType: req.teeType, nonce: req.nonce, evidence: req.evidence, certificates: req.certificates,
        policyId: req.policyDomain, keyId: undefined, reportDataBinding: true, bindingKey: csr.bindingKey,
        ...(req.gpu ? { components: { gpu: req.gpu } } : {}),
        needsKeyBinding: false, allowReason: 'ISSUED',
        trail: {
          policy_domain: req.policyDomain, renewal: req.renewCert !== undefined, csr_key: `${csr.keyType}-${csr.keyBits}`,
          csr_sans: { dns: csr.dns.length, ip: csr.ips.length, email: csr.emails.length }, csr_sans_dropped: csr.dropped,
        },
      },
      rctx,
      action,
    );
  } catch (e) {
    throw remap(e);
  }
}

/** registerCertify adds the three routes. */
export function registerCertify(app: FastifyInstance, ctx: AppContext, deps: CertifyDeps): void {
  app.get('/alphav1/nonce', { onRequest: clientAuth }, async (request) => {
    const nonce = await deps.nonces.issue();
    ctx.audit.record({ event: 'get_nonce', outcome: 'allow', reason: 'OK', requestId: request.id, client: request.clientAddress, details: { route: '/alphav1/nonce' } });
    return { nonce };
  });

  app.get('/alphav1/ca-bundle', { bodyLimit: bodyLimit.default }, async (_request, reply) => {
    const bundle = deps.issuer.caBundle();
    void reply.header('content-type', 'application/pem-certificate-chain');
    return bundle;
  });

  app.post('/alphav1/certify', { bodyLimit: bodyLimit.getSecret, onRequest: clientAuth }, async (request) => {
    const rctx = { requestId: request.id, clientAddress: request.clientAddress };
    let req: CertifyRequest;
    let csr: SanitizedCsr;
    try {
      req = parseCertifyRequest(request.body);
      const s = deps.settings();
      csr = sanitizeCsr(req.csr, { allowedKeyTypes: s.allowedKeyTypes, maxBytes: s.maxCsrBytes });
    } catch (e) {
      // Refused before the pipeline saw it: the nonce is untouched; the record has the reason only.
      const t = isTasError(e) ? e : new TasError('CERT_REQUEST_INVALID', String(e));
      app.tasEdge.audit.record({ event: 'certify', outcome: 'deny', reason: t.reason ?? 'REQUEST_INVALID', requestId: request.id, client: request.clientAddress, details: { code: t.code, field: t.params?.field, detail: t.detail } });
      throw t;
    }
    return app.tasEdge.inflight.run(() => certify(deps, req, csr, rctx));
  });
}

/** certifyRoutes is the RouteModule the composition root adds when TAS_CERT_ENABLED. */
export function certifyRoutes(deps: CertifyDeps): RouteModule {
  return { name: 'certify', scope: 'client', register: (app, ctx) => registerCertify(app, ctx, deps) };
}
