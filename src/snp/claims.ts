/**
 * The claims a verified SEV-SNP report yields, with EXACTLY the names of PROTOCOL.md §3.4, and the
 * machine-readable CLAIM_SCHEMA that the policy rule engine uses to refuse unknown claim names at
 * store time. Byte fields are lowercase hex strings. Bits follow AMD 56860 (SNP.md §1.5, §1.6).
 */
import type { Product } from './product';
import { decodeTcb, tcbClaims, type TcbClaims } from './tcb';

/** GuestPolicyClaims: the GUEST POLICY bits. */
export interface GuestPolicyClaims {
  abi_minor: number;
  abi_major: number;
  smt_allowed: boolean;
  migrate_ma_allowed: boolean;
  debug_allowed: boolean;
  single_socket_required: boolean;
  cxl_allowed: boolean;
  mem_aes_256_xts: boolean;
  rapl_dis: boolean;
  ciphertext_hiding: boolean;
  page_swap_disable: boolean;
}

/** PlatformInfoClaims: the PLATFORM_INFO bits (bit 6 is only in platform_info_raw). */
export interface PlatformInfoClaims {
  smt_enabled: boolean;
  tsme_enabled: boolean;
  ecc_enabled: boolean;
  rapl_disabled: boolean;
  ciphertext_hiding_enabled: boolean;
  alias_check_complete: boolean;
  tio_enabled: boolean;
}

export interface VersionClaims {
  major: number;
  minor: number;
  build: number;
}

/** U64 is a number when it fits in 2^53, else a bigint (mitigation vectors, raw bit fields). */
export type U64 = number | bigint;

/** Claims is what policies are evaluated against. */
export interface Claims {
  version: number;
  guest_svn: number;
  policy: GuestPolicyClaims;
  family_id: string;
  image_id: string;
  vmpl: number;
  signature_algo: number;
  current_tcb: TcbClaims;
  reported_tcb: TcbClaims;
  committed_tcb: TcbClaims;
  launch_tcb: TcbClaims;
  platform_info: PlatformInfoClaims;
  /** signing_key is the raw SIGNING_KEY field: 0 VCEK, 1 VLEK. */
  key_info: { author_key_en: boolean; mask_chip_key: boolean; signing_key: number };
  report_data: string;
  measurement: string;
  host_data: string;
  id_key_digest: string;
  author_key_digest: string;
  report_id: string;
  report_id_ma: string;
  /** Present for report version 3 and later only. */
  cpuid?: { family_id: number; model_id: number; stepping: number };
  /**
   * All 64 bytes (Turin: bytes 8..63 are zero). A masked report (CHIP_ID all zero) is never judged
   * by its zeros: with a VCEK, this is the verified VCEK's hwID in the CHIP_ID layout (the chip
   * that signed); with a VLEK it is absent, so every chip_id rule fails closed.
   */
  chip_id?: string;
  current_version: VersionClaims;
  committed_version: VersionClaims;
  /** Present for report version 5 and later only. */
  launch_mit_vector?: U64;
  current_mit_vector?: U64;
  // --- tas's own claims ---------------------------------------------------------------------------
  product: Product;
  /** csp_id only for VLEK (the certificate's cspID); hw_id only for VCEK (its hwID extension). */
  signer: { kind: 'VCEK' | 'VLEK'; csp_id?: string; hw_id?: string };
  /** true when CHIP_ID is all zero (MASK_CHIP_ID): no chip binding was possible. */
  chip_id_masked: boolean;
  /** true when current TCB/version differ from the committed ones (provisional firmware). */
  firmware_provisional: boolean;
  /** Raw GUEST POLICY and PLATFORM_INFO (lenient parsing: e.g. PLATFORM_INFO bit 6 on Turin). */
  policy_raw: U64;
  platform_info_raw: U64;
}

/** ClaimSchemaNode describes one claim: a leaf kind, an enum, or a nested group. */
export type ClaimSchemaNode =
  | { readonly kind: 'int' | 'bool' | 'string'; readonly optional?: boolean; readonly doc?: string }
  /** bytes 0: any whole number of bytes (hwID: 64 bytes, Turin 8). */
  | { readonly kind: 'hex'; readonly bytes: number; readonly optional?: boolean; readonly doc?: string }
  | { readonly kind: 'enum'; readonly values: readonly string[]; readonly optional?: boolean; readonly doc?: string }
  | { readonly kind: 'object'; readonly fields: Readonly<Record<string, ClaimSchemaNode>>; readonly optional?: boolean; readonly doc?: string };

