/**
 * The audit record: schema, canonical hash and the scrubbing of details. docs/audit.md documents
 * the same fields; test/audit/schema.test.ts checks records against validateRecord().
 */
import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';
import { maskUrlUserinfo } from '../config/mask';

/** Schema version of the records written by this code. */
export const AUDIT_VERSION = 1;
/** prev of the first record of a chain. */
export const ZERO_HASH = '0'.repeat(64);

/** AuditRecord is one line of the audit stream. */
export interface AuditRecord {
  v: number;
  seq: number;
  time: string;
  event: string;
  outcome: 'allow' | 'deny' | 'error';
  reason: string;
  request_id: string | null;
  client: string | null;
  details: Record<string, unknown>;
  prev: string;
  hash: string;
  /** Present (true) only on records written to stdout, to tell them from log lines. */
  audit?: true;
}

/** recordHash is SHA-256 (hex) over the RFC 8785 canonical JSON of the record without `hash`. */
export function recordHash(rec: Omit<AuditRecord, 'hash'> | Record<string, unknown>): string {
  const { hash: _drop, ...body } = rec as Record<string, unknown>;
  const text = canonicalize(body);
  if (text === undefined) throw new Error('record cannot be canonicalised');
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/**
 * canonicalJson is RFC 8785 (JCS) text of a value that scrub() produced (null, booleans, finite
 * numbers, strings, arrays, plain objects): members sorted by UTF-16 code units, values as
 * ECMAScript JSON.stringify writes them. Equal to canonicalize() on that domain, without the
 * intermediate copies (test/audit/audit.test.ts compares the two).
 */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return `[${v.map((x) => (x === undefined ? 'null' : canonicalJson(x))).join(',')}]`;
  const o = v as Record<string, unknown>;
  let out = '';
  for (const k of Object.keys(o).sort()) {
    const x = o[k];
    if (x === undefined) continue;
    out += `${out ? ',' : ''}${JSON.stringify(k)}:${canonicalJson(x)}`;
  }
  return `{${out}}`;
}

const HEX64 = /^[0-9a-f]{64}$/;
const EVENT = /^[a-z][a-z0-9_.:-]{0,63}$/;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const FIELDS = new Set(['v', 'seq', 'time', 'event', 'outcome', 'reason', 'request_id', 'client', 'details', 'prev', 'hash', 'audit']);

/** validateRecord lists what is wrong with a parsed record (empty when it matches the schema). */
export function validateRecord(r: unknown): string[] {
  const p: string[] = [];
  if (r === null || typeof r !== 'object' || Array.isArray(r)) return ['not a JSON object'];
  const o = r as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!FIELDS.has(k)) p.push(`unknown field '${k}'`);
  if (o.v !== AUDIT_VERSION) p.push(`v must be ${AUDIT_VERSION}`);
  if (typeof o.seq !== 'number' || !Number.isSafeInteger(o.seq) || o.seq < 1) p.push('seq must be an integer >= 1');
  if (typeof o.time !== 'string' || !ISO.test(o.time) || Number.isNaN(Date.parse(o.time))) p.push('time must be an ISO 8601 UTC timestamp with milliseconds');
  if (typeof o.event !== 'string' || !EVENT.test(o.event)) p.push('event must match ^[a-z][a-z0-9_.:-]{0,63}$');
  if (o.outcome !== 'allow' && o.outcome !== 'deny' && o.outcome !== 'error') p.push('outcome must be allow, deny or error');
  if (typeof o.reason !== 'string' || o.reason.length === 0 || o.reason.length > 128) p.push('reason must be a string of 1..128 characters');
  for (const k of ['request_id', 'client'] as const) {
    if (o[k] !== null && (typeof o[k] !== 'string' || (o[k] as string).length > 256)) p.push(`${k} must be null or a string of at most 256 characters`);
  }
  if (o.details === null || typeof o.details !== 'object' || Array.isArray(o.details)) p.push('details must be an object');
  if (typeof o.prev !== 'string' || !HEX64.test(o.prev)) p.push('prev must be 64 lowercase hex digits');
  if (typeof o.hash !== 'string' || !HEX64.test(o.hash)) p.push('hash must be 64 lowercase hex digits');
  if (o.audit !== undefined && o.audit !== true) p.push('audit, when present, must be true');
  return p;
}

/**
 * Detail keys whose values must never be written (secrets, nonces, wrapping keys, evidence): their
 * values are replaced by `sha256:<hex>` so that records can still be correlated. Keys that already
 * name a digest or an identifier are kept.
 */
const SECRET_KEY = /(nonce|secret|password|passphrase|wrapping|evidence|api[-_]?key|token|private|plaintext|key[-_]?material|^pin$|^key$|^keys$|authorization)/i;
const DIGEST_KEY = /(digest|sha256|sha384|sha512|hash|fingerprint|_id$|Id$|^id$|_count$|_len(gth)?$)/;
const MAX_DEPTH = 4;
const MAX_STRING = 512;
const MAX_ITEMS = 64;

function digestOf(v: unknown): string {
  const bytes = Buffer.isBuffer(v) || v instanceof Uint8Array ? Buffer.from(v) : Buffer.from(typeof v === 'string' ? v : JSON.stringify(v) ?? '', 'utf8');
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** scrub bounds and cleans the details of an event (never throws). */
export function scrub(v: unknown, depth = 0): unknown {
  if (v === null || typeof v === 'boolean') return v;
  if (typeof v === 'number') return Number.isFinite(v) ? v : null;
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'string') {
    // A detail quoting a URL with credentials (a KDS proxy, a Redis URL) keeps the URL, not the userinfo.
    const m = maskUrlUserinfo(v);
    return m.length > MAX_STRING ? `${m.slice(0, MAX_STRING)}…[${m.length} chars]` : m;
  }
  // Raw bytes are evidence or key material far more often than not: only their digest is written.
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return digestOf(v);
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? null : v.toISOString();
  if (typeof v !== 'object') return undefined; // functions, symbols, undefined
  if (depth >= MAX_DEPTH) return '[too deep]';
  if (Array.isArray(v)) {
    const out = v.slice(0, MAX_ITEMS).map((x) => scrub(x, depth + 1) ?? null);
    if (v.length > MAX_ITEMS) out.push(`…[${v.length - MAX_ITEMS} more]`);
    return out;
  }
  const out: Record<string, unknown> = {};
  let n = 0;
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    if (n++ >= MAX_ITEMS) {
      out['…'] = 'truncated';
      break;
    }
    const key = k.length > 64 ? k.slice(0, 64) : k;
    if (SECRET_KEY.test(key) && !DIGEST_KEY.test(key)) {
      if (x !== undefined && x !== null) out[key] = digestOf(x);
      continue;
    }
    const s = scrub(x, depth + 1);
    if (s !== undefined) out[key] = s;
  }
  return out;
}

/** str bounds an optional identifier field. */
export function boundedString(v: unknown, max: number): string | null {
  if (v === undefined || v === null) return null;
  const s = String(v);
  return s.length > max ? s.slice(0, max) : s;
}
