/**
 * The get_secret pipeline (DESIGN.md "Data flow of one attestation", PROTOCOL.md §2):
 *
 *   decode -> certificates -> native verification -> REPORT_DATA binding -> nonce claim
 *   -> policy (signature re-check, rules) -> key release -> nonce consumed -> one audit record
 *
 * Ordering is what makes the nonce safe:
 *  - malformed input never touches the nonce (the request is refused before any state changes);
 *  - transient trouble (KDS, store or key backend unavailable) answers 503 + Retry-After and leaves
 *    or puts the nonce back to `issued`, so the agent's retry succeeds;
 *  - a definitive refusal (bad signature, wrong REPORT_DATA, policy failure, unknown key) consumes
 *    the nonce: retrying cannot fix it, and a replay must not get a second chance;
 *  - only the request that won the claim talks to the key backend.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { AuditLog } from '../audit/types';
import { TasError, isTasError } from '../errors';
import type { AttestPorts, EndorsementCerts, UsablePolicy, VerifiedEvidence } from './ports';
import type { Attester, GetSecretRequest, RequestContext, SecretKeyReply } from './types';

/** How long a failed release is retried in the background (the nonce claim lease is 30 s). */
const RELEASE_RETRY_MS = 30_000;

/** Pipeline is the Attester that serves `amd-sev-snp` (and refuses `intel-tdx` until TDX exists). */
export class Pipeline implements Attester {
  constructor(
    private readonly ports: AttestPorts,
    private readonly audit: AuditLog,
  ) {}

  async getSecret(req: GetSecretRequest, rctx: RequestContext): Promise<SecretKeyReply> {
    const trail: Record<string, unknown> = {
      dialect: req.policyId !== undefined ? 'policy-id' : 'key-id',
      policy_id: req.policyId,
      key_id: req.keyId,
      tee_type: req.teeType,
      evidence_sha256: sha256(req.evidence),
      nonce_sha256: sha256(Buffer.from(req.nonce, 'ascii')).slice(0, 16),
      binding: req.reportDataBinding === true,
    };
    try {
      const reply = await this.run(req, trail);
      this.audit.record({ event: 'get_secret', outcome: 'allow', reason: 'RELEASED', requestId: rctx.requestId, client: rctx.clientAddress, details: trail });
      return reply;
    } catch (e) {
      const err = isTasError(e) ? e : new TasError('INTERNAL', e instanceof Error ? e.message : String(e), { cause: e });
      this.audit.record({
        event: 'get_secret',
        outcome: err.status >= 500 ? 'error' : 'deny',
        reason: err.reason,
        requestId: rctx.requestId,
        client: rctx.clientAddress,
        details: { ...trail, code: err.code, detail: err.detail },
      });
      throw err;
    }
  }

  private async run(req: GetSecretRequest, trail: Record<string, unknown>): Promise<SecretKeyReply> {
    // TEE-type dispatch: SNP now, TDX later (a verifier for it plugs in here).
    if (req.teeType !== 'amd-sev-snp') {
      throw new TasError('TEE_TYPE_UNSUPPORTED', `tee-type ${req.teeType} is not verified by this tas`, { reason: 'TDX_UNSUPPORTED' });
    }
    const p = this.ports;

    // 1. Input that cannot be right is refused before anything changes state.
    p.broker.validateWrappingKey(req.wrappingKey);
    const peek = p.peek(req.evidence);
    trail.report_version = peek.version;
    trail.signer = peek.signingKey;

    // 2. Certificates (transient failures are 503 and leave the nonce untouched).
    const certs: EndorsementCerts = await p.certificates(req.evidence, peek, req.certificates);
    trail.cert_source = certs.source;

    // 3. Verification and the REPORT_DATA binding: failures are definitive (nonce consumed).
    const owner = randomUUID();
    let evidence: VerifiedEvidence;
    try {
      evidence = await p.verify(req.evidence, certs, peek);
      trail.product = evidence.product;
      trail.measurement = evidence.claims.measurement;
      if (evidence.notes?.length) trail.notes = evidence.notes;
      this.checkReportData(req, evidence.reportData);
    } catch (e) {
      if (isTasError(e) && e.status < 500) await this.burn(req.nonce, owner);
      throw e;
    }

    // 4. The nonce: exactly one request wins it. If the store fails mid-claim (say Redis died
    // after applying it but before answering), the claim may exist under our owner id: hand it
    // back once the store answers, so that the agent's retry is not refused for the whole lease.
    let won: boolean;
    try {
      won = await p.nonces.claim(req.nonce, owner);
    } catch (e) {
      await this.releaseEventually(req.nonce, owner);
      throw e;
    }
    if (!won) {
      throw new TasError('NONCE_INVALID', 'nonce unknown, expired, claimed or consumed', { reason: 'NONCE_INVALID' });
    }

    try {
      // 5. Policy selection and evaluation.
      const policy = await this.selectPolicy(req, evidence, trail);
      // 6. Key release, only by the claimant.
      const reply = await p.broker.getSecret(policy.keyId, req.wrappingKey);
      await p.nonces.consume(req.nonce, owner);
      return reply;
    } catch (e) {
      const transient = !isTasError(e) || e.status >= 500;
      if (transient) await this.releaseEventually(req.nonce, owner);
      else await p.nonces.consume(req.nonce, owner).catch(() => undefined);
      throw e;
    }
  }

