/**
 * POST /kb/v0/get_secret: strict parsing of the request body into a GetSecretRequest
 * (PROTOCOL.md §2). Every field is type- and format-checked and size-bounded here, so the attest
 * pipeline only ever sees well-formed input. Unknown top-level fields are ignored (current agents
 * send `component-evidence`). Error details name the field and the problem, never the value.
 */
import type { FastifyInstance } from 'fastify';
import type { Attester, GetSecretRequest, TeeType } from '../attest/types';
import { TasError } from '../errors';
import { clientAuth } from './auth';
import { bodyLimit } from './limits';

/** Decoded size bounds: an SNP report is 1184 bytes; TDX quotes stay well under 16 KiB. */
export const fieldLimits = {
  evidenceBytes: 16 * 1024,
  wrappingKeyBytes: 8 * 1024,
  certificatesBytes: 48 * 1024,
} as const;

const TEE_TYPES: readonly TeeType[] = ['amd-sev-snp', 'intel-tdx'];
const NONCE_RE = /^[0-9a-f]{64}$/;
/** ID_RE is the policy_id / key_id charset of PROTOCOL.md §1. */
export const ID_RE = /^[A-Za-z0-9_.-]{1,128}$/;
/** Standard base64 with canonical padding; no whitespace, no URL-safe alphabet. */
const B64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function fieldError(field: string, why: string): TasError {
  return new TasError('HTTP_FIELD_INVALID', `${field}: ${why}`, { params: { field }, reason: 'REQUEST_FIELD_INVALID' });
}

function describe(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v;
}

/**
 * decodeBase64Strict decodes standard base64, refusing anything Buffer.from would silently skip
 * or repair (invalid characters, missing or extra padding, non-zero trailing bits).
 */
export function decodeBase64Strict(field: string, v: unknown, maxBytes: number, allowEmpty = false): Buffer {
  if (typeof v !== 'string') throw fieldError(field, `must be a base64 string, got ${describe(v)}`);
  // Check the encoded length first: never decode more than the bound allows.
  if (v.length > Math.ceil(maxBytes / 3) * 4) throw fieldError(field, `longer than ${maxBytes} bytes decoded`);
  if (v.length === 0 && !allowEmpty) throw fieldError(field, 'must not be empty');
  const buf = Buffer.from(v, 'base64');
  // Exact on its own: Buffer.from skips what is not base64 and accepts the URL-safe alphabet and
  // missing padding, so any such input re-encodes differently. The pattern only picks the message,
  // and so runs only for refused input (on 2 KiB of evidence it cost more than the decode, #16).
  if (buf.toString('base64') !== v) {
    throw fieldError(field, B64_RE.test(v) ? 'is not canonical base64 (non-zero trailing bits)' : 'is not standard base64 (alphabet or padding)');
  }
  if (buf.length > maxBytes) throw fieldError(field, `longer than ${maxBytes} bytes decoded`);
  return buf;
}

/** parseNonce strips ONE pair of surrounding JSON quotes (the agent sends `"\"ab..\""`) and checks the format. */
export function parseNonce(v: unknown): string {
  if (typeof v !== 'string') throw fieldError('nonce', `must be a string, got ${describe(v)}`);
  let n = v;
  if (n.length >= 2 && n.startsWith('"') && n.endsWith('"')) n = n.slice(1, -1);
  if (!NONCE_RE.test(n)) {
    throw new TasError('NONCE_FORMAT', `nonce: not 64 lowercase hex characters (length ${n.length})`, { reason: 'NONCE_FORMAT' });
  }
  return n;
}

function optional(body: Record<string, unknown>, name: string): unknown {
  // null counts as absent: serializers of optional fields (e.g. serde Option) may send it.
  const v = Object.hasOwn(body, name) ? body[name] : undefined;
  return v === null ? undefined : v;
}

