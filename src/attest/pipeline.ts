/**
 * The attestation pipeline (DESIGN.md "Data flow of one attestation", PROTOCOL.md §2), the same for
 * every TEE (a registered EvidenceVerifier) and every action (key release, certificate):
 *
 *   peek -> endorsements -> verification -> REPORT_DATA binding -> nonce claim
 *   -> policy (signature re-check, rules, component evidence) -> action -> nonce consumed
 *   -> one audit record
 *
 * Ordering is what makes the nonce safe:
 *  - malformed input never touches the nonce (the request is refused before any state changes);
 *  - transient trouble (KDS, store or key backend unavailable) answers 503 + Retry-After and leaves
 *    or puts the nonce back to `issued`, so the agent's retry succeeds;
 *  - a definitive refusal (bad signature, wrong REPORT_DATA, policy failure, unknown key) consumes
 *    the nonce: retrying cannot fix it, and a replay must not get a second chance;
 *  - only the request that won the claim runs the action (talks to the key backend, signs).
 */
import { hash, randomUUID } from 'node:crypto';
import type { AuditLog } from '../audit/types';
import { TasError, isTasError } from '../errors';
import { CONSUME_ATTEMPTS, CONSUME_RETRY_PAUSES_MS } from './lease';
import type { AttestPorts, UsablePolicy } from './ports';
import type { Attester, GetSecretRequest, RequestContext, SecretKeyReply, TeeType } from './types';
import type { EvidenceVerifier, VerifiedEvidence } from './verifier';

/** Default claim lease (ms) when the composition root does not pass the derived one (tests). */
const DEFAULT_LEASE_MS = 30_000;

/**
 * AttestRequest is one attested request, whatever it asks for (a key, a certificate): the
 * evidence, the nonce, how REPORT_DATA is bound and which policy decides.
 */
export interface AttestRequest {
  /** Audit event name (`get_secret`, `certify`). */
  readonly event: string;
  readonly teeType: TeeType;
  /** 64 lowercase hex characters, surrounding JSON quotes already stripped. */
  readonly nonce: string;
  readonly evidence: Buffer;
  /** Endorsements sent with the evidence (`tee-certificates`), when any. */
  readonly certificates: Buffer | undefined;
  /** Exactly one of policyId / keyId is set. */
  readonly policyId: string | undefined;
  readonly keyId: string | undefined;
  /** true: REPORT_DATA = SHA-512(nonce ‖ bindingKey [‖ component_hashes]); else the nonce's 64 ASCII bytes. */
  readonly reportDataBinding: boolean | undefined;
  /** The key bytes bound into REPORT_DATA after the nonce (wrapping key as sent, CSR key DER). */
  readonly bindingKey: Buffer;
  /** Raw `component-evidence` JSON value, when sent. */
  readonly components?: unknown;
  /**
   * False when the action needs no key binding of the policy (certify: the policy decides a
   * domain, not a key); default true — a secret is released only under a policy whose signature
   * covers its binding to that key.
   */
  readonly needsKeyBinding?: boolean;
  /** Audit reason of a success (default `RELEASED`; certify says `ISSUED`). */
  readonly allowReason?: string;
  /** Extra non-secret audit fields from the caller (CSR digest, …). */
  readonly trail?: Readonly<Record<string, unknown>>;
}

/**
 * AttestAction is what the request asks for once the evidence verified, the nonce is ours and a
 * policy admitted it. `validate` runs first, before anything changes state (a bad wrapping key or
 * CSR is a 400 that keeps the nonce); `run` runs only in the request that won the nonce claim.
 */
export interface AttestAction<T> {
  validate?(): void;
  run(policy: UsablePolicy, evidence: VerifiedEvidence, trail: Record<string, unknown>): Promise<T>;
}

/** Pipeline is the Attester: evidence of every registered TEE, then the action under a signed policy. */
export class Pipeline implements Attester {
  /** How long a failed hand-back of the nonce is retried in the background: the claim lease. */
  private readonly handBackMs: number;

  constructor(
    private readonly ports: AttestPorts,
    private readonly audit: AuditLog,
    opts: { leaseMs?: number } = {},
  ) {
    this.handBackMs = opts.leaseMs ?? DEFAULT_LEASE_MS;
  }

