/**
 * TCB appraisal of a TDX quote against Intel's collateral, as Intel's QVL does it (TDX.md V7–V10):
 * the content checks of TCB Info (TDX, v3) and QE Identity (TD_QE, v2), their freshness at the
 * verification time (fail closed: never used past `nextUpdate`), the QE identity match, the TDX
 * module identity, TCB level matching (TDX components 0–1 skipped when TEE_TCB_SVN[1] > 0), status
 * convergence with the module and the QE, the TD 1.5 relaunch rule, and the advisory-ID union.
 *
 * Pure functions over parsed JSON and quote fields: no I/O, no clock (the caller passes `at`), no
 * cryptography (the native addon verified the signatures over the exact JSON bytes first).
 */

/** TCB_STATUSES lists every status a verdict can carry. */
export const TCB_STATUSES = [
  'UpToDate', 'SWHardeningNeeded', 'ConfigurationNeeded', 'ConfigurationAndSWHardeningNeeded', 'OutOfDate',
  'OutOfDateConfigurationNeeded', 'TDRelaunchAdvised', 'TDRelaunchAdvisedConfigurationNeeded', 'Revoked', 'NotSupported',
] as const;
export type TcbStatus = (typeof TCB_STATUSES)[number];

/**
 * STATUS_RANK orders statuses for the `tcb` policy object's minimum semantics (PROTOCOL.md §3.4):
 * NotSupported < Revoked < OutOfDateConfigurationNeeded < OutOfDate < TDRelaunchAdvisedConfigurationNeeded
 * < TDRelaunchAdvised < ConfigurationAndSWHardeningNeeded < ConfigurationNeeded < SWHardeningNeeded < UpToDate.
 */
export const STATUS_ORDER: readonly TcbStatus[] = [
  'NotSupported', 'Revoked', 'OutOfDateConfigurationNeeded', 'OutOfDate', 'TDRelaunchAdvisedConfigurationNeeded',
  'TDRelaunchAdvised', 'ConfigurationAndSWHardeningNeeded', 'ConfigurationNeeded', 'SWHardeningNeeded', 'UpToDate',
];

/** Statuses a TCB Info level may carry; module and QE levels only UpToDate, OutOfDate, Revoked. */
const LEVEL_STATUSES: ReadonlySet<string> = new Set([
  'UpToDate', 'SWHardeningNeeded', 'ConfigurationNeeded', 'ConfigurationAndSWHardeningNeeded', 'OutOfDate', 'OutOfDateConfigurationNeeded', 'Revoked',
]);
const SIMPLE_STATUSES: ReadonlySet<string> = new Set(['UpToDate', 'OutOfDate', 'Revoked']);

/** TERMINAL statuses refuse the quote whatever the policy says (TDX.md V11). */
export const TERMINAL: ReadonlySet<TcbStatus> = new Set(['Revoked', 'NotSupported']);

/** TcbError is a definitive appraisal failure with a stable reason (docs/audit.md). */
export class TcbError extends Error {
  constructor(readonly reason: TdxReason, message: string) {
    super(message);
    this.name = 'TcbError';
  }
}

/** TDX_REASONS: the audit reasons of the TDX appraisal (beside the native addon's TDX_ERR_* codes). */
export const TDX_REASONS = {
  TDX_COLLATERAL_FORMAT: 'TCB Info or QE Identity JSON is not of the expected shape (field missing, wrong type, 16 components).',
  TDX_TCB_INFO_MISMATCH: 'TCB Info is not TDX v3, or its FMSPC / PCE-ID differ from the PCK certificate.',
  TDX_QE_IDENTITY_MISMATCH: 'QE Identity is not TD_QE v2, or the QE report differs from it (MRSIGNER, ISVPRODID, MISCSELECT, ATTRIBUTES).',
  TDX_COLLATERAL_EXPIRED: 'TCB Info or QE Identity is outside issueDate..nextUpdate at the verification time (never used past nextUpdate).',
  TDX_COLLATERAL_EVAL_NUMBER: 'tcbEvaluationDataNumber is below TAS_TDX_MIN_TCB_EVAL_NUMBER.',
  TDX_MODULE_MISMATCH: 'No TDX module identity for TEE_TCB_SVN[1], or MRSIGNERSEAM / SEAMATTRIBUTES differ from it (SEAMATTRIBUTES must be zero).',
  TDX_UNRECOGNIZED_STATUS: 'A collateral level carries a status string Intel does not define.',
  TDX_TCB_NOT_SUPPORTED: 'No TCB level matches the platform (or the module / QE): NotSupported is terminal.',
  TDX_TCB_REVOKED: 'The converged TCB status is Revoked (terminal).',
} as const;
export type TdxReason = keyof typeof TDX_REASONS;