/** parseGetSecretRequest validates a parsed JSON body; throws TasError naming the first bad field. */
export function parseGetSecretRequest(body: unknown): GetSecretRequest {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new TasError('HTTP_BAD_REQUEST', `body must be a JSON object, got ${body === undefined ? 'no body' : describe(body)}`);
  }
  const b = body as Record<string, unknown>;
  const teeType = optional(b, 'tee-type');
  if (typeof teeType !== 'string') throw fieldError('tee-type', `must be a string, got ${describe(teeType)}`);
  if (!(TEE_TYPES as readonly string[]).includes(teeType)) {
    throw new TasError('TEE_TYPE_UNSUPPORTED', `tee-type: unknown value (length ${teeType.length})`, { reason: 'TEE_TYPE_UNKNOWN' });
  }
  const nonce = parseNonce(optional(b, 'nonce'));
  const evidence = decodeBase64Strict('tee-evidence', optional(b, 'tee-evidence'), fieldLimits.evidenceBytes);
  const wrappingKey = decodeBase64Strict('wrapping-key', optional(b, 'wrapping-key'), fieldLimits.wrappingKeyBytes);
  const certsRaw = optional(b, 'tee-certificates');
  const certificates = certsRaw === undefined ? undefined : decodeBase64Strict('tee-certificates', certsRaw, fieldLimits.certificatesBytes);

  const policyId = optional(b, 'policy-id');
  const keyId = optional(b, 'key-id');
  if ((policyId === undefined) === (keyId === undefined)) {
    throw fieldError('policy-id', policyId === undefined ? 'one of policy-id or key-id is required' : 'send either policy-id or key-id, not both');
  }
  if (policyId !== undefined) {
    if (typeof policyId !== 'string') throw fieldError('policy-id', `must be a string, got ${describe(policyId)}`);
    if (!ID_RE.test(policyId)) throw new TasError('POLICY_ID_INVALID', `policy-id: does not match ^[A-Za-z0-9_.-]{1,128}$ (length ${policyId.length})`);
  }
  if (keyId !== undefined) {
    if (typeof keyId !== 'string') throw fieldError('key-id', `must be a string, got ${describe(keyId)}`);
    if (!ID_RE.test(keyId)) throw fieldError('key-id', `does not match ^[A-Za-z0-9_.-]{1,128}$ (length ${keyId.length})`);
  }
  const binding = optional(b, 'report-data-binding');
  if (binding !== undefined && typeof binding !== 'boolean') throw fieldError('report-data-binding', `must be true or false, got ${describe(binding)}`);

  return {
    teeType: teeType as TeeType,
    nonce,
    evidence,
    wrappingKey,
    certificates,
    policyId: policyId as string | undefined,
    keyId: keyId as string | undefined,
    reportDataBinding: binding as boolean | undefined,
    // Bound-checked by the component hook (src/attest), which alone knows the shapes it accepts.
    ...(optional(b, 'component-evidence') !== undefined ? { components: optional(b, 'component-evidence') } : {}),
  };
}

/** registerGetSecret adds the route; the attester runs inside an in-flight slot. */
export function registerGetSecret(app: FastifyInstance, attester: Attester): void {
  app.post('/kb/v0/get_secret', { bodyLimit: bodyLimit.getSecret, onRequest: clientAuth }, async (request) => {
    let req: GetSecretRequest;
    try {
      req = parseGetSecretRequest(request.body);
    } catch (e) {
      // Refused before the attester saw it: the edge writes the audit record (reason only, no values).
      const t = e as TasError;
      app.tasEdge.audit.record({ event: 'get_secret', outcome: 'deny', reason: t.reason ?? 'REQUEST_INVALID', requestId: request.id, client: request.clientAddress, details: { code: t.code, field: t.params?.field } });
      throw e;
    }
    const secret = await app.tasEdge.inflight.run(() => attester.getSecret(req, { requestId: request.id, clientAddress: request.clientAddress }));
    return { secret_key: secret };
  });
}
