/**
 * PolicyService: the one way policies enter, leave and are used. Every document is checked for
 * shape, rules (unknown claims/operators named) and signature at store time, and its signature is
 * checked again at use through a cache keyed by the document digest and the trust-set generation
 * (a SIGHUP trust reload therefore voids every cached verdict).
 *
 * Storage goes through PolicyRepo, a small interface the store module's backends satisfy (the
 * embedded and Redis stores hold the document JSON under `policy:<id>`).
 */
import type { Logger } from 'pino';
import type { AuditLog, AuditOutcome } from '../audit/types';
import { isTasError, TasError } from '../errors';
import { claimSchemaFor } from './claims-schema';
import { compileRules, type CompiledRules } from './rules';
import { isLegacySigned, parseDocument, policyTypeOf, POLICY_ID_RE, type Dialect, type PolicyDocument, type PolicyType } from './schema';
import { documentDigest, verifyDocumentSignature } from './signature';
import type { PolicyTrust } from './trust';

/** PolicyRepo is the storage a PolicyService needs (put-if-absent semantics are essential). */
export interface PolicyRepo {
  /** Stores `document` (JSON text) under id unless the id exists; false when it exists. */
  putIfAbsent(id: string, document: string): Promise<boolean>;
  get(id: string): Promise<string | undefined>;
  /** false when the id did not exist. */
  delete(id: string): Promise<boolean>;
  list(): Promise<Array<{ id: string; document: string }>>;
}

/** MemoryPolicyRepo keeps policies in a Map (tests, `tas policy test`). */
export class MemoryPolicyRepo implements PolicyRepo {
  private readonly m = new Map<string, string>();
  async putIfAbsent(id: string, document: string): Promise<boolean> {
    if (this.m.has(id)) return false;
    this.m.set(id, document);
    return true;
  }
  async get(id: string): Promise<string | undefined> {
    return this.m.get(id);
  }
  async delete(id: string): Promise<boolean> {
    return this.m.delete(id);
  }
  async list(): Promise<Array<{ id: string; document: string }>> {
    return [...this.m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([id, document]) => ({ id, document }));
  }
}

/** PolicySettings are read on every decision (they may change on SIGHUP). */
export interface PolicySettings {
  /** TAS_ENFORCE_SIGNED_POLICIES */
  readonly enforceSigned: boolean;
  /** TAS_ALLOW_UNSIGNED_KEY_BINDING */
  readonly allowUnsignedKeyBinding: boolean;
}

/** UsablePolicy is a policy loaded for a decision: verified now (or from the cache), rules compiled. */
export interface UsablePolicy {
  readonly id: string;
  readonly document: PolicyDocument;
  readonly policyType: PolicyType;
  readonly rules: CompiledRules;
  /** Whether a trusted signature covers the document (false for unsigned and rules-only signed). */
  readonly keyBindingSigned: boolean;
  readonly signed: boolean;
  /** Fingerprint of the key that verified, when signed. */
  readonly signer: string | undefined;
  readonly digest: string;
}

/** PolicySummary is one entry of the management list. */
export interface PolicySummary {
  readonly policy_id: string;
  readonly name: string;
  readonly policy_type: string;
  readonly key_id: string;
  readonly version: string;
  readonly description: string;
  readonly signed: boolean;
}

/** Who asked, for audit records. */
export interface CallerContext {
  readonly requestId?: string;
  readonly client?: string;
}

export interface PolicyServiceOptions {
  readonly repo: PolicyRepo;
  readonly trust: PolicyTrust;
  readonly settings: () => PolicySettings;
  readonly log?: Logger;
  readonly audit?: AuditLog;
  /** Maximum cached verdicts (default 4096). */
  readonly cacheSize?: number;
}

interface CachedVerdict {
  readonly signer: string | undefined;
  readonly signed: boolean;
  readonly rules: CompiledRules;
}

/** keyBindingSigned tells whether the policy's signature covers metadata.key_id (whole-document signature). */
export function keyBindingSigned(policy: PolicyDocument | UsablePolicy): boolean {
  if ('rules' in policy && 'keyBindingSigned' in policy) return policy.keyBindingSigned;
  const doc = policy as PolicyDocument;
  return doc.signature !== undefined && !isLegacySigned(doc);
}