const fail = (reason: TdxReason, msg: string): never => {
  throw new TcbError(reason, msg);
};

// --- collateral shapes -----------------------------------------------------------------------------

export interface TcbLevel {
  sgx: number[];
  pceSvn: number;
  tdx: number[];
  tcbDate: string;
  status: TcbStatus;
  advisoryIds: string[];
}

export interface IsvLevel {
  isvsvn: number;
  tcbDate: string;
  status: TcbStatus;
  advisoryIds: string[];
}

export interface ModuleIdentity {
  id: string;
  mrsigner: string;
  attributes: string;
  levels: IsvLevel[];
}

export interface TcbInfo {
  id: string;
  version: number;
  issueDate: Date;
  nextUpdate: Date;
  fmspc: string;
  pceId: string;
  evalNumber: number;
  module: { mrsigner: string; attributes: string } | undefined;
  moduleIdentities: ModuleIdentity[];
  /** Sorted descending (TDX.md V10.1): never trust JSON order. */
  levels: TcbLevel[];
}

export interface QeIdentity {
  id: string;
  version: number;
  issueDate: Date;
  nextUpdate: Date;
  evalNumber: number;
  miscselect: Buffer;
  miscselectMask: Buffer;
  attributes: Buffer;
  attributesMask: Buffer;
  mrsigner: string;
  isvprodid: number;
  /** Sorted by isvsvn descending. */
  levels: IsvLevel[];
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function str(o: Record<string, unknown>, k: string, where: string): string {
  const v = o[k];
  if (typeof v !== 'string' || v.length > 4096) fail('TDX_COLLATERAL_FORMAT', `${where}.${k} must be a string`);
  return v as string;
}
function int(o: Record<string, unknown>, k: string, where: string, max = 0xffff_ffff): number {
  const v = o[k];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > max) fail('TDX_COLLATERAL_FORMAT', `${where}.${k} must be an integer 0..${max}`);
  return v as number;
}
function hex(o: Record<string, unknown>, k: string, where: string, bytes: number): string {
  const v = str(o, k, where);
  if (!/^[0-9a-fA-F]*$/.test(v) || v.length !== bytes * 2) fail('TDX_COLLATERAL_FORMAT', `${where}.${k} must be ${bytes} bytes of hex`);
  return v.toLowerCase();
}
function date(o: Record<string, unknown>, k: string, where: string): Date {
  const v = str(o, k, where);
  const t = Date.parse(v);
  if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(v) || Number.isNaN(t)) fail('TDX_COLLATERAL_FORMAT', `${where}.${k} must be an ISO-8601 UTC time`);
  return new Date(t);
}
function status(v: unknown, allowed: ReadonlySet<string>, where: string): TcbStatus {
  if (typeof v !== 'string') return fail('TDX_COLLATERAL_FORMAT', `${where}.tcbStatus must be a string`);
  if (!allowed.has(v)) fail('TDX_UNRECOGNIZED_STATUS', `${where}.tcbStatus ${JSON.stringify(v.slice(0, 60))} is not a status Intel defines here`);
  return v as TcbStatus;
}
function advisories(v: unknown, where: string): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.length > 1024 || !v.every((x) => typeof x === 'string' && x.length <= 64)) {
    return fail('TDX_COLLATERAL_FORMAT', `${where}.advisoryIDs must be a list of strings`);
  }
  return v as string[];
}
function components(v: unknown, where: string): number[] {
  // Exactly 16 on every side (dcap-qvl GHSA-6q6c-vvf9-fj3w: a zip over a short list skipped comparisons).
  if (!Array.isArray(v) || v.length !== 16) return fail('TDX_COLLATERAL_FORMAT', `${where} must list exactly 16 components`);
  return v.map((c, i) => (isObj(c) ? int(c, 'svn', `${where}[${i}]`, 255) : fail('TDX_COLLATERAL_FORMAT', `${where}[${i}] must be an object`)));
}
function isvLevels(v: unknown, where: string): IsvLevel[] {
  if (!Array.isArray(v) || v.length === 0 || v.length > 1024) return fail('TDX_COLLATERAL_FORMAT', `${where}.tcbLevels must be a non-empty list`);
  const out = v.map((l, i) => {
    const w = `${where}.tcbLevels[${i}]`;
    if (!isObj(l) || !isObj(l.tcb)) return fail('TDX_COLLATERAL_FORMAT', `${w} must be an object with tcb`);
    return { isvsvn: int(l.tcb, 'isvsvn', `${w}.tcb`, 0xffff), tcbDate: str(l, 'tcbDate', w), status: status(l.tcbStatus, SIMPLE_STATUSES, w), advisoryIds: advisories(l.advisoryIDs, w) };
  });
  return out.sort((a, b) => b.isvsvn - a.isvsvn);
}