const int = (doc?: string, optional?: boolean): ClaimSchemaNode => ({ kind: 'int', ...(doc ? { doc } : {}), ...(optional ? { optional } : {}) });
const bool = (): ClaimSchemaNode => ({ kind: 'bool' });
const hex = (bytes: number): ClaimSchemaNode => ({ kind: 'hex', bytes });
const obj = (fields: Record<string, ClaimSchemaNode>, optional?: boolean, doc?: string): ClaimSchemaNode =>
  ({ kind: 'object', fields, ...(optional ? { optional } : {}), ...(doc ? { doc } : {}) });
const tcb = (): ClaimSchemaNode => obj({ bootloader: int(), tee: int(), snp: int(), microcode: int(), fmc: int('Turin and later only', true) });
const version = (): ClaimSchemaNode => obj({ major: int(), minor: int(), build: int() });

/** CLAIM_SCHEMA: every claim name → kind (PROTOCOL.md §3.4 plus tas's documented extensions). */
export const CLAIM_SCHEMA: Readonly<Record<string, ClaimSchemaNode>> = {
  version: int('report VERSION (2..5)'),
  guest_svn: int(),
  policy: obj({
    abi_minor: int(), abi_major: int(), smt_allowed: bool(), migrate_ma_allowed: bool(), debug_allowed: bool(),
    single_socket_required: bool(), cxl_allowed: bool(), mem_aes_256_xts: bool(), rapl_dis: bool(),
    ciphertext_hiding: bool(), page_swap_disable: bool(),
  }),
  family_id: hex(16),
  image_id: hex(16),
  vmpl: int(),
  signature_algo: int(),
  current_tcb: tcb(),
  reported_tcb: tcb(),
  committed_tcb: tcb(),
  launch_tcb: tcb(),
  platform_info: obj({
    smt_enabled: bool(), tsme_enabled: bool(), ecc_enabled: bool(), rapl_disabled: bool(),
    ciphertext_hiding_enabled: bool(), alias_check_complete: bool(), tio_enabled: bool(),
  }),
  key_info: obj({ author_key_en: bool(), mask_chip_key: bool(), signing_key: int('0 VCEK, 1 VLEK') }),
  report_data: hex(64),
  measurement: hex(48),
  host_data: hex(32),
  id_key_digest: hex(48),
  author_key_digest: hex(48),
  report_id: hex(32),
  report_id_ma: hex(32),
  cpuid: obj({ family_id: int(), model_id: int(), stepping: int() }, true, 'report version 3 and later only'),
  chip_id: { kind: 'hex', bytes: 64, optional: true, doc: 'masked CHIP_ID: the VCEK hwID in CHIP_ID layout; absent for a masked VLEK report' },
  current_version: version(),
  committed_version: version(),
  launch_mit_vector: int('report version 5 and later only', true),
  current_mit_vector: int('report version 5 and later only', true),
  product: { kind: 'enum', values: ['Milan', 'Genoa', 'Turin'] },
  signer: obj({
    kind: { kind: 'enum', values: ['VCEK', 'VLEK'] },
    csp_id: { kind: 'string', optional: true, doc: 'VLEK only' },
    hw_id: { kind: 'hex', bytes: 0, optional: true, doc: "VCEK only: the verified VCEK's hwID (64 bytes; Turin 8)" },
  }),
  chip_id_masked: { kind: 'bool', doc: 'tas: CHIP_ID is all zero (MASK_CHIP_ID); a policy with a chip_id rule must have a chip_id_masked rule' },
  firmware_provisional: { kind: 'bool', doc: 'tas: current TCB or version differs from the committed one' },
  policy_raw: int('tas: GUEST POLICY as an integer'),
  platform_info_raw: int('tas: PLATFORM_INFO as an integer (includes bits without a named claim)'),
};

/** ReportFields is the decoded report as the snp layer needs it (adapted from the native parse). */
export interface ReportFields {
  version: number;
  guestSvn: number;
  policy: bigint;
  familyId: Uint8Array;
  imageId: Uint8Array;
  vmpl: number;
  signatureAlgo: number;
  currentTcb: Uint8Array;
  platformInfo: bigint;
  authorKeyEn: boolean;
  maskChipKey: boolean;
  signingKey: number;
  reportData: Uint8Array;
  measurement: Uint8Array;
  hostData: Uint8Array;
  idKeyDigest: Uint8Array;
  authorKeyDigest: Uint8Array;
  reportId: Uint8Array;
  reportIdMa: Uint8Array;
  reportedTcb: Uint8Array;
  cpuid?: { family: number; model: number; stepping: number } | undefined;
  chipId: Uint8Array;
  committedTcb: Uint8Array;
  currentVersion: VersionClaims;
  committedVersion: VersionClaims;
  launchTcb: Uint8Array;
  launchMitVector?: bigint | undefined;
  currentMitVector?: bigint | undefined;
}