export class PolicyService {
  private readonly cache = new Map<string, CachedVerdict>();
  /** forUse results by policy id, valid for the exact stored text and trust generation. */
  private readonly useCache = new Map<string, { text: string; generation: number; enforce: boolean; usable: UsablePolicy }>();
  private readonly cacheSize: number;
  /** Counters (tests and metrics): how many signature verifications actually ran. */
  readonly stats = { verifications: 0, cacheHits: 0 };

  constructor(private readonly opts: PolicyServiceOptions) {
    this.cacheSize = opts.cacheSize ?? 4096;
  }

  get trust(): PolicyTrust {
    return this.opts.trust;
  }

  /** status is the policy member of GET /management/status (no secrets: key fingerprints only). */
  status(): Record<string, unknown> {
    const s = this.opts.settings();
    return {
      trust: this.opts.trust.source ?? null,
      trusted_keys: this.opts.trust.keys.map((k) => ({ fingerprint: k.fingerprint, bits: k.bits, source: k.source })),
      trust_generation: this.opts.trust.generation,
      enforce_signed: s.enforceSigned,
      allow_unsigned_key_binding: s.allowUnsignedKeyBinding,
      signature_verifications: this.stats.verifications,
      verdict_cache_hits: this.stats.cacheHits,
      verdict_cache_entries: this.cache.size,
    };
  }

  /** clearCache drops every cached verdict (also implied by a trust generation change). */
  clearCache(): void {
    this.cache.clear();
    this.useCache.clear();
  }

  /**
   * check validates a document fully without storing it: shape for the dialect, rules against the
   * claim schema, signature against the trust set. Returns the usable form.
   */
  check(raw: unknown, dialect: Dialect): UsablePolicy {
    const doc = parseDocument(raw, dialect);
    return this.verified(doc.metadata.policy_id, doc);
  }

  /** store checks and stores a document; 409 POLICY_EXISTS when the id is taken. */
  async store(raw: unknown, opts: { dialect: Dialect } & CallerContext): Promise<UsablePolicy> {
    let id: string | undefined;
    try {
      const doc = parseDocument(raw, opts.dialect);
      id = doc.metadata.policy_id;
      const usable = this.verified(id, doc);
      const stored = await this.opts.repo.putIfAbsent(id, JSON.stringify(doc));
      if (!stored) throw new TasError('POLICY_EXISTS', `policy:${id} already exists`, { params: { id }, reason: 'POLICY_EXISTS' });
      this.auditRecord('policy.store', 'allow', 'POLICY_STORED', opts, {
        policy_id: id,
        dialect: opts.dialect,
        signed: usable.signed,
        key_binding_signed: usable.keyBindingSigned,
        signer: usable.signer,
        digest: usable.digest,
        key_id: doc.metadata.key_id,
        policy_type: usable.policyType,
      });
      this.opts.log?.info({ policy_id: id, signer: usable.signer, signed: usable.signed }, 'policy stored');
      return usable;
    } catch (e) {
      this.refused('policy.store', e, opts, { policy_id: id, dialect: opts.dialect });
      throw e;
    }
  }

  /** get returns the stored document; 404 POLICY_NOT_FOUND. */
  async get(id: string): Promise<PolicyDocument> {
    assertId(id);
    const text = await this.opts.repo.get(id);
    if (text === undefined) throw notFound(id);
    return JSON.parse(text) as PolicyDocument;
  }

  /** list summarises every stored policy (unparseable entries are logged and skipped). */
  async list(): Promise<PolicySummary[]> {
    const out: PolicySummary[] = [];
    for (const { id, document } of await this.opts.repo.list()) {
      let doc: PolicyDocument;
      try {
        doc = JSON.parse(document) as PolicyDocument;
      } catch {
        this.opts.log?.warn({ policy_id: id }, 'stored policy is not valid JSON; skipped in list');
        continue;
      }
      const m = (doc.metadata ?? {}) as Partial<PolicyDocument['metadata']>;
      out.push({
        policy_id: id,
        name: m.name ?? 'Unknown',
        policy_type: m.policy_type ?? 'Unknown',
        key_id: m.key_id ?? '',
        version: m.version ?? 'Unknown',
        description: m.description ?? 'No description',
        signed: doc.signature !== undefined,
      });
    }
    return out;
  }