/** cmpLevel orders TCB levels descending: 16 SGX SVNs, then PCESVN, then 16 TDX SVNs (TDX.md V10.1). */
function cmpLevel(a: TcbLevel, b: TcbLevel): number {
  for (let i = 0; i < 16; i++) if (a.sgx[i] !== b.sgx[i]) return b.sgx[i]! - a.sgx[i]!;
  if (a.pceSvn !== b.pceSvn) return b.pceSvn - a.pceSvn;
  for (let i = 0; i < 16; i++) if (a.tdx[i] !== b.tdx[i]) return b.tdx[i]! - a.tdx[i]!;
  return 0;
}

/** parseTcbInfo reads the `tcbInfo` value (already signature-checked over its exact bytes). */
export function parseTcbInfo(v: unknown): TcbInfo {
  if (!isObj(v)) return fail('TDX_COLLATERAL_FORMAT', 'tcbInfo must be an object');
  const id = str(v, 'id', 'tcbInfo');
  const version = int(v, 'version', 'tcbInfo');
  // SGX TCB Info never judges a TDX quote (TDX.md pitfall 6; Intel: TCB_INFO_MISMATCH).
  if (id !== 'TDX' || version !== 3) fail('TDX_TCB_INFO_MISMATCH', `tcbInfo is ${id} v${version}, need TDX v3`);
  const modules: ModuleIdentity[] = [];
  if (v.tdxModuleIdentities !== undefined) {
    if (!Array.isArray(v.tdxModuleIdentities) || v.tdxModuleIdentities.length > 256) fail('TDX_COLLATERAL_FORMAT', 'tcbInfo.tdxModuleIdentities must be a list');
    (v.tdxModuleIdentities as unknown[]).forEach((m, i) => {
      const w = `tcbInfo.tdxModuleIdentities[${i}]`;
      if (!isObj(m)) return fail('TDX_COLLATERAL_FORMAT', `${w} must be an object`);
      modules.push({ id: str(m, 'id', w), mrsigner: hex(m, 'mrsigner', w, 48), attributes: hex(m, 'attributes', w, 8), levels: isvLevels(m.tcbLevels, w) });
    });
  }
  let module: TcbInfo['module'];
  if (v.tdxModule !== undefined) {
    if (!isObj(v.tdxModule)) fail('TDX_COLLATERAL_FORMAT', 'tcbInfo.tdxModule must be an object');
    const m = v.tdxModule as Record<string, unknown>;
    module = { mrsigner: hex(m, 'mrsigner', 'tcbInfo.tdxModule', 48), attributes: hex(m, 'attributes', 'tcbInfo.tdxModule', 8) };
  }
  if (!Array.isArray(v.tcbLevels) || v.tcbLevels.length === 0 || v.tcbLevels.length > 1024) fail('TDX_COLLATERAL_FORMAT', 'tcbInfo.tcbLevels must be a non-empty list');
  const levels = (v.tcbLevels as unknown[]).map((l, i): TcbLevel => {
    const w = `tcbInfo.tcbLevels[${i}]`;
    if (!isObj(l) || !isObj(l.tcb)) return fail('TDX_COLLATERAL_FORMAT', `${w} must be an object with tcb`);
    return {
      sgx: components(l.tcb.sgxtcbcomponents, `${w}.tcb.sgxtcbcomponents`),
      pceSvn: int(l.tcb, 'pcesvn', `${w}.tcb`, 0xffff),
      tdx: components(l.tcb.tdxtcbcomponents, `${w}.tcb.tdxtcbcomponents`),
      tcbDate: str(l, 'tcbDate', w),
      status: status(l.tcbStatus, LEVEL_STATUSES, w),
      advisoryIds: advisories(l.advisoryIDs, w),
    };
  });
  return {
    id, version,
    issueDate: date(v, 'issueDate', 'tcbInfo'),
    nextUpdate: date(v, 'nextUpdate', 'tcbInfo'),
    fmspc: hex(v, 'fmspc', 'tcbInfo', 6),
    pceId: hex(v, 'pceId', 'tcbInfo', 2),
    evalNumber: int(v, 'tcbEvaluationDataNumber', 'tcbInfo'),
    module, moduleIdentities: modules,
    levels: levels.sort(cmpLevel),
  };
}

