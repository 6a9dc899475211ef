/**
 * The attestation interface that `POST /kb/v0/get_secret` calls (PROTOCOL.md §2). src/http parses
 * and bounds the request into a GetSecretRequest; an Attester verifies the evidence, runs the nonce
 * life cycle, evaluates the policy and releases the key. One Attester serves every TEE type and
 * dispatches on `teeType`.
 */

/** TeeType names the evidence kinds of the protocol. */
export type TeeType = 'amd-sev-snp' | 'intel-tdx';

/** GetSecretRequest is a syntactically valid get_secret body (field formats already checked). */
export interface GetSecretRequest {
  readonly teeType: TeeType;
  /** 64 lowercase hex characters, surrounding JSON quotes already stripped. */
  readonly nonce: string;
  /** Raw evidence bytes (base64-decoded `tee-evidence`). */
  readonly evidence: Buffer;
  /** `wrapping-key` exactly as base64-decoded (PKCS#1 DER, SPKI DER or PEM bytes). */
  readonly wrappingKey: Buffer;
  /** Base64-decoded `tee-certificates`, when sent. */
  readonly certificates: Buffer | undefined;
  /** Exactly one of policyId / keyId is set (the two request dialects). */
  readonly policyId: string | undefined;
  readonly keyId: string | undefined;
  /** `report-data-binding` as sent (undefined when absent). */
  readonly reportDataBinding: boolean | undefined;
  /** `component-evidence` as sent (raw JSON value; bound-checked by the component hook). */
  readonly components?: unknown;
}

/** SecretKeyReply is the `secret_key` object of a 200 reply. */
export interface SecretKeyReply {
  readonly wrapped_key: string;
  readonly blob: string;
  readonly iv: string;
  readonly tag: string;
  /** base64("AES-KWP") for the RFC 5649 form; absent for AES-GCM. */
  readonly algorithm?: string;
}

/** RequestContext carries who asked, for audit records. */
export interface RequestContext {
  readonly requestId: string;
  readonly clientAddress: string;
}

/** Attester is what get_secret calls. It throws TasError for every refusal. */
export interface Attester {
  getSecret(req: GetSecretRequest, ctx: RequestContext): Promise<SecretKeyReply>;
}
