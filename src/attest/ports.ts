/**
 * The narrow ports the attestation pipeline needs from the modules to its right (DESIGN.md data
 * flow). The composition root (src/daemon) adapts the real modules (src/snp + src/kds, src/tdx +
 * src/pcs, src/nonce, src/policy, src/kbm, …) to these; tests adapt fakes. Keeping them narrow
 * keeps the import direction one way and the pipeline readable top to bottom.
 */
import type { SecretKeyReply } from './types';
import type { ComponentHook, PolicyType, VerifierRegistry } from './verifier';

/** UsablePolicy is a stored policy whose signature has just been re-checked. */
export interface UsablePolicy {
  readonly id: string;
  readonly keyId: string;
  readonly policyType: PolicyType;
  readonly requireBinding: boolean | undefined;
  readonly rules: Readonly<Record<string, unknown>>;
  /** True when the signature covers metadata.key_id (whole-document signature). */
  readonly keyBindingSigned: boolean;
  /** SHA-512 of the stored document in RFC 8785 form (computed on demand; certify records it). */
  readonly digest?: () => Buffer;
  /** The signed top-level `components` section (PROTOCOL.md §2.1), when present. */
  readonly components?: Readonly<Record<string, unknown>>;
}

/** RuleVerdict is the rule engine's answer: every failure is listed. */
export interface RuleVerdict {
  readonly ok: boolean;
  readonly failures: readonly string[];
}

export interface AttestPorts {
  /** One verifier per supported tee-type; a type without one is refused with 400. */
  readonly verifiers: VerifierRegistry;
  /** component-evidence (GPUs); absent = the field is ignored (not bound, not evaluated). */
  readonly components?: ComponentHook;
  /**
   * Nonce life cycle (PROTOCOL.md §2). claim returns false for unknown/expired/claimed/consumed.
   * consume is owner-checked and atomic: false when the claim was lost (lease lapsed and another
   * request took it), true again when repeated by the same owner after a lost reply. unconsume
   * undoes owner's consume when the secret was not sent (src/store/types.ts).
   */
  readonly nonces: {
    claim(nonce: string, owner: string): Promise<boolean>;
    consume(nonce: string, owner: string): Promise<boolean>;
    release(nonce: string, owner: string): Promise<void>;
    unconsume(nonce: string, owner: string): Promise<boolean>;
    /** forgetConsumed: owner will not repeat or undo its consume (the store may drop its marker). */
    forgetConsumed(nonce: string, owner: string): void;
  };
  readonly policies: {
    /** forUse loads a policy and re-checks its signature; undefined when unknown. */
    forUse(id: string): Promise<UsablePolicy | undefined>;
    /** byKeyId lists the stored policies whose metadata.key_id is keyId and type is policyType. */
    byKeyId(keyId: string, policyType: PolicyType): Promise<UsablePolicy[]>;
    evaluate(policy: UsablePolicy, claims: Readonly<Record<string, unknown>>): RuleVerdict;
    /** allowUnsignedKeyBinding mirrors TAS_ALLOW_UNSIGNED_KEY_BINDING. */
    allowUnsignedKeyBinding(): boolean;
  };
  /** broker releases keyId wrapped for the client's key (bytes exactly as sent). */
  readonly broker: {
    validateWrappingKey(bytes: Buffer): void;
    getSecret(keyId: string, wrappingKey: Buffer): Promise<SecretKeyReply>;
  };
  /** requireBinding mirrors TAS_REQUIRE_REPORT_DATA_BINDING for a dialect (undefined = dialect default). */
  requireBinding(dialect: 'policy-id' | 'key-id'): boolean;
}