/** parseQeIdentity reads the `enclaveIdentity` value (already signature-checked). */
export function parseQeIdentity(v: unknown): QeIdentity {
  if (!isObj(v)) return fail('TDX_COLLATERAL_FORMAT', 'enclaveIdentity must be an object');
  const id = str(v, 'id', 'enclaveIdentity');
  const version = int(v, 'version', 'enclaveIdentity');
  // The SGX QE identity ("QE") never judges a TD quoting enclave (TDX.md pitfall 6).
  if (id !== 'TD_QE' || version !== 2) fail('TDX_QE_IDENTITY_MISMATCH', `enclaveIdentity is ${id} v${version}, need TD_QE v2`);
  const w = 'enclaveIdentity';
  return {
    id, version,
    issueDate: date(v, 'issueDate', w),
    nextUpdate: date(v, 'nextUpdate', w),
    evalNumber: int(v, 'tcbEvaluationDataNumber', w),
    miscselect: Buffer.from(hex(v, 'miscselect', w, 4), 'hex'),
    miscselectMask: Buffer.from(hex(v, 'miscselectMask', w, 4), 'hex'),
    attributes: Buffer.from(hex(v, 'attributes', w, 16), 'hex'),
    attributesMask: Buffer.from(hex(v, 'attributesMask', w, 16), 'hex'),
    mrsigner: hex(v, 'mrsigner', w, 32),
    isvprodid: int(v, 'isvprodid', w, 0xffff),
    levels: isvLevels(v.tcbLevels, w),
  };
}

// --- appraisal -------------------------------------------------------------------------------------

/** QuoteTcbInput is what the appraisal needs of the verified quote and PCK certificate. */
export interface QuoteTcbInput {
  /** TEE_TCB_SVN (16 bytes). */
  teeTcbSvn: Uint8Array;
  /** TEE_TCB_SVN2 (TD 1.5 bodies only). */
  teeTcbSvn2?: Uint8Array | undefined;
  mrSignerSeam: Uint8Array;
  seamAttributes: Uint8Array;
  /** 3 = TD report 1.5 (the relaunch rule applies), 2 = TD 1.0. */
  bodyType: number;
  qe: { miscSelect: number; attributes: Uint8Array; mrSigner: Uint8Array; isvProdId: number; isvSvn: number };
  pck: { tcbComponents: readonly number[]; pceSvn: number; fmspc: Uint8Array; pceId: Uint8Array };
}

export interface AppraiseOptions {
  at: Date;
  minEvalNumber?: number;
}

