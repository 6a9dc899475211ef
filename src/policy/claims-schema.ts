/**
 * The claim schema policies are checked against at store time: every claim name of PROTOCOL.md
 * §3.4 with its kind, plus tas's own extension claims. The names are fixed by PROTOCOL.md §3.4;
 * src/snp produces claims with exactly these names (reconcile with its CLAIM_SCHEMA when both
 * exist: there is one truth, the protocol).
 *
 * Kinds decide which operators a rule may use (src/policy/rules.ts):
 *   uint    non-negative integer (number or bigint in the claims; u64 fields may be bigint)
 *   bool    boolean
 *   bytes   byte string (Uint8Array/Buffer or hex string in the claims; rules give hex)
 *   string  text (product, signer kind)
 *   version an object {major, minor, build}; supports the min_version/max_version operators
 *   object  a group of nested claims
 */

export type ClaimKind = 'uint' | 'bool' | 'bytes' | 'string';

/** ClaimNode is a leaf kind or a nested group (optionally a version triple). */
export type ClaimNode = ClaimKind | { readonly kind: 'object' | 'version'; readonly children: Readonly<Record<string, ClaimNode>> };

const group = (children: Record<string, ClaimNode>): ClaimNode => ({ kind: 'object', children });
const version = (): ClaimNode => ({ kind: 'version', children: { major: 'uint', minor: 'uint', build: 'uint' } });

/**
 * TCB_VERSION components, decoded per product (SNP.md §1.4): `fmc` exists on Turin and later only;
 * a rule on `fmc` for a Milan/Genoa report fails (the claim is absent), it never passes silently.
 */
const tcb = (): ClaimNode => group({ bootloader: 'uint', tee: 'uint', snp: 'uint', microcode: 'uint', fmc: 'uint' });

/** SEV_CLAIM_SCHEMA is the schema of `policy_type` SEV (SNP is read as SEV). */
export const SEV_CLAIM_SCHEMA: Readonly<Record<string, ClaimNode>> = {
  version: 'uint',
  guest_svn: 'uint',
  policy: group({
    abi_minor: 'uint',
    abi_major: 'uint',
    smt_allowed: 'bool',
    migrate_ma_allowed: 'bool',
    debug_allowed: 'bool',
    single_socket_required: 'bool',
    cxl_allowed: 'bool',
    mem_aes_256_xts: 'bool',
    rapl_dis: 'bool',
    ciphertext_hiding: 'bool',
    page_swap_disable: 'bool',
  }),
  family_id: 'bytes',
  image_id: 'bytes',
  vmpl: 'uint',
  signature_algo: 'uint',
  current_tcb: tcb(),
  reported_tcb: tcb(),
  committed_tcb: tcb(),
  launch_tcb: tcb(),
  platform_info: group({
    smt_enabled: 'bool',
    tsme_enabled: 'bool',
    ecc_enabled: 'bool',
    rapl_disabled: 'bool',
    ciphertext_hiding_enabled: 'bool',
    alias_check_complete: 'bool',
    tio_enabled: 'bool',
  }),
  key_info: group({ author_key_en: 'bool', mask_chip_key: 'bool', signing_key: 'uint' }),
  report_data: 'bytes',
  measurement: 'bytes',
  host_data: 'bytes',
  id_key_digest: 'bytes',
  author_key_digest: 'bytes',
  report_id: 'bytes',
  report_id_ma: 'bytes',
  cpuid: group({ family_id: 'uint', model_id: 'uint', stepping: 'uint' }),
  chip_id: 'bytes',
  current_version: version(),
  committed_version: version(),
  launch_mit_vector: 'uint',
  current_mit_vector: 'uint',
  // --- tas's own claims (PROTOCOL.md §3.4 "plus tas's own") ----------------------------------
  product: 'string',
  signer: group({ kind: 'string', csp_id: 'string' }),
  // tas extensions documented in docs/policy.md (derived by src/snp from the report):
  /** true when the report's CHIP_ID is all zero (MASK_CHIP_ID set by the guest policy). */
  chip_id_masked: 'bool',
  /**
   * true when the running firmware is provisional: current TCB or current version differ from
   * the committed ones (go-sev-guest's PermitProvisionalFirmware). `firmware_provisional: false`
   * requires committed == current.
   */
  firmware_provisional: 'bool',
};

/** claimSchemaFor returns the schema of a (normalised) policy type, or null when tas has none. */
export function claimSchemaFor(policyType: 'SEV' | 'TDX'): Readonly<Record<string, ClaimNode>> | null {
  // TDX verification does not exist yet (PROTOCOL.md §2): TDX policies are checked for shape and
  // operators only, and can never release a key until a TDX verifier and schema exist.
  return policyType === 'SEV' ? SEV_CLAIM_SCHEMA : null;
}