  /** getSecret is PROTOCOL.md §2: the action releases the policy's key wrapped for the client. */
  getSecret(req: GetSecretRequest, rctx: RequestContext): Promise<SecretKeyReply> {
    const broker = this.ports.broker;
    return this.attest(
      {
        event: 'get_secret', teeType: req.teeType, nonce: req.nonce, evidence: req.evidence, certificates: req.certificates,
        policyId: req.policyId, keyId: req.keyId, reportDataBinding: req.reportDataBinding, bindingKey: req.wrappingKey, components: req.components,
      },
      rctx,
      {
        validate: () => broker.validateWrappingKey(req.wrappingKey),
        run: (policy) => broker.getSecret(policy.keyId, req.wrappingKey),
      },
    );
  }

  /** attest runs one attested request and writes exactly one audit record for it. */
  async attest<T>(req: AttestRequest, rctx: RequestContext, action: AttestAction<T>): Promise<T> {
    const trail: Record<string, unknown> = {
      dialect: req.policyId !== undefined ? 'policy-id' : 'key-id',
      policy_id: req.policyId,
      key_id: req.keyId,
      tee_type: req.teeType,
      evidence_sha256: sha256(req.evidence),
      nonce_sha256: sha256(Buffer.from(req.nonce, 'ascii')).slice(0, 16),
      binding: req.reportDataBinding === true,
      ...req.trail,
    };
    try {
      const reply = await this.run(req, trail, action);
      this.audit.record({ event: req.event, outcome: 'allow', reason: req.allowReason ?? 'RELEASED', requestId: rctx.requestId, client: rctx.clientAddress, details: trail });
      return reply;
    } catch (e) {
      const err = isTasError(e) ? e : new TasError('INTERNAL', e instanceof Error ? e.message : String(e), { cause: e });
      this.audit.record({
        event: req.event,
        outcome: err.status >= 500 ? 'error' : 'deny',
        reason: err.reason,
        requestId: rctx.requestId,
        client: rctx.clientAddress,
        details: { ...trail, code: err.code, detail: err.detail },
      });
      throw err;
    }
  }