/** TcbVerdict is the appraisal result (all statuses non-terminal when returned). */
export interface TcbVerdict {
  /** Converged status (platform, module, QE, relaunch). */
  status: TcbStatus;
  /** Status of the matched TDX TCB level of tcbInfo (`tcb.platform_tcb`). */
  platform: TcbStatus;
  /** Status of the matched SGX level. */
  sgx: TcbStatus;
  /** Status from tdxModuleIdentities (UpToDate when TEE_TCB_SVN[1] = 0). */
  module: TcbStatus;
  qe: TcbStatus;
  advisoryIds: string[];
  tcbDate: string;
  evalNumber: number;
  /** Lower of the two collateral eval numbers. */
  qeEvalNumber: number;
  fmspc: string;
  /** Earliest nextUpdate of tcbInfo and QE identity. */
  nextUpdate: Date;
  moduleId: string | undefined;
}

const hexOf = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

/** checkFresh refuses collateral outside issueDate..nextUpdate at `at` (TDX.md pitfall 7). */
export function checkFresh(what: string, issueDate: Date, nextUpdate: Date, at: Date): void {
  if (at.getTime() < issueDate.getTime()) fail('TDX_COLLATERAL_EXPIRED', `${what} issued ${issueDate.toISOString()}, after the verification time ${at.toISOString()}`);
  if (at.getTime() > nextUpdate.getTime()) fail('TDX_COLLATERAL_EXPIRED', `${what} nextUpdate ${nextUpdate.toISOString()} has passed (verification time ${at.toISOString()})`);
}

/** qeStatus matches the QE report against TD_QE identity (TDX.md V8). */
export function qeStatus(id: QeIdentity, qe: QuoteTcbInput['qe']): IsvLevel | undefined {
  if (hexOf(qe.mrSigner) !== id.mrsigner) fail('TDX_QE_IDENTITY_MISMATCH', `QE MRSIGNER ${hexOf(qe.mrSigner)} != TD_QE ${id.mrsigner}`);
  if (qe.isvProdId !== id.isvprodid) fail('TDX_QE_IDENTITY_MISMATCH', `QE ISVPRODID ${qe.isvProdId} != TD_QE ${id.isvprodid}`);
  // Hex strings are byte strings; MISCSELECT is read little-endian from the report.
  const misc = Buffer.alloc(4);
  misc.writeUInt32LE(qe.miscSelect >>> 0);
  for (let i = 0; i < 4; i++) {
    if ((misc[i]! & id.miscselectMask[i]!) !== id.miscselect[i]) fail('TDX_QE_IDENTITY_MISMATCH', `QE MISCSELECT ${misc.toString('hex')} does not match TD_QE under its mask`);
  }
  for (let i = 0; i < 16; i++) {
    if ((qe.attributes[i]! & id.attributesMask[i]!) !== id.attributes[i]) fail('TDX_QE_IDENTITY_MISMATCH', `QE ATTRIBUTES ${hexOf(qe.attributes)} do not match TD_QE under its mask`);
  }
  return id.levels.find((l) => l.isvsvn <= qe.isvSvn);
}

function moduleIdentityFor(info: TcbInfo, major: number): ModuleIdentity | undefined {
  // "TDX_" + two uppercase hex digits, compared case-insensitively (TDX.md pitfall 5).
  const want = `TDX_${major.toString(16).toUpperCase().padStart(2, '0')}`;
  return info.moduleIdentities.find((m) => m.id.toUpperCase() === want);
}

/** convergeOutOfDate applies an OutOfDate module/QE to a platform status (Intel's mapping). */
function convergeOutOfDate(s: TcbStatus): TcbStatus {
  if (s === 'UpToDate' || s === 'SWHardeningNeeded') return 'OutOfDate';
  if (s === 'ConfigurationNeeded' || s === 'ConfigurationAndSWHardeningNeeded') return 'OutOfDateConfigurationNeeded';
  return s;
}

const CONFIG_NEEDED: ReadonlySet<TcbStatus> = new Set(['ConfigurationNeeded', 'ConfigurationAndSWHardeningNeeded', 'OutOfDateConfigurationNeeded']);

