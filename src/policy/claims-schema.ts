/**
 * The claim schema policies are checked against at store time: every claim name of PROTOCOL.md
 * §3.4 with its kind, plus tas's own extension claims. The names are fixed by PROTOCOL.md §3.4;
 * the schema is derived from src/snp's CLAIM_SCHEMA (the claims the verifier produces), so there
 * is one list; test/policy/claims-schema.test.ts checks it against the protocol's list.
 *
 * Kinds decide which operators a rule may use (src/policy/rules.ts):
 *   uint    non-negative integer (number or bigint in the claims; u64 fields may be bigint)
 *   bool    boolean
 *   bytes   byte string (Uint8Array/Buffer or hex string in the claims; rules give hex)
 *   string  text (product, signer kind)
 *   version an object {major, minor, build}; supports the min_version/max_version operators
 *   object  a group of nested claims
 */
import { CLAIM_SCHEMA, type ClaimSchemaNode } from '../snp/claims';

export type ClaimKind = 'uint' | 'bool' | 'bytes' | 'string';

/**
 * ClaimNode is a leaf kind, a leaf with constraints (byte length, enum values), or a nested group
 * (optionally a version triple).
 */
export type ClaimNode =
  | ClaimKind
  | { readonly kind: 'bytes'; readonly bytes: number }
  | { readonly kind: 'string'; readonly values: readonly string[] }
  | { readonly kind: 'object' | 'version'; readonly children: Readonly<Record<string, ClaimNode>> };

const VERSION_FIELDS = ['build', 'major', 'minor'];

/**
 * fromSnp converts src/snp's CLAIM_SCHEMA (the claims the verifier actually produces) into the
 * engine's form, so that there is one list of claim names. `{major, minor, build}` groups become
 * `version` nodes (they support min_version/max_version). TCB groups carry `fmc`, which exists on
 * Turin and later only: a rule on `fmc` for a Milan/Genoa report fails (absent), never passes.
 */
function fromSnp(n: ClaimSchemaNode): ClaimNode {
  switch (n.kind) {
    case 'int':
      return 'uint';
    case 'bool':
      return 'bool';
    case 'string':
      return 'string';
    case 'hex':
      return n.bytes > 0 ? { kind: 'bytes', bytes: n.bytes } : 'bytes';
    case 'enum':
      return { kind: 'string', values: n.values };
    case 'object': {
      const children: Record<string, ClaimNode> = {};
      for (const [k, v] of Object.entries(n.fields)) children[k] = fromSnp(v);
      const isVersion = Object.keys(n.fields).sort().join(',') === VERSION_FIELDS.join(',');
      return { kind: isVersion ? 'version' : 'object', children };
    }
  }
}

/**
 * SEV_CLAIM_SCHEMA is the schema of `policy_type` SEV (SNP is read as SEV): every claim of
 * PROTOCOL.md §3.4 plus tas's extensions documented in docs/policy.md (`chip_id_masked`,
 * `firmware_provisional`, `policy_raw`, `platform_info_raw`).
 */
export const SEV_CLAIM_SCHEMA: Readonly<Record<string, ClaimNode>> = Object.fromEntries(
  Object.entries(CLAIM_SCHEMA).map(([k, v]) => [k, fromSnp(v)]),
);

/** claimSchemaFor returns the schema of a (normalised) policy type, or null when tas has none. */
export function claimSchemaFor(policyType: 'SEV' | 'TDX'): Readonly<Record<string, ClaimNode>> | null {
  // TDX verification does not exist yet (PROTOCOL.md §2): TDX policies are checked for shape and
  // operators only, and can never release a key until a TDX verifier and schema exist.
  return policyType === 'SEV' ? SEV_CLAIM_SCHEMA : null;
}