  /** delete removes a policy; 404 POLICY_NOT_FOUND. */
  async delete(id: string, ctx: CallerContext = {}): Promise<void> {
    try {
      assertId(id);
      if (!(await this.opts.repo.delete(id))) throw notFound(id);
      this.auditRecord('policy.delete', 'allow', 'POLICY_DELETED', ctx, { policy_id: id });
      this.opts.log?.info({ policy_id: id }, 'policy deleted');
    } catch (e) {
      this.refused('policy.delete', e, ctx, { policy_id: id });
      throw e;
    }
  }

  /**
   * forUse loads a policy for a decision and re-checks its signature (cached by digest and trust
   * generation). Throws POLICY_NOT_FOUND, POLICY_UNSIGNED or POLICY_SIGNATURE_FAILED.
   */
  async forUse(id: string): Promise<UsablePolicy> {
    assertId(id);
    const text = await this.opts.repo.get(id);
    if (text === undefined) throw notFound(id);
    // Every get_secret uses a policy: when the stored text, the trust generation and the
    // enforcement setting are what they were, the previous verdict stands (comparing the text is
    // far cheaper than parsing it and re-computing its canonical form and digest).
    const enforce = this.opts.settings().enforceSigned;
    const hit = this.useCache.get(id);
    if (hit && hit.text === text && hit.generation === this.opts.trust.generation && hit.enforce === enforce) {
      this.stats.cacheHits++;
      return hit.usable;
    }
    // Stored documents came through a route whose dialect allowed their signature form; a
    // rules-only signature can only have entered through the first-dialect routes.
    const usable = this.verified(id, parseDocument(JSON.parse(text) as PolicyDocument, 'first'));
    if (this.useCache.size >= this.cacheSize) this.useCache.clear();
    this.useCache.set(id, { text, generation: this.opts.trust.generation, enforce, usable });
    return usable;
  }

  /**
   * findByKeyId serves the key-id dialect: every stored policy whose signed metadata.key_id equals
   * keyId and whose policy_type matches, verified. Only policies whose signature covers the key
   * binding are returned, unless TAS_ALLOW_UNSIGNED_KEY_BINDING=true.
   */
  async findByKeyId(keyId: string, policyType: PolicyType, opts: { includeUnsignedBinding?: boolean } = {}): Promise<UsablePolicy[]> {
    const out: UsablePolicy[] = [];
    for (const { id, document } of await this.opts.repo.list()) {
      let doc: PolicyDocument;
      try {
        doc = parseDocument(JSON.parse(document), 'first');
      } catch (e) {
        this.opts.log?.warn({ policy_id: id, err: errText(e) }, 'stored policy unreadable; skipped');
        continue;
      }
      if (doc.metadata.key_id !== keyId || policyTypeOf(doc) !== policyType) continue;
      let usable: UsablePolicy;
      try {
        usable = this.verified(id, doc);
      } catch (e) {
        this.opts.log?.warn({ policy_id: id, err: errText(e) }, 'stored policy no longer verifies; skipped');
        continue;
      }
      // The attest pipeline asks for these too, so that its refusal (and audit reason) can say
      // that a policy names the key but its signature does not cover that binding.
      if (!this.keyReleaseAllowed(usable) && !opts.includeUnsignedBinding) {
        this.opts.log?.warn({ policy_id: id, key_id: keyId }, 'policy signature does not cover the key binding; skipped (TAS_ALLOW_UNSIGNED_KEY_BINDING=false)');
        continue;
      }
      out.push(usable);
    }
    return out;
  }

  /**
   * keyReleaseAllowed tells whether this policy may release its metadata.key_id: only when a
   * trusted signature covers the whole document, or TAS_ALLOW_UNSIGNED_KEY_BINDING=true (for
   * rules-only signed AND for unsigned policies: TAS_ENFORCE_SIGNED_POLICIES=false admits unsigned
   * policies to the store, it does not by itself let them release keys).
   */
  keyReleaseAllowed(p: UsablePolicy): boolean {
    return p.keyBindingSigned || this.opts.settings().allowUnsignedKeyBinding;
  }

