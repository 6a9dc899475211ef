/**
 * The error catalogue: every failure tas can report, with its stable code, HTTP status and the
 * text that goes on the wire. This is the only place where codes are mapped to statuses and
 * texts (PROTOCOL.md §1: error bodies are `{"error": "<text>"}` and keep the original texts that
 * operators grep for). The precise reason (`detail`) goes to the log and the audit record only.
 *
 * Later modules add their codes here, in their own block; never remove or renumber a code.
 */

/** ErrorSpec describes one catalogue entry. */
export interface ErrorSpec {
  /** HTTP status sent to the caller. */
  readonly status: number;
  /** Text of the `error` member on the wire. `{id}` is replaced by TasError.params.id. */
  readonly text: string;
  /** Whether the reply carries `Retry-After` (transient trouble). */
  readonly retry?: boolean;
  /** One line for operators (README error table is generated from it). */
  readonly doc: string;
}

const spec = (status: number, text: string, doc: string, retry = false): ErrorSpec => ({ status, text, doc, retry });

/** CATALOGUE maps every stable error code to its status, wire text and documentation. */
export const CATALOGUE = {
  // --- HTTP edge -------------------------------------------------------------------------------
  HTTP_BAD_REQUEST: spec(400, 'Bad request', 'Malformed request (shape, type or format of a field); the log names the field.'),
  HTTP_BAD_JSON: spec(400, 'Invalid JSON body', 'The body is not one valid JSON document.'),
  HTTP_UNSUPPORTED_MEDIA_TYPE: spec(415, 'Unsupported content type', 'POST bodies must be application/json.'),
  HTTP_BODY_TOO_LARGE: spec(413, 'Request body too large', 'The body exceeds the route limit (get_secret 512 KiB, management 1 MiB).'),
  HTTP_NOT_FOUND: spec(404, 'Not found', 'No such route.'),
  HTTP_METHOD_NOT_ALLOWED: spec(405, 'Method not allowed', 'The route exists with another method.'),
  HTTP_HEADER_INVALID: spec(400, 'Bad request', 'A header is malformed, duplicated where it must be single, or oversized.'),
  HTTP_RATE_LIMITED: spec(429, 'Too many requests', 'The client address (IPv6: its /64) exceeded TAS_CLIENT_RATE_LIMIT.', true),
  HTTP_OVERLOADED: spec(503, 'Server busy', 'TAS_MAX_INFLIGHT requests are already in progress; retry later.', true),
  HTTP_TIMEOUT: spec(408, 'Request timeout', 'The client did not send the request in time.'),
  HTTP_NOT_READY: spec(503, 'Service not ready', 'A dependency is down; /readyz names it.', true),
  HTTP_PLAINTEXT_REFUSED: spec(403, 'TLS required', 'Plain HTTP on a non-loopback address without TAS_ALLOW_PLAINTEXT.'),
  HTTP_FIELD_INVALID: spec(400, "Invalid or missing field '{field}'", 'A body field is missing, of the wrong type or malformed; the log says how (never the value).'),

  // --- authentication ----------------------------------------------------------------------------
  AUTH_MISSING: spec(401, 'Unauthorized', 'No API key header was sent.'),
  AUTH_INVALID: spec(401, 'Unauthorized', 'The API key is not one of the configured keys for this route.'),
  AUTH_CLIENT_CERT: spec(401, 'Unauthorized', 'The management listener requires a client certificate signed by TAS_MANAGEMENT_CLIENT_CA_FILE.'),

  // --- attestation -------------------------------------------------------------------------------
  TEE_TYPE_UNSUPPORTED: spec(400, 'Unsupported TEE type', 'tee-type is not one tas verifies.'),
  TEE_VERIFICATION_UNAVAILABLE: spec(503, 'TEE verification unavailable', 'The verifier for this TEE is not available (yet); retry later.', true),
  TEE_VERIFICATION_FAILED: spec(400, 'TEE verification failed', 'Evidence, certificates, REPORT_DATA binding or policy rules did not verify; the audit record says which.'),
  TEE_EVIDENCE_MALFORMED: spec(400, 'TEE verification failed', 'tee-evidence is not a well-formed report (size, base64, version).'),

  // --- nonces --------------------------------------------------------------------------------------
  NONCE_INVALID: spec(401, 'Invalid or expired nonce', 'Unknown, expired, claimed or consumed nonce.'),
  NONCE_FORMAT: spec(400, 'Invalid nonce format', 'A nonce must be 64 lowercase hex characters (optionally JSON-quoted).'),
  NONCE_CAPACITY: spec(503, 'Too many outstanding nonces', 'TAS_NONCE_MAX_OUTSTANDING nonces are outstanding; retry later.', true),
  NONCE_CLAIM_LOST: spec(503, 'Service temporarily unavailable', 'The request lost its nonce claim while it worked (lease lapsed, another request took it); nothing was sent. The retry gets 401 and starts over with get_nonce.', true),

  // --- policies ------------------------------------------------------------------------------------
  POLICY_ID_INVALID: spec(400, 'Invalid policy id', 'policy_id must match ^[A-Za-z0-9_.-]{1,128}$.'),
  POLICY_EXISTS: spec(409, "Policy 'policy:{id}' already exists", 'A policy with this id is stored; delete it first.'),
  POLICY_NOT_FOUND: spec(404, "Policy 'policy:{id}' not found", 'No policy with this id.'),
  POLICY_INVALID: spec(400, 'Invalid policy', 'The policy document is malformed or names unknown claims or operators; the log names them.'),
  POLICY_SIGNATURE_INVALID: spec(400, 'Invalid policy signature', 'The signature does not verify against TAS_POLICY_TRUST, or the policy is unsigned while signatures are enforced.'),
  // policy module (src/policy): original TAS texts where it had one (operators grep for them)
  POLICY_BODY_MISSING: spec(400, 'Request body is required', 'POST /management/policy/v0/store or /policy/v0/store without a body.'),
  POLICY_NOT_OBJECT: spec(400, 'Policy must be a JSON object', 'The policy document is not a JSON object.'),
  POLICY_METADATA_MISSING: spec(400, "Policy must contain 'metadata' section", 'The policy document has no metadata.'),
  POLICY_RULES_MISSING: spec(400, "Policy must contain 'validation_rules' section", 'The policy document has no validation_rules.'),
  POLICY_UNSIGNED: spec(400, 'Unsigned policies are not allowed by configuration', 'The policy has no signature and TAS_ENFORCE_SIGNED_POLICIES is true.'),
  POLICY_SIGNATURE_FAILED: spec(400, 'Policy signature verification failed', 'The signature does not verify with any key of TAS_POLICY_TRUST (tampered document, wrong key, or no trust configured).'),
  POLICY_SIGNED_DATA_UNSUPPORTED: spec(400, "The 'signed_data' field in the signature object is deprecated and no longer supported. Please re-sign the policy so that the signature covers all top-level fields.", 'Rules-only (first-dialect) signatures are accepted only through /policy/v0/store.'),
  POLICY_FIRST_DIALECT_BODY: spec(400, "Request must contain 'policy_type', 'policy' and either 'policy_identifier' or 'key_id'", 'Malformed POST /policy/v0/store body (docs/protocol.md §3.3); the log names the field.'),
  POLICY_KEY_BINDING_UNSIGNED: spec(403, 'Policy signature does not cover the key binding (TAS_ALLOW_UNSIGNED_KEY_BINDING is false)', 'A rules-only-signed (first-dialect) policy may release a key only when TAS_ALLOW_UNSIGNED_KEY_BINDING=true.'),

  // --- key broker ------------------------------------------------------------------------------------
  KBM_SECRET_NOT_FOUND: spec(404, 'Secret retrieval failed', 'The key broker has no secret under this key id.'),
  KBM_UNAVAILABLE: spec(503, 'Secret retrieval failed', 'The key backend is unavailable; the nonce stays valid for a retry.', true),
  KBM_WRAPPING_KEY_INVALID: spec(400, 'Invalid wrapping key', 'wrapping-key is not an RSA public key of at least 2048 bits (PKCS#1 DER, SPKI DER or PEM).'),
  KBM_NOT_BOUND: spec(404, 'Secret retrieval failed', 'No stored policy whose signature covers this key id passed.'),
  KBM_KEY_DENIED: spec(404, 'Secret retrieval failed', 'The key backend accepted our credentials but refused this key to them (e.g. KMIP PermissionDenied); other keys are unaffected and the broker stays ready. Fix the key\'s access rights.'),
  KBM_AUTH_FAILED: spec(503, 'Secret retrieval failed', 'The key backend refused our credentials; not retried automatically (see /readyz).', true),

  // --- certificates / KDS ----------------------------------------------------------------------------
  KDS_UNAVAILABLE: spec(503, 'TEE verification unavailable', 'No VCEK/VLEK or fresh CRL could be obtained (KDS down or throttled, nothing cached).', true),
  PCS_UNAVAILABLE: spec(503, 'TEE verification unavailable', 'No fresh Intel collateral (TCB Info, QE identity, PCK or root CA CRL) could be obtained (PCS down, throttled or offline, nothing fresh cached).', true),

  // --- certify (PROTOCOL.md §2.2: 400 malformed input or renewal refused, 403 nonce or attestation) ---
  CERT_REQUEST_INVALID: spec(400, 'Invalid certify request', 'A certify field is missing or malformed (policy-domain, renew_cert, gpu-evidence, evidence digest caps); the log names it.'),
  CERT_CSR_INVALID: spec(400, 'Invalid CSR', 'The CSR is malformed, oversize (TAS_CERT_MAX_CSR_BYTES), not signed by its key, of a key type or size not allowed, or has an unsafe subject; the audit reason says which.'),
  CERT_RENEWAL_REFUSED: spec(400, 'Certificate renewal refused', 'renew_cert is not a current tas certificate of this trust domain, policy domain and key, chained to the active CA.'),
  CERT_NONCE_INVALID: spec(403, 'Invalid or expired nonce', 'certify: unknown, expired, claimed or consumed nonce (the original answers 403 on this route).'),
  CERT_ATTESTATION_FAILED: spec(403, 'TEE verification failed', 'certify: evidence, REPORT_DATA binding to the CSR key, or the policy of the policy domain did not pass (or the domain has no policy).'),
  CERT_SIGNER_UNAVAILABLE: spec(503, 'Certificate signing unavailable', 'The certificate signer plugin is not ready (token absent, PIN refused: see /readyz); the nonce stays valid.', true),

  // --- stores ----------------------------------------------------------------------------------------
  STORE_UNAVAILABLE: spec(503, 'Service temporarily unavailable', 'The state store (Redis) is unreachable or did not confirm the write.', true),

  // --- last resort -----------------------------------------------------------------------------------
  INTERNAL: spec(500, 'Internal server error', 'A bug: the log has the stack. Never used for bad input.'),
} as const satisfies Record<string, ErrorSpec>;

