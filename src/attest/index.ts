/** Public surface of the attestation module. */
export type { Attester, GetSecretRequest, SecretKeyReply, RequestContext, TeeType } from './types';
export type { AttestPorts, EndorsementCerts, Product, ReportPeek, RuleVerdict, UsablePolicy, VerifiedEvidence } from './ports';
export { UnavailableAttester } from './unavailable';
export { Pipeline } from './pipeline';
