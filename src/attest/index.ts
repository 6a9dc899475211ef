/** Public surface of the attestation module. */
export type { Attester, GetSecretRequest, SecretKeyReply, RequestContext, TeeType } from './types';
export { UnavailableAttester } from './unavailable';