/** ErrorCode is any stable code of the catalogue. */
export type ErrorCode = keyof typeof CATALOGUE;

/** TasError is the one error type that crosses module boundaries. */
export class TasError extends Error {
  readonly code: ErrorCode;
  /** Precise reason for the log and audit record; never sent to the caller. */
  readonly detail: string;
  /** Stable machine reason for the audit record (e.g. `SNP_ERR_REPORT_SIGNATURE`). */
  readonly reason: string;
  /** Seconds for Retry-After when the entry is retryable. */
  readonly retryAfterSeconds: number | undefined;
  readonly params: Readonly<Record<string, string>>;

  constructor(
    code: ErrorCode,
    detail?: string,
    opts: { reason?: string; retryAfterSeconds?: number; params?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(detail ?? CATALOGUE[code].text, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'TasError';
    this.code = code;
    this.detail = detail ?? CATALOGUE[code].text;
    this.reason = opts.reason ?? code;
    this.retryAfterSeconds = CATALOGUE[code].retry ? (opts.retryAfterSeconds ?? 5) : undefined;
    this.params = opts.params ?? {};
  }

  /** status is the HTTP status of this error's catalogue entry. */
  get status(): number {
    return CATALOGUE[this.code].status;
  }

  /** wireText is the `error` text sent to the caller. */
  get wireText(): string {
    return CATALOGUE[this.code].text.replace(/\{(\w+)\}/g, (_m, k: string) => this.params[k] ?? '');
  }
}

/** isTasError narrows unknown values. */
export function isTasError(e: unknown): e is TasError {
  return e instanceof TasError;
}

/** toWire turns any error into the status, body and headers sent to a client. */
export function toWire(e: unknown): { status: number; body: { error: string }; headers: Record<string, string> } {
  const err = isTasError(e) ? e : new TasError('INTERNAL', e instanceof Error ? e.message : String(e));
  const headers: Record<string, string> = {};
  if (err.retryAfterSeconds !== undefined) headers['retry-after'] = String(Math.max(1, Math.ceil(err.retryAfterSeconds)));
  return { status: err.status, body: { error: err.wireText }, headers };
}
