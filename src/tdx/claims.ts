/**
 * TDX claims under the names of PROTOCOL.md §3.4 (the original TAS's TDX attribute names, so its
 * policies load unchanged), byte fields as lowercase hex, plus tas's own: `tcb` (statuses; the
 * policy reads its bare values as minimums), `td` (decoded TD attribute flags), `tcb_status`,
 * `advisory_ids`, `fmspc`, `tcb_eval_data_number`, `quote_version`.
 *
 * The quote shape is structural (what src/native's parseTdxQuote returns), so this module stays a
 * pure function of verified data.
 */
import type { TcbStatus, TcbVerdict } from './tcb';

/** QuoteFields is the part of a parsed quote the claims are made of (src/native TdxQuote). */
export interface QuoteFields {
  header: { version: number; attestationKeyType: number; teeType: number; qeVendorId: Uint8Array; userData: Uint8Array };
  version: number;
  bodyType: number;
  body: {
    teeTcbSvn: Uint8Array; mrSeam: Uint8Array; mrSignerSeam: Uint8Array; seamAttributes: Uint8Array;
    tdAttributes: Uint8Array; tdAttributesValue: bigint; xfam: Uint8Array; mrTd: Uint8Array; mrConfigId: Uint8Array;
    mrOwner: Uint8Array; mrOwnerConfig: Uint8Array; rtmr: readonly Uint8Array[]; reportData: Uint8Array;
    teeTcbSvn2?: Uint8Array | undefined; mrServiceTd?: Uint8Array | undefined;
  };
  qeReport: {
    cpuSvn: Uint8Array; miscSelect: number; attributes: Uint8Array; mrEnclave: Uint8Array; mrSigner: Uint8Array;
    isvProdId: number; isvSvn: number; reportData: Uint8Array;
  };
}

export type CollateralUpdate = 'standard' | 'early';

/** TD attribute bits (Linux asm/shared/tdx.h; TDX.md §2.7). Bits 7:0 are the TUD ("TD under debug") group. */
export const TD_ATTRIBUTE_BITS = { DEBUG: 0n, SEPT_VE_DISABLE: 28n, MIGRATABLE: 29n, PKS: 30n, KL: 31n, PERFMON: 63n } as const;
const TUD_MASK = 0xffn;

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
const bit = (v: bigint, n: bigint): boolean => ((v >> n) & 1n) === 1n;

/** isDebugTd: any TUD bit set means the TD's state is open to the host (TDX.md §2.7). */
export function isDebugTd(tdAttributes: bigint): boolean {
  return (tdAttributes & TUD_MASK) !== 0n;
}

/** tdFlags decodes TDATTRIBUTES into the `td` claim group. */
export function tdFlags(v: bigint): Record<string, boolean> {
  return {
    debug: isDebugTd(v),
    sept_ve_disable: bit(v, TD_ATTRIBUTE_BITS.SEPT_VE_DISABLE),
    pks: bit(v, TD_ATTRIBUTE_BITS.PKS),
    kl: bit(v, TD_ATTRIBUTE_BITS.KL),
    perfmon: bit(v, TD_ATTRIBUTE_BITS.PERFMON),
    migratable: bit(v, TD_ATTRIBUTE_BITS.MIGRATABLE),
  };
}

/** quoteClaims are the claims of the quote alone (header, body, QE report, td, quote_version). */
export function quoteClaims(q: QuoteFields): Record<string, unknown> {
  const b = q.body;
  const body: Record<string, unknown> = {
    tee_tcb_svn: hex(b.teeTcbSvn), mr_seam: hex(b.mrSeam), mr_signer_seam: hex(b.mrSignerSeam),
    seam_attributes: hex(b.seamAttributes), td_attributes: hex(b.tdAttributes), xfam: hex(b.xfam), mr_td: hex(b.mrTd),
    mr_config_id: hex(b.mrConfigId), mr_owner: hex(b.mrOwner), mr_owner_config: hex(b.mrOwnerConfig),
    rtmr0: hex(b.rtmr[0]!), rtmr1: hex(b.rtmr[1]!), rtmr2: hex(b.rtmr[2]!), rtmr3: hex(b.rtmr[3]!),
    report_data: hex(b.reportData),
  };
  if (b.teeTcbSvn2) body.tee_tcb_svn2 = hex(b.teeTcbSvn2);
  if (b.mrServiceTd) body.mr_servicetd = hex(b.mrServiceTd);
  const r = q.qeReport;
  return {
    header: {
      version: q.header.version, attestation_key_type: q.header.attestationKeyType, tee_type: q.header.teeType,
      qe_vendor_id: hex(q.header.qeVendorId), user_data: hex(q.header.userData),
    },
    body,
    signature_data: {
      qe_cert_data: {
        qe_report: {
          cpu_svn: hex(r.cpuSvn), misc_select: r.miscSelect, attributes: hex(r.attributes), mr_enclave: hex(r.mrEnclave),
          mr_signer: hex(r.mrSigner), isv_prod_id: r.isvProdId, isv_svn: r.isvSvn, report_data: hex(r.reportData),
        },
      },
    },
    td: tdFlags(b.tdAttributesValue),
    quote_version: q.version,
  };
}

/** tcbClaims are the appraisal's claims. */
export function tcbClaims(v: TcbVerdict, update: CollateralUpdate): Record<string, unknown> {
  return {
    tcb: { update, platform_tcb: v.platform, tdx_module_tcb: v.module, qe_tcb: v.qe },
    tcb_status: v.status,
    advisory_ids: [...v.advisoryIds],
    fmspc: v.fmspc,
    tcb_eval_data_number: v.evalNumber,
  };
}

/** tdxClaims joins both. */
export function tdxClaims(q: QuoteFields, v: TcbVerdict, update: CollateralUpdate): Record<string, unknown> {
  return { ...quoteClaims(q), ...tcbClaims(v, update) };
}

/** statusNames re-exported for schemas. */
export type { TcbStatus };