/**
 * appraiseTcb runs TDX.md V7–V10 over verified collateral and returns the verdict; throws TcbError
 * for every definitive failure (including terminal statuses NotSupported and Revoked).
 */
export function appraiseTcb(info: TcbInfo, qeId: QeIdentity, q: QuoteTcbInput, o: AppraiseOptions): TcbVerdict {
  // V7: content and freshness of TCB Info.
  if (info.fmspc !== hexOf(q.pck.fmspc)) fail('TDX_TCB_INFO_MISMATCH', `tcbInfo is for FMSPC ${info.fmspc}, the PCK certificate says ${hexOf(q.pck.fmspc)}`);
  if (info.pceId !== hexOf(q.pck.pceId)) fail('TDX_TCB_INFO_MISMATCH', `tcbInfo is for PCE-ID ${info.pceId}, the PCK certificate says ${hexOf(q.pck.pceId)}`);
  checkFresh('tcbInfo', info.issueDate, info.nextUpdate, o.at);
  checkFresh('QE identity', qeId.issueDate, qeId.nextUpdate, o.at);
  const min = o.minEvalNumber ?? 0;
  if (info.evalNumber < min) fail('TDX_COLLATERAL_EVAL_NUMBER', `tcbInfo tcbEvaluationDataNumber ${info.evalNumber} < TAS_TDX_MIN_TCB_EVAL_NUMBER ${min}`);
  if (qeId.evalNumber < min) fail('TDX_COLLATERAL_EVAL_NUMBER', `QE identity tcbEvaluationDataNumber ${qeId.evalNumber} < TAS_TDX_MIN_TCB_EVAL_NUMBER ${min}`);
  if (q.pck.tcbComponents.length !== 16) fail('TDX_COLLATERAL_FORMAT', `PCK certificate lists ${q.pck.tcbComponents.length} SGX components, need 16`);
  if (q.teeTcbSvn.length !== 16) fail('TDX_COLLATERAL_FORMAT', 'TEE_TCB_SVN must be 16 bytes');

  // V8: QE identity.
  const qeLevel = qeStatus(qeId, q.qe);
  const qe: TcbStatus = qeLevel?.status ?? 'NotSupported';

  // V9: TDX module identity.
  const svn = q.teeTcbSvn;
  const major = svn[1]!;
  let moduleId: ModuleIdentity | undefined;
  let expect: { mrsigner: string; attributes: string } | undefined;
  if (major === 0) {
    expect = info.module;
    if (!expect) fail('TDX_MODULE_MISMATCH', 'tcbInfo has no tdxModule for a TDX 1.0 module (TEE_TCB_SVN[1] = 0)');
  } else {
    moduleId = moduleIdentityFor(info, major);
    if (!moduleId) fail('TDX_MODULE_MISMATCH', `tcbInfo has no module identity TDX_${major.toString(16).toUpperCase().padStart(2, '0')}`);
    expect = moduleId;
  }
  if (hexOf(q.mrSignerSeam) !== expect!.mrsigner) fail('TDX_MODULE_MISMATCH', `MRSIGNERSEAM ${hexOf(q.mrSignerSeam)} != ${expect!.mrsigner}`);
  // Intel compares SEAMATTRIBUTES with `attributes` and requires zero (the mask is ignored).
  if (hexOf(q.seamAttributes) !== expect!.attributes || /[^0]/.test(hexOf(q.seamAttributes))) {
    fail('TDX_MODULE_MISMATCH', `SEAMATTRIBUTES ${hexOf(q.seamAttributes)} must be zero and equal ${expect!.attributes}`);
  }

  // V10: TCB level matching.
  const pck = q.pck;
  const sgxIdx = info.levels.findIndex((l) => l.sgx.every((s, i) => pck.tcbComponents[i]! >= s) && pck.pceSvn >= l.pceSvn);
  const first = major > 0 ? 2 : 0;
  const tdxIdx = sgxIdx < 0 ? -1 : info.levels.findIndex((l, idx) => idx >= sgxIdx
    && l.sgx.every((s, i) => pck.tcbComponents[i]! >= s) && pck.pceSvn >= l.pceSvn
    && l.tdx.every((s, i) => i < first || svn[i]! >= s));
  if (sgxIdx < 0) fail('TDX_TCB_NOT_SUPPORTED', `no TCB level matches the PCK SGX components ${pck.tcbComponents.join(',')} / PCESVN ${pck.pceSvn}`);
  if (tdxIdx < 0) fail('TDX_TCB_NOT_SUPPORTED', `no TCB level matches TEE_TCB_SVN ${hexOf(svn)}`);
  const sgxLevel = info.levels[sgxIdx]!;
  const tdxLevel = info.levels[tdxIdx]!;

  let module: TcbStatus = 'UpToDate';
  let moduleLevel: IsvLevel | undefined;
  if (moduleId) {
    moduleLevel = moduleId.levels.find((l) => l.isvsvn <= svn[0]!);
    if (!moduleLevel) fail('TDX_TCB_NOT_SUPPORTED', `no ${moduleId.id} level for TDX module ISVSVN ${svn[0]}`);
    module = moduleLevel!.status;
  }
  let status: TcbStatus = tdxLevel.status;
  if (module === 'OutOfDate') status = convergeOutOfDate(status);
  else if (module === 'Revoked') status = 'Revoked';

  // TD 1.5 relaunch: the running module is out of date but the TD was launched on a current one.
  if (q.bodyType === 3 && q.teeTcbSvn2 && q.teeTcbSvn2.length === 16 && qe !== 'OutOfDate' && qe !== 'Revoked' && qe !== 'NotSupported'
    && ['UpToDate', 'SWHardeningNeeded', 'ConfigurationNeeded', 'ConfigurationAndSWHardeningNeeded'].includes(sgxLevel.status)
    && (status === 'OutOfDate' || status === 'OutOfDateConfigurationNeeded') && module === 'OutOfDate') {
    const s2 = q.teeTcbSvn2;
    const latest = info.levels[0]!;
    let ok: boolean;
    if (s2[1] === 0) {
      ok = s2[0]! >= latest.tdx[0]! && s2[2]! >= latest.tdx[2]!;
    } else {
      const m2 = moduleIdentityFor(info, s2[1]!);
      if (!m2) fail('TDX_MODULE_MISMATCH', `tcbInfo has no module identity for TEE_TCB_SVN2[1] = ${s2[1]}`);
      ok = s2[0]! >= m2!.levels[0]!.isvsvn && s2[2]! >= latest.tdx[2]!;
    }
    if (ok) status = CONFIG_NEEDED.has(sgxLevel.status) || CONFIG_NEEDED.has(status) ? 'TDRelaunchAdvisedConfigurationNeeded' : 'TDRelaunchAdvised';
  }

  // Converge with the QE.
  if (qe === 'OutOfDate') status = convergeOutOfDate(status);
  else if (qe === 'Revoked') status = 'Revoked';
  else if (qe === 'NotSupported') status = 'NotSupported';

  if (status === 'NotSupported') fail('TDX_TCB_NOT_SUPPORTED', qe === 'NotSupported' ? `no TD_QE level for QE ISVSVN ${q.qe.isvSvn}` : 'TCB status NotSupported');
  if (status === 'Revoked') fail('TDX_TCB_REVOKED', `TCB status Revoked (platform ${tdxLevel.status}, module ${module}, QE ${qe})`);

  const advisoryIds = [...new Set([...tdxLevel.advisoryIds, ...(moduleLevel?.advisoryIds ?? []), ...(qeLevel?.advisoryIds ?? [])])].sort();
  return {
    status, platform: tdxLevel.status, sgx: sgxLevel.status, module, qe, advisoryIds, tcbDate: tdxLevel.tcbDate,
    evalNumber: info.evalNumber, qeEvalNumber: qeId.evalNumber, fmspc: info.fmspc,
    nextUpdate: new Date(Math.min(info.nextUpdate.getTime(), qeId.nextUpdate.getTime())),
    moduleId: moduleId?.id,
  };
}