  /** assertKeyRelease throws POLICY_KEY_BINDING_UNSIGNED when keyReleaseAllowed is false. */
  assertKeyRelease(p: UsablePolicy): void {
    if (!this.keyReleaseAllowed(p)) {
      throw new TasError(
        'POLICY_KEY_BINDING_UNSIGNED',
        `policy:${p.id} is ${p.signed ? 'signed over validation_rules only' : 'unsigned'}, so its key binding (key_id ${p.document.metadata.key_id ?? '-'}) is unsigned; set TAS_ALLOW_UNSIGNED_KEY_BINDING=true to allow, or sign the whole document`,
        { reason: 'POLICY_KEY_BINDING_UNSIGNED' },
      );
    }
  }

  private verified(id: string, doc: PolicyDocument): UsablePolicy {
    const digest = documentDigest(doc);
    const settings = this.opts.settings();
    const cacheKey = `${digest}:${this.opts.trust.generation}`;
    let v = this.cache.get(cacheKey);
    if (v !== undefined) {
      this.stats.cacheHits++;
    } else {
      const rules = compileRules(doc.validation_rules, claimSchemaFor(policyTypeOf(doc)));
      if (doc.signature === undefined) {
        v = { signer: undefined, signed: false, rules };
      } else {
        this.stats.verifications++;
        const verdict = verifyDocumentSignature(doc, this.opts.trust.keys);
        if (!verdict.ok) {
          throw new TasError('POLICY_SIGNATURE_FAILED', `policy:${id}: ${verdict.reason}`, { reason: 'POLICY_SIGNATURE_FAILED' });
        }
        v = { signer: verdict.key.fingerprint, signed: true, rules };
      }
      if (this.cache.size >= this.cacheSize) {
        const oldest = this.cache.keys().next().value;
        if (oldest !== undefined) this.cache.delete(oldest);
      }
      this.cache.set(cacheKey, v);
    }
    // Enforcement is re-read on every use: an unsigned policy stored while enforcement was off is
    // refused once it is back on.
    if (!v.signed && settings.enforceSigned) {
      throw new TasError('POLICY_UNSIGNED', `policy:${id} is unsigned and TAS_ENFORCE_SIGNED_POLICIES is true`, { reason: 'POLICY_UNSIGNED' });
    }
    return {
      id,
      document: doc,
      policyType: policyTypeOf(doc),
      rules: v.rules,
      keyBindingSigned: v.signed && !isLegacySigned(doc),
      signed: v.signed,
      signer: v.signer,
      digest,
    };
  }

  private auditRecord(event: string, outcome: AuditOutcome, reason: string, ctx: CallerContext, details: Record<string, unknown>): void {
    this.opts.audit?.record({
      event,
      outcome,
      reason,
      ...(ctx.requestId !== undefined ? { requestId: ctx.requestId } : {}),
      ...(ctx.client !== undefined ? { client: ctx.client } : {}),
      details,
    });
  }

  /** refused audits and logs a refused store/delete (also used by the routes for envelope errors). */
  refused(event: string, e: unknown, ctx: CallerContext, details: Record<string, unknown>): void {
    const reason = isTasError(e) ? e.reason : 'INTERNAL';
    const detail = errText(e);
    this.auditRecord(event, isTasError(e) && e.status < 500 ? 'deny' : 'error', reason, ctx, { ...details, detail });
    this.opts.log?.warn({ ...details, reason, detail }, `${event} refused`);
  }
}

function errText(e: unknown): string {
  return isTasError(e) ? e.detail : e instanceof Error ? e.message : String(e);
}

function notFound(id: string): TasError {
  return new TasError('POLICY_NOT_FOUND', `policy:${id} not found`, { params: { id }, reason: 'POLICY_NOT_FOUND' });
}

/** assertId refuses ids outside ^[A-Za-z0-9_.-]{1,128}$ with a 400. */
export function assertId(id: string): void {
  if (!POLICY_ID_RE.test(id)) {
    throw new TasError('POLICY_ID_INVALID', `policy id ${JSON.stringify(id.slice(0, 140))} does not match ^[A-Za-z0-9_.-]{1,128}$`, {
      reason: 'POLICY_ID_INVALID',
    });
  }
}