  /**
   * releaseEventually puts a claimed nonce back to issued after a transient failure. When the store
   * itself is what failed, the release is retried in the background until the claim's lease would
   * have run out anyway: the agent's retry after Retry-After then finds its nonce issued, instead of
   * "claimed by someone else" (401) for the rest of the lease.
   */
  private async releaseEventually(nonce: string, owner: string): Promise<void> {
    try {
      await this.ports.nonces.release(nonce, owner);
      return;
    } catch {
      // retried below
    }
    const until = Date.now() + RELEASE_RETRY_MS;
    void (async () => {
      for (let delay = 250; Date.now() < until; delay = Math.min(delay * 2, 2000)) {
        await new Promise((r) => setTimeout(r, delay).unref());
        try {
          await this.ports.nonces.release(nonce, owner);
          return;
        } catch {
          // still down; the lease expiry is the backstop
        }
      }
    })();
  }

  /** burn consumes a nonce after a definitive refusal that happened before the claim. */
  private async burn(nonce: string, owner: string): Promise<void> {
    try {
      if (await this.ports.nonces.claim(nonce, owner)) await this.ports.nonces.consume(nonce, owner);
    } catch {
      // The refusal stands; a store hiccup here only means the nonce expires on its own.
    }
  }

  /**
   * checkReportData enforces PROTOCOL.md §2: with binding, REPORT_DATA = SHA-512(nonce ASCII ‖
   * wrapping-key bytes as sent); without, REPORT_DATA = the 64 ASCII bytes of the nonce.
   * Whether binding is required is decided per policy later too (selectPolicy).
   */
  private checkReportData(req: GetSecretRequest, reportData: Buffer): void {
    const expected = req.reportDataBinding === true
      ? createHash('sha512').update(Buffer.from(req.nonce, 'ascii')).update(req.wrappingKey).digest()
      : Buffer.from(req.nonce, 'ascii');
    if (expected.length !== 64 || !reportData.equals(expected)) {
      throw new TasError('TEE_VERIFICATION_FAILED', `REPORT_DATA does not match the ${req.reportDataBinding === true ? 'nonce/wrapping-key binding' : 'nonce'}`, {
        reason: 'REPORT_DATA_MISMATCH',
      });
    }
  }

  private async selectPolicy(req: GetSecretRequest, ev: VerifiedEvidence, trail: Record<string, unknown>): Promise<UsablePolicy> {
    const p = this.ports;
    const dialect = req.policyId !== undefined ? 'policy-id' : 'key-id';
    const bound = req.reportDataBinding === true;
    const candidates: UsablePolicy[] = [];
    if (req.policyId !== undefined) {
      const pol = await p.policies.forUse(req.policyId);
      if (!pol) throw new TasError('POLICY_NOT_FOUND', `policy ${req.policyId} is not stored`, { reason: 'POLICY_NOT_FOUND', params: { id: req.policyId } });
      if (pol.policyType !== 'SEV') throw new TasError('TEE_VERIFICATION_FAILED', `policy ${pol.id} is of type ${pol.policyType}, the evidence is SEV-SNP`, { reason: 'POLICY_TYPE_MISMATCH' });
      candidates.push(pol);
    } else {
      const keyId = req.keyId!;
      candidates.push(...(await p.policies.byKeyId(keyId, 'SEV')));
      if (candidates.length === 0) throw new TasError('KBM_NOT_BOUND', `no stored SEV policy binds key ${keyId}`, { reason: 'KEY_NOT_BOUND' });
    }

    const failures: string[] = [];
    for (const pol of candidates) {
      const problems: string[] = [];
      if (!pol.keyId) problems.push(`policy ${pol.id}: names no metadata.key_id`);
      // A secret is released only under a policy whose signature covers the binding to that key.
      if (!pol.keyBindingSigned && !p.policies.allowUnsignedKeyBinding()) {
        problems.push(`policy ${pol.id}: its signature covers only validation_rules, not the binding to key ${pol.keyId} (TAS_ALLOW_UNSIGNED_KEY_BINDING=false)`);
      }
      const needBinding = pol.requireBinding === true || p.requireBinding(dialect);
      if (needBinding && !bound) problems.push(`policy ${pol.id}: REPORT_DATA binding to the wrapping key is required`);
      const verdict = p.policies.evaluate(pol, ev.claims);
      if (!verdict.ok) problems.push(...verdict.failures.map((f) => `policy ${pol.id}: ${f}`));
      if (problems.length === 0) {
        trail.policy_id = pol.id;
        trail.key_id = pol.keyId;
        return pol;
      }
      failures.push(...problems);
    }
    trail.failures = failures;
    const unsignedOnly = failures.length > 0 && failures.every((f) => f.includes('TAS_ALLOW_UNSIGNED_KEY_BINDING'));
    throw new TasError(unsignedOnly ? 'KBM_NOT_BOUND' : 'TEE_VERIFICATION_FAILED', failures.join('; '), {
      reason: unsignedOnly ? 'KEY_BINDING_UNSIGNED' : 'POLICY_RULES_FAILED',
    });
  }
}

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}
