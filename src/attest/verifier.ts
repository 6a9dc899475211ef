/**
 * The TEE-neutral verifier contract (DESIGN.md "More than one TEE"). The pipeline knows nonces,
 * REPORT_DATA binding, policies, the final action and audit; a verifier knows its TEE. Adding a
 * TEE is one EvidenceVerifier registered in the composition root (src/daemon), not a branch in
 * the pipeline.
 *
 * Verifier modules (src/snp, src/tdx, src/gpu, …) implement these shapes structurally and never
 * import src/attest at run time: imports flow one way (attest → verifiers).
 */
import type { TeeType } from './types';

/** PolicyType is the `metadata.policy_type` a verifier's claims may be judged by (SNP reads as SEV). */
export type PolicyType = 'SEV' | 'TDX';

/** VerifiedEvidence is what a verifier hands the pipeline after every check of its TEE passed. */
export interface VerifiedEvidence {
  readonly tee: TeeType;
  /** Claims under the names of PROTOCOL.md §3.4 (byte fields as lowercase hex). */
  readonly claims: Readonly<Record<string, unknown>>;
  /** The 64 REPORT_DATA bytes the guest put into its evidence. */
  readonly reportData: Buffer;
  /** Operator-relevant notes for the audit record (e.g. verified with revocation unknown, fail-open). */
  readonly notes?: readonly string[];
  /** Extra fields for the audit record (product, measurement, TCB status, …): never secrets. */
  readonly audit?: Readonly<Record<string, unknown>>;
}

/**
 * EvidenceVerifier verifies one kind of TEE evidence. The three steps are separate because their
 * failures mean different things to the nonce life cycle:
 *  - `peek` reads what can be read without crypto (which endorsements are needed). It is sync and
 *    cheap; malformed evidence throws a TasError with a 4xx status before any state changes.
 *  - `endorsements` gets certificates or collateral from the request, a cache or the network: the
 *    only I/O. Transient failures throw a 5xx TasError (503 + Retry-After; the nonce is kept).
 *  - `verify` does the cryptography and the TEE's own checks; failures are definitive (4xx).
 * `P` is the parsed-evidence handle: whatever peek parsed is handed along, never parsed twice.
 */
export interface EvidenceVerifier<P = unknown, E = unknown> {
  readonly tee: TeeType;
  readonly policyType: PolicyType;
  peek(evidence: Buffer): P;
  endorsements(evidence: Buffer, peek: P, supplied: Buffer | undefined): Promise<E>;
  verify(evidence: Buffer, peek: P, endorsements: E): Promise<VerifiedEvidence>;
  /** describe names audit fields known right after peek (report version, signer kind, …). */
  describe?(peek: P): Readonly<Record<string, unknown>>;
  /** describeEndorsements names audit fields of the endorsements (their source, …). */
  describeEndorsements?(endorsements: E): Readonly<Record<string, unknown>>;
}

/** ComponentPolicyView is what a component hook may see of the selected policy. */
export interface ComponentPolicyView {
  readonly id: string;
  /** The signed top-level `components` section, when the policy has one. */
  readonly components: Readonly<Record<string, unknown>> | undefined;
}

/** ComponentAppraisal is a component hook's verdict: audit notes and fields, never secrets. */
export interface ComponentAppraisal {
  readonly notes?: readonly string[];
  readonly audit?: Readonly<Record<string, unknown>>;
}

/**
 * ComponentHook handles `component-evidence` (PROTOCOL.md §2.1: GPUs attested with their CVM).
 *  - `parse` bound-checks the raw JSON value before any state changes (4xx for malformed; it
 *    returns undefined when the request carries none).
 *  - `bindingSuffix` is appended to the REPORT_DATA preimage (component_hashes).
 *  - `appraise` runs after the policy was selected, with the nonce claimed: 4xx definitive, 5xx
 *    transient (the claim is handed back). A policy without `components` is the hook's to judge
 *    (PROTOCOL.md: bound but not evaluated, and the audit record says so).
 */
export interface ComponentHook<C = unknown> {
  parse(raw: unknown, tee: TeeType): C | undefined;
  bindingSuffix(parsed: C): Buffer;
  appraise(parsed: C | undefined, policy: ComponentPolicyView, nonce: string, evidence: VerifiedEvidence): Promise<ComponentAppraisal>;
}

/** VerifierRegistry maps each supported tee-type to its verifier; absent types are refused (400). */
export type VerifierRegistry = ReadonlyMap<TeeType, EvidenceVerifier>;