  private async run<T>(req: AttestRequest, trail: Record<string, unknown>, action: AttestAction<T>): Promise<T> {
    const p = this.ports;
    const verifier: EvidenceVerifier | undefined = p.verifiers.get(req.teeType);
    if (!verifier) {
      throw new TasError('TEE_TYPE_UNSUPPORTED', `tee-type ${req.teeType} is not verified by this tas`, {
        reason: req.teeType === 'intel-tdx' ? 'TDX_UNSUPPORTED' : 'TEE_UNSUPPORTED',
      });
    }

    // 1. Input that cannot be right is refused before anything changes state.
    action.validate?.();
    const peek = verifier.peek(req.evidence);
    if (verifier.describe) Object.assign(trail, verifier.describe(peek));
    const components = req.components === undefined || !p.components ? undefined : p.components.parse(req.components, req.teeType);
    if (components !== undefined) trail.components = 'bound';

    // 2. Endorsements (transient failures are 503 and leave the nonce untouched).
    const endorsements = await verifier.endorsements(req.evidence, peek, req.certificates);
    if (verifier.describeEndorsements) Object.assign(trail, verifier.describeEndorsements(endorsements));

    // 3. Verification and the REPORT_DATA binding: failures are definitive (nonce consumed).
    const owner = randomUUID();
    let evidence: VerifiedEvidence;
    try {
      evidence = await verifier.verify(req.evidence, peek, endorsements);
      if (evidence.audit) Object.assign(trail, evidence.audit);
      if (evidence.notes?.length) trail.notes = [...evidence.notes];
      const suffix = components !== undefined ? p.components!.bindingSuffix(components) : undefined;
      checkReportData(req, evidence.reportData, suffix);
    } catch (e) {
      if (isTasError(e) && e.status < 500) await this.burn(req.nonce, owner);
      throw e;
    }

    // 4. The nonce: exactly one request wins it. If the store fails mid-claim (say Redis died
    // after applying it but before answering), the claim may exist under our owner id: hand it
    // back once the store answers, so that the agent's retry is not refused for the whole lease.
    // The policy documents are read at the same time (on Redis both commands leave in one write:
    // one round trip), but nothing is decided on them, nor any of their errors reported, before
    // the claim is won: the outcome is the one of reading them after the claim.
    const loaded = this.loadPolicies(req, verifier);
    loaded.catch(() => undefined); // observed below, once the claim is won
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
      // 5. Policy selection and evaluation (rules, then component evidence under the same policy).
      const policy = this.selectPolicy(req, evidence, trail, await loaded);
      if (p.components && (components !== undefined || policy.components !== undefined)) {
        const a = await p.components.appraise(components, { id: policy.id, components: policy.components }, req.nonce, evidence);
        if (a.audit) Object.assign(trail, a.audit);
        if (a.notes?.length) trail.notes = [...((trail.notes as string[] | undefined) ?? []), ...a.notes];
      }
      // 6. The action (key release, certificate), only by the claimant. Its result leaves this
      // request only if the consume proves the claim is still ours: a request whose lease lapsed
      // while it waited (a slow key backend) may have been overtaken by a replay.
      const reply = await action.run(policy, evidence, trail);
      await this.consumeOwn(req.nonce, owner);
      // The consume's answer is in: nothing of this request will repeat or undo it.
      p.nonces.forgetConsumed(req.nonce, owner);
      return reply;
    } catch (e) {
      if (isTasError(e) && e.code === 'NONCE_CLAIM_LOST') throw e; // not ours to hand back
      const transient = !isTasError(e) || e.status >= 500;
      if (transient) await this.releaseEventually(req.nonce, owner);
      else if (await p.nonces.consume(req.nonce, owner).catch(() => false)) p.nonces.forgetConsumed(req.nonce, owner);
      throw e;
    }
  }

  /**
   * consumeOwn ends the nonce for its owner or throws. `false` from the store means the claim was
   * lost: 503 NONCE_CLAIM_LOST, and the caller never sends what the action produced. A consume
   * whose outcome is unknown (store unreachable, reply lost) is tried again: the store's
   * consumed-by-owner marker makes a repeat answer `true` when the first one was applied. If no
   * attempt gets an answer the store error is thrown (503) and releaseEventually hands the nonce
   * back (release, or unconsume when our consume was applied), so the agent's retry succeeds.
   */
  private async consumeOwn(nonce: string, owner: string): Promise<void> {
    let unknown: unknown;
    for (let i = 0; i < CONSUME_ATTEMPTS; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, CONSUME_RETRY_PAUSES_MS[i - 1] ?? 0));
      let mine: boolean;
      try {
        mine = await this.ports.nonces.consume(nonce, owner);
      } catch (e) {
        if (!isTasError(e) || e.code !== 'STORE_UNAVAILABLE') throw e;
        unknown = e;
        continue;
      }
      if (mine) return;
      // After an unanswered attempt, `false` can also mean that attempt was applied and then undone
      // (the Redis store unconsumes what WAIT could not confirm): still the store's 503.
      if (unknown !== undefined) throw unknown;
      throw new TasError('NONCE_CLAIM_LOST', 'the nonce claim was lost before the release could be sent (lease lapsed and another request claimed it)', {
        reason: 'NONCE_CLAIM_LOST',
      });
    }
    throw unknown;
  }

  /**
   * releaseEventually puts a claimed nonce back to issued after a transient failure. When the store
   * itself is what failed, the release is retried in the background until the claim's lease would
   * have run out anyway: the agent's retry after Retry-After then finds its nonce issued, instead of
   * "claimed by someone else" (401) for the rest of the lease.
   */
  private async releaseEventually(nonce: string, owner: string): Promise<void> {
    try {
      await this.handBack(nonce, owner);
      return;
    } catch {
      // retried below
    }
    const until = Date.now() + this.handBackMs;
    void (async () => {
      for (let delay = 250; Date.now() < until; delay = Math.min(delay * 2, 2000)) {
        await new Promise((r) => setTimeout(r, delay).unref());
        try {
          await this.handBack(nonce, owner);
          return;
        } catch {
          // still down; the lease expiry is the backstop
        }
      }
    })();
  }

  /**
   * handBack returns a nonce this request holds to issued: a release when the claim is still held,
   * else an unconsume when our own consume was applied without our learning it (the secret was
   * not sent). Both are owner-checked no-ops otherwise.
   */
  private async handBack(nonce: string, owner: string): Promise<void> {
    await this.ports.nonces.release(nonce, owner);
    await this.ports.nonces.unconsume(nonce, owner);
  }

  /** burn consumes a nonce after a definitive refusal that happened before the claim. */
  private async burn(nonce: string, owner: string): Promise<void> {
    try {
      if ((await this.ports.nonces.claim(nonce, owner)) && (await this.ports.nonces.consume(nonce, owner))) this.ports.nonces.forgetConsumed(nonce, owner);
    } catch {
      // The refusal stands; a store hiccup here only means the nonce expires on its own.
    }
  }

  /** loadPolicies reads the candidate policies of a request (refusals as TasErrors). */
  private async loadPolicies(req: AttestRequest, verifier: EvidenceVerifier): Promise<UsablePolicy[]> {
    const p = this.ports;
    const candidates: UsablePolicy[] = [];
    if (req.policyId !== undefined) {
      const pol = await p.policies.forUse(req.policyId);
      if (!pol) throw new TasError('POLICY_NOT_FOUND', `policy ${req.policyId} is not stored`, { reason: 'POLICY_NOT_FOUND', params: { id: req.policyId } });
      if (pol.policyType !== verifier.policyType) {
        throw new TasError('TEE_VERIFICATION_FAILED', `policy ${pol.id} is of type ${pol.policyType}, the evidence is ${req.teeType}`, { reason: 'POLICY_TYPE_MISMATCH' });
      }
      candidates.push(pol);
    } else {
      const keyId = req.keyId!;
      candidates.push(...(await p.policies.byKeyId(keyId, verifier.policyType)));
      if (candidates.length === 0) throw new TasError('KBM_NOT_BOUND', `no stored ${verifier.policyType} policy binds key ${keyId}`, { reason: 'KEY_NOT_BOUND' });
    }
    return candidates;
  }

  private selectPolicy(req: AttestRequest, ev: VerifiedEvidence, trail: Record<string, unknown>, candidates: readonly UsablePolicy[]): UsablePolicy {
    const p = this.ports;
    const dialect = req.policyId !== undefined ? 'policy-id' : 'key-id';
    const bound = req.reportDataBinding === true;

    const failures: string[] = [];
    for (const pol of candidates) {
      const problems: string[] = [];
      const keyed = req.needsKeyBinding !== false;
      if (keyed && !pol.keyId) problems.push(`policy ${pol.id}: names no metadata.key_id`);
      // A secret is released only under a policy whose signature covers the binding to that key.
      if (keyed && !pol.keyBindingSigned && !p.policies.allowUnsignedKeyBinding()) {
        problems.push(`policy ${pol.id}: its signature covers only validation_rules, not the binding to key ${pol.keyId} (TAS_ALLOW_UNSIGNED_KEY_BINDING=false)`);
      }
      const needBinding = pol.requireBinding === true || p.requireBinding(dialect);
      if (needBinding && !bound) problems.push(`policy ${pol.id}: REPORT_DATA binding to the wrapping key is required`);
      const verdict = p.policies.evaluate(pol, ev.claims);
      if (!verdict.ok) problems.push(...verdict.failures.map((f) => `policy ${pol.id}: ${f}`));
      if (problems.length === 0) {
        trail.policy_id = pol.id;
        if (keyed) trail.key_id = pol.keyId;
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

/**
 * checkReportData enforces PROTOCOL.md §2: with binding, REPORT_DATA = SHA-512(nonce ASCII ‖ key
 * bytes as sent [‖ component_hashes]); without, REPORT_DATA = the 64 ASCII bytes of the nonce.
 * Whether binding is required is decided per policy later too (selectPolicy).
 */
function checkReportData(req: AttestRequest, reportData: Buffer, suffix: Buffer | undefined): void {
  let expected: Buffer;
  if (req.reportDataBinding === true) {
    const nonce = Buffer.from(req.nonce, 'ascii');
    expected = hash('sha512', suffix ? Buffer.concat([nonce, req.bindingKey, suffix]) : Buffer.concat([nonce, req.bindingKey]), 'buffer');
  } else {
    expected = Buffer.from(req.nonce, 'ascii');
  }
  if (expected.length !== 64 || !reportData.equals(expected)) {
    const what = req.reportDataBinding === true ? `nonce/key${suffix ? '/component' : ''} binding` : 'nonce';
    throw new TasError('TEE_VERIFICATION_FAILED', `REPORT_DATA does not match the ${what}`, { reason: 'REPORT_DATA_MISMATCH' });
  }
}

function sha256(b: Buffer): string {
  return hash('sha256', b, 'hex');
}