export const toHex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
const u64 = (v: bigint): U64 => (v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
const bit = (v: bigint, n: number): boolean => ((v >> BigInt(n)) & 1n) === 1n;

/** isAllZero tells whether every byte is zero. */
export function isAllZero(b: Uint8Array): boolean {
  let acc = 0;
  for (const x of b) acc |= x;
  return acc === 0;
}

/**
 * chipIdClaim is the `chip_id` claim (PROTOCOL.md §3.4): the report's CHIP_ID, except that a masked
 * one (all zero) is never what a rule sees — a deny list of chips would pass every masked report.
 * With a VCEK the chip is still known (the verifier checked the VCEK that signed): its hwID in the
 * CHIP_ID layout (Turin: 8 bytes, then zeros). With a VLEK there is no chip identity: no claim.
 */
function chipIdClaim(chipId: Uint8Array, hwId: Uint8Array | undefined): { chip_id?: string } {
  if (!isAllZero(chipId)) return { chip_id: toHex(chipId) };
  if (hwId === undefined || hwId.length === 0 || hwId.length > chipId.length) return {};
  const layout = new Uint8Array(chipId.length);
  layout.set(hwId);
  return { chip_id: toHex(layout) };
}

/** buildClaims turns a decoded, verified report into claims (TCBs decoded by the product's layout). */
export function buildClaims(r: ReportFields, product: Product, signer: { kind: 'VCEK' | 'VLEK'; cspId?: string | undefined; hwId?: Uint8Array | undefined }): Claims {
  const p = r.policy;
  const pi = r.platformInfo;
  const t = (b: Uint8Array): TcbClaims => tcbClaims(decodeTcb(product, b));
  const eq = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, i) => x === b[i]);
  const c: Claims = {
    version: r.version,
    guest_svn: r.guestSvn,
    policy: {
      abi_minor: Number(p & 0xffn),
      abi_major: Number((p >> 8n) & 0xffn),
      smt_allowed: bit(p, 16),
      migrate_ma_allowed: bit(p, 18),
      debug_allowed: bit(p, 19),
      single_socket_required: bit(p, 20),
      cxl_allowed: bit(p, 21),
      mem_aes_256_xts: bit(p, 22),
      rapl_dis: bit(p, 23),
      ciphertext_hiding: bit(p, 24),
      page_swap_disable: bit(p, 25),
    },
    family_id: toHex(r.familyId),
    image_id: toHex(r.imageId),
    vmpl: r.vmpl,
    signature_algo: r.signatureAlgo,
    current_tcb: t(r.currentTcb),
    reported_tcb: t(r.reportedTcb),
    committed_tcb: t(r.committedTcb),
    launch_tcb: t(r.launchTcb),
    platform_info: {
      smt_enabled: bit(pi, 0),
      tsme_enabled: bit(pi, 1),
      ecc_enabled: bit(pi, 2),
      rapl_disabled: bit(pi, 3),
      ciphertext_hiding_enabled: bit(pi, 4),
      alias_check_complete: bit(pi, 5),
      tio_enabled: bit(pi, 7),
    },
    key_info: { author_key_en: r.authorKeyEn, mask_chip_key: r.maskChipKey, signing_key: r.signingKey },
    report_data: toHex(r.reportData),
    measurement: toHex(r.measurement),
    host_data: toHex(r.hostData),
    id_key_digest: toHex(r.idKeyDigest),
    author_key_digest: toHex(r.authorKeyDigest),
    report_id: toHex(r.reportId),
    report_id_ma: toHex(r.reportIdMa),
    ...chipIdClaim(r.chipId, signer.hwId),
    current_version: { ...r.currentVersion },
    committed_version: { ...r.committedVersion },
    product,
    signer: {
      kind: signer.kind,
      ...(signer.cspId !== undefined ? { csp_id: signer.cspId } : {}),
      ...(signer.hwId !== undefined ? { hw_id: toHex(signer.hwId) } : {}),
    },
    chip_id_masked: isAllZero(r.chipId),
    firmware_provisional:
      !eq(r.currentTcb, r.committedTcb)
      || r.currentVersion.major !== r.committedVersion.major
      || r.currentVersion.minor !== r.committedVersion.minor
      || r.currentVersion.build !== r.committedVersion.build,
    policy_raw: u64(p),
    platform_info_raw: u64(pi),
  };
  if (r.cpuid) c.cpuid = { family_id: r.cpuid.family, model_id: r.cpuid.model, stepping: r.cpuid.stepping };
  if (r.launchMitVector !== undefined) c.launch_mit_vector = u64(r.launchMitVector);
  if (r.currentMitVector !== undefined) c.current_mit_vector = u64(r.currentMitVector);
  return c;
}
