/**
 * The narrow ports the get_secret pipeline needs from the modules to its right (DESIGN.md data
 * flow). The composition root (src/daemon) adapts the real modules (src/snp, src/kds, src/nonce,
 * src/policy, src/kbm) to these; tests adapt fakes. Keeping them narrow keeps the import
 * direction one way and the pipeline readable top to bottom.
 */
import type { SecretKeyReply } from './types';

/** Product is an AMD SEV-SNP product line (KDS path name). */
export type Product = 'Milan' | 'Genoa' | 'Turin';

/** ReportPeek is what can be read from a report without crypto (for certificate lookup). */
export interface ReportPeek {
  readonly version: number;
  readonly product: Product | undefined;
  readonly signingKey: 'VCEK' | 'VLEK';
  readonly chipIdMasked: boolean;
}

/** EndorsementCerts is the VCEK/VLEK (DER) and, when known, its ASK/ASVK (DER). */
export interface EndorsementCerts {
  readonly leaf: Buffer;
  readonly intermediate?: Buffer;
  /** Where the leaf came from: `evidence` (tee-certificates), `memory`, `persistent`, `kds`. */
  readonly source: string;
}

/** VerifiedEvidence is the outcome of a successful SNP verification. */
export interface VerifiedEvidence {
  /** Claims under the names of PROTOCOL.md §3.4 (byte fields as lowercase hex). */
  readonly claims: Readonly<Record<string, unknown>>;
  /** REPORT_DATA bytes (64). */
  readonly reportData: Buffer;
  readonly product: Product;
  /** Operator-relevant notes for the audit record (e.g. verified without a fresh CRL, fail-open). */
  readonly notes?: readonly string[];
}

/** UsablePolicy is a stored policy whose signature has just been re-checked. */
export interface UsablePolicy {
  readonly id: string;
  readonly keyId: string;
  readonly policyType: 'SEV' | 'TDX';
  readonly requireBinding: boolean | undefined;
  readonly rules: Readonly<Record<string, unknown>>;
  /** True when the signature covers metadata.key_id (whole-document signature). */
  readonly keyBindingSigned: boolean;
}

/** RuleVerdict is the rule engine's answer: every failure is listed. */
export interface RuleVerdict {
  readonly ok: boolean;
  readonly failures: readonly string[];
}

export interface AttestPorts {
  /** peek parses the report enough to find its certificates; throws TasError for malformed evidence. */
  peek(report: Buffer): ReportPeek;
  /** certificates resolves the endorsement key certificate: tee-certificates first, then cache/KDS. */
  certificates(report: Buffer, peek: ReportPeek, teeCertificates: Buffer | undefined): Promise<EndorsementCerts>;
  /** verify checks the report against its certificates and the pinned roots (native, off-loop). */
  verify(report: Buffer, certs: EndorsementCerts, peek: ReportPeek): Promise<VerifiedEvidence>;
  /** Nonce life cycle (PROTOCOL.md §2). claim returns false for unknown/expired/claimed/consumed. */
  readonly nonces: {
    claim(nonce: string, owner: string): Promise<boolean>;
    consume(nonce: string, owner: string): Promise<void>;
    release(nonce: string, owner: string): Promise<void>;
  };
  readonly policies: {
    /** forUse loads a policy and re-checks its signature; undefined when unknown. */
    forUse(id: string): Promise<UsablePolicy | undefined>;
    /** byKeyId lists the stored policies whose metadata.key_id is keyId and type is policyType. */
    byKeyId(keyId: string, policyType: 'SEV' | 'TDX'): Promise<UsablePolicy[]>;
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
