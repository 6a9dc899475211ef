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
 *   ordered a string from an ordered list (TDX TCB statuses, lowest first); min_value/max_value
 *           compare ranks; with `bareMin` a bare value is a minimum, not an exact match
 *   strings a list of strings (advisory IDs): allow_list = every element listed, deny_list = none
 */
import { CLAIM_SCHEMA, type ClaimSchemaNode } from '../snp/claims';
import { STATUS_ORDER } from '../tdx/tcb';

export type ClaimKind = 'uint' | 'bool' | 'bytes' | 'string' | 'strings';

/**
 * ClaimNode is a leaf kind, a leaf with constraints (byte length, enum values), or a nested group
 * (optionally a version triple).
 */
export type ClaimNode =
  | ClaimKind
  | { readonly kind: 'bytes'; readonly bytes: number }
  | { readonly kind: 'string'; readonly values: readonly string[] }
  | { readonly kind: 'ordered'; readonly values: readonly string[]; readonly bareMin?: boolean }
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

const b = (n: number): ClaimNode => ({ kind: 'bytes', bytes: n });
const group = (children: Record<string, ClaimNode>): ClaimNode => ({ kind: 'object', children });
const tcbStatus = (bareMin: boolean): ClaimNode => ({ kind: 'ordered', values: STATUS_ORDER, bareMin });

/**
 * TDX_CLAIM_SCHEMA is the schema of `policy_type` TDX: the original TAS's TDX attribute names
 * (PROTOCOL.md §3.4; its tdx_example_policy.json loads unchanged) plus tas's own claims
 * (src/tdx/claims.ts produces exactly these). TD 1.5 fields (`tee_tcb_svn2`, `mr_servicetd`) are
 * absent on TD 1.0 bodies: a rule on them fails there, never passes.
 */
export const TDX_CLAIM_SCHEMA: Readonly<Record<string, ClaimNode>> = {
  header: group({ version: 'uint', attestation_key_type: 'uint', tee_type: 'uint', qe_vendor_id: b(16), user_data: b(20) }),
  body: group({
    tee_tcb_svn: b(16), mr_seam: b(48), mr_signer_seam: b(48), seam_attributes: b(8), td_attributes: b(8), xfam: b(8),
    mr_td: b(48), mr_config_id: b(48), mr_owner: b(48), mr_owner_config: b(48),
    rtmr0: b(48), rtmr1: b(48), rtmr2: b(48), rtmr3: b(48), report_data: b(64), tee_tcb_svn2: b(16), mr_servicetd: b(48),
  }),
  signature_data: group({
    qe_cert_data: group({
      qe_report: group({
        cpu_svn: b(16), misc_select: 'uint', attributes: b(16), mr_enclave: b(32), mr_signer: b(32),
        isv_prod_id: 'uint', isv_svn: 'uint', report_data: b(64),
      }),
    }),
  }),
  // Bare values are minimums: `early` collateral is stricter than `standard`, so `update: standard`
  // passes under either setting and `update: early` only when TAS_TDX_COLLATERAL_UPDATE is early.
  tcb: group({
    update: { kind: 'ordered', values: ['standard', 'early'], bareMin: true },
    platform_tcb: tcbStatus(true), tdx_module_tcb: tcbStatus(true), qe_tcb: tcbStatus(true),
  }),
  td: group({ debug: 'bool', sept_ve_disable: 'bool', pks: 'bool', kl: 'bool', perfmon: 'bool', migratable: 'bool' }),
  tcb_status: tcbStatus(false),
  advisory_ids: 'strings',
  fmspc: b(6),
  tcb_eval_data_number: 'uint',
  quote_version: 'uint',
};

/** claimSchemaFor returns the schema of a (normalised) policy type. */
export function claimSchemaFor(policyType: 'SEV' | 'TDX'): Readonly<Record<string, ClaimNode>> | null {
  return policyType === 'SEV' ? SEV_CLAIM_SCHEMA : TDX_CLAIM_SCHEMA;
}
