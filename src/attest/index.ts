/** Public surface of the attestation module. */
export type { Attester, GetSecretRequest, SecretKeyReply, RequestContext, TeeType } from './types';
export type { AttestPorts, RuleVerdict, UsablePolicy } from './ports';
export type { ComponentAppraisal, ComponentHook, ComponentPolicyView, EvidenceVerifier, PolicyType, VerifiedEvidence, VerifierRegistry } from './verifier';
export { UnavailableAttester } from './unavailable';
export { Pipeline, type AttestAction, type AttestRequest } from './pipeline';
export { claimLeaseMs, insideClaimMs, CONSUME_ATTEMPTS, type ClaimTimeouts } from './lease';
