/**
 * The only code that loads the native addon (build/Release/tas_native.node: SEV-SNP and Intel TDX). It checks
 * argument types, copies nothing (the addon copies inputs into its job baton), and turns native
 * failures into NativeError with a stable `code` (documented in ./codes.ts). There is no
 * JavaScript fallback: if the addon cannot load, every call throws SNP_ERR_ADDON_LOAD.
 *
 * Time is always passed in (seconds since the epoch); the addon has no clock and does no I/O.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { NATIVE_CODES, catalogueCodeFor, nativeToTasError, type NativeCode } from './codes.js';

export { NATIVE_CODES, catalogueCodeFor, nativeToTasError, type NativeCode };

/** NativeError is a rejection from the addon; `code` is one of NATIVE_CODES (SNP_ERR_*). */
export class NativeError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'NativeError';
    this.code = code;
  }
}

/** Product is an AMD KDS product line. */
export type Product = 'Milan' | 'Genoa' | 'Turin';
/** VekKind names the endorsement key type. */
export type VekKind = 'VCEK' | 'VLEK';

/** FwVersion is a firmware MAJOR.MINOR.BUILD triple. */
export interface FwVersion { major: number; minor: number; build: number }

/**
 * ParsedReport is the decoded ATTESTATION_REPORT (AMD 56860). TCB fields are the raw 8 bytes:
 * their layout depends on the product (src/snp/tcb.ts), never on the report version.
 */
export interface ParsedReport {
  version: number;
  guestSvn: number;
  policy: bigint;
  familyId: Buffer;
  imageId: Buffer;
  vmpl: number;
  signatureAlgo: number;
  currentTcb: Buffer;
  platformInfo: bigint;
  signerInfo: number;
  authorKeyEn: boolean;
  maskChipKey: boolean;
  /** SIGNING_KEY: 0 VCEK, 1 VLEK, 7 none. */
  signingKey: number;
  reportData: Buffer;
  measurement: Buffer;
  hostData: Buffer;
  idKeyDigest: Buffer;
  authorKeyDigest: Buffer;
  reportId: Buffer;
  reportIdMa: Buffer;
  reportedTcb: Buffer;
  /** CPUID_FAM_ID / CPUID_MOD_ID / CPUID_STEP, report version 3 and later only. */
  cpuid?: { family: number; model: number; stepping: number };
  chipId: Buffer;
  committedTcb: Buffer;
  currentVersion: FwVersion;
  committedVersion: FwVersion;
  launchTcb: Buffer;
  /** Version 5 and later only. */
  launchMitVector?: bigint;
  currentMitVector?: bigint;
}

/** The byte fields of a ParsedReport: the addon's packed form carries them in one Buffer. */
const BYTE_FIELDS = ['familyId', 'imageId', 'currentTcb', 'reportData', 'measurement', 'hostData', 'idKeyDigest', 'authorKeyDigest', 'reportId', 'reportIdMa', 'reportedTcb', 'chipId', 'committedTcb', 'launchTcb'] as const;
type ByteField = (typeof BYTE_FIELDS)[number];
/**
 * PackedReport is the addon's parse as a flat array: the scalar fields at fixed positions and the
 * byte fields in one Buffer at the end (native/addon.cc ReportToJsPacked lists the positions).
 */
type PackedReport = [
  version: number, guestSvn: number, policy: bigint, vmpl: number, signatureAlgo: number, platformInfo: bigint, signerInfo: number,
  authorKeyEn: boolean, maskChipKey: boolean, signingKey: number, hasCpuid: boolean, family: number, model: number, stepping: number,
  currentMajor: number, currentMinor: number, currentBuild: number, committedMajor: number, committedMinor: number, committedBuild: number,
  hasMitVectors: boolean, launchMitVector: bigint, currentMitVector: bigint, bytes: Buffer,
];

/** VekInfo is what a VCEK/VLEK certifies (AMD 57230 extensions) plus its identity. */
export interface VekInfo {
  kind: VekKind;
  structVersion: number;
  productName: string;
  spl: { bl: number; tee: number; snp: number; spl4?: number; spl5?: number; spl6?: number; spl7?: number; ucode: number; fmc?: number };
  /** VCEK only: 64 bytes (Milan/Genoa) or 8 bytes (Turin). */
  hwId?: Buffer;
  /** VLEK only, e.g. `CN=cc-us-east-2.amazonaws.com`. */
  cspId?: string;
  subjectCN: string;
  issuerCN: string;
  notBefore: Date;
  notAfter: Date;
  serialHex: string;
  /** SHA-256 of the certificate DER. */
  sha256: Buffer;
  spkiSha256: Buffer;
}

/** CertInfo identifies any certificate. */
export interface CertInfo {
  subjectCN: string;
  issuerCN: string;
  serialHex: string;
  notBefore: Date;
  notAfter: Date;
  sha256: Buffer;
  spkiSha256: Buffer;
  der: Buffer;
}

/** VerifyInput is one verification job. Certificates may be DER or PEM. */
export interface VerifyInput {
  report: Buffer;
  leaf: Buffer;
  /** ASK (for a VCEK) or ASVK (for a VLEK). */
  intermediate: Buffer;
  /** Pinned ARK certificate(s); nothing else is trusted. */
  anchors: readonly Buffer[];
  product: Product;
  kind: VekKind;
  /** Verification time, whole seconds since the epoch. */
  atSeconds: number;
  /** ARK-signed CRL (DER or PEM); checked for freshness and for the intermediate/leaf serials. */
  crl?: Buffer;
  /** Allowed clock skew for the CRL window (default 300). */
  crlSkewSeconds?: number;
  /** Leave `report` out of the result (the caller parsed it already; saves building ~25 Buffers). */
  omitReport?: boolean;
  /** With omitReport: leave the passed checks out too (`checks` is then empty). */
  omitChecks?: boolean;
}

/** Check is one named step that passed (failures reject instead). */
export interface Check { name: string; ok: boolean; detail: string }

/** VerifyResult is returned when chain, signature (and CRL if given) all verified. */
export interface VerifyResult {
  /** Absent when the input asked for `omitReport`. */
  report: ParsedReport;
  vek: VekInfo;
  anchorSha256: Buffer;
  intermediateSha256: Buffer;
  intermediateSerialHex: string;
  /** True when the chain's signatures/shape came from this addon instance's cache. */
  chainCached: boolean;
  /**
   * True when the report signature was checked with the VEK's precomputed multiples (from a key's
   * second report on, within the process-wide budget; see vekTables). Absent on the lean form.
   */
  vekTable?: boolean;
  crl?: { thisUpdate: Date; nextUpdate: Date };
  checks: Check[];
}

/** ChainResult is the result of verifyChain. */
export interface ChainResult {
  vek: VekInfo;
  anchorSha256: Buffer;
  intermediateSha256: Buffer;
  intermediateSerialHex: string;
  cached: boolean;
}

/** CrlResult is the result of verifyCrl. */
export interface CrlResult { thisUpdate: Date; nextUpdate: Date; revoked: string[] }

// ---- Intel TDX (DCAP quotes v4/v5, PCS collateral) -------------------------------------------

/** QuoteSpan is an explicit byte range of the received quote. */
export interface QuoteSpan { offset: number; length: number }

/** TdReport is the TD report body (TD 1.0: 584 bytes; TD 1.5: 648 bytes). Integers are raw LE bytes. */
export interface TdReport {
  /** TEE_TCB_SVN: [0] TDX module ISVSVN, [1] module major version, [2] late microcode update SVN. */
  teeTcbSvn: Buffer;
  mrSeam: Buffer;
  mrSignerSeam: Buffer;
  seamAttributes: Buffer;
  tdAttributes: Buffer;
  /** TDATTRIBUTES as a u64 (little-endian in the quote): bit 0 DEBUG, 28 SEPT_VE_DISABLE, 29 MIGRATABLE, 30 PKS... */
  tdAttributesValue: bigint;
  xfam: Buffer;
  xfamValue: bigint;
  mrTd: Buffer;
  mrConfigId: Buffer;
  mrOwner: Buffer;
  mrOwnerConfig: Buffer;
  /** RTMR0..RTMR3, 48 bytes each. */
  rtmr: [Buffer, Buffer, Buffer, Buffer];
  reportData: Buffer;
  /** TD 1.5 (v5 body type 3) only. */
  teeTcbSvn2?: Buffer;
  /** TD 1.5 (v5 body type 3) only. */
  mrServiceTd?: Buffer;
}

/** QeReport is the Quoting Enclave's SGX report body (384 bytes, `raw`). */
export interface QeReport {
  raw: Buffer;
  /** Raw platform CPUSVN: never compare with the PCK certificate's CPUSVN. */
  cpuSvn: Buffer;
  miscSelect: number;
  attributes: Buffer;
  mrEnclave: Buffer;
  mrSigner: Buffer;
  isvProdId: number;
  isvSvn: number;
  reportData: Buffer;
}

/** TdxQuote is a parsed quote (v4, or v5 with body type 2 or 3). Every field was read at an explicit offset. */
export interface TdxQuote {
  header: {
    version: number;
    attestationKeyType: number;
    teeType: number;
    /** Bytes 0x08..0x0B: reserved for TDX (not QE/PCE SVNs). */
    reserved: Buffer;
    qeVendorId: Buffer;
    /** First 16 bytes: QE id / platform identifier (covered by the quote signature, not an identity by itself). */
    userData: Buffer;
  };
  version: 4 | 5;
  /** 2 = TD report 1.0 (every v4 quote), 3 = TD report 1.5. */
  bodyType: 2 | 3;
  bodySize: number;
  body: TdReport;
  /** Quote signature r ‖ s (big-endian). */
  signature: Buffer;
  /** Attestation public key X ‖ Y (P-256, no 0x04 prefix). */
  attestationKey: Buffer;
  certificationDataType: 6;
  qeReport: QeReport;
  qeReportSignature: Buffer;
  qeAuthData: Buffer;
  innerCertificationDataType: 5;
  /** The PCK chain exactly as carried (3 PEM certificates, leaf first; maybe one final NUL). */
  pckChain: Buffer;
  /** Zero bytes after the signature data (buffer padding; non-zero ones are refused). */
  trailingBytes: number;
  offsets: {
    header: QuoteSpan;
    /** v5 only. */
    bodyDescriptor?: QuoteSpan;
    body: QuoteSpan;
    /** What the attestation key signed: header (+ v5 descriptor) + body. */
    signedRegion: QuoteSpan;
    signatureData: QuoteSpan;
    qeReport: QuoteSpan;
    qeReportSignature: QuoteSpan;
    qeAuthData: QuoteSpan;
    pckChain: QuoteSpan;
    trailing: QuoteSpan;
  };
}

/** CertSummary identifies a certificate (no DER). */
export interface CertSummary {
  subjectCN: string;
  issuerCN: string;
  /** Lowercase hex without leading zeros. */
  serialHex: string;
  notBefore: Date;
  notAfter: Date;
  sha256: Buffer;
  spkiSha256: Buffer;
}

/** SgxExtension is the PCK certificate's SGX extension (OID 1.2.840.113741.1.13.1). */
export interface SgxExtension {
  ppid: Buffer;
  /** The 16 SGX TCB component SVNs (the values TCB level matching uses). */
  tcbComponents: number[];
  pceSvn: number;
  /** The certificate's CPUSVN (differs from the QE report's). */
  cpuSvn: Buffer;
  /** 2 bytes. */
  pceId: Buffer;
  /** 6 bytes; compare with tcbInfo `fmspc` case-insensitively as hex. */
  fmspc: Buffer;
  /** 0 Standard, 1 Scalable, 2 ScalableWithIntegrity. */
  sgxType: number;
  platformInstanceId?: Buffer;
  configuration?: { dynamicPlatform?: boolean; cachedKeys?: boolean; smtEnabled?: boolean };
}

/**
 * PcsSignedJson is one PCS response piece: `bodyBytes` are the EXACT bytes of the `tcbInfo` /
 * `enclaveIdentity` value as received (from its `{` to the matching `}`; never re-serialised),
 * `signature` the hex-decoded `signature` field (64 bytes r ‖ s), `chain` the URL-decoded issuer
 * chain header (PEM: TCB Signing certificate, then the root).
 */
export interface PcsSignedJson { bodyBytes: Buffer; signature: Buffer; chain: Buffer }

/** TdxVerifyInput is one TDX verification job. */
export interface TdxVerifyInput {
  /** The raw quote (v4 or v5) exactly as received, zero padding included. */
  quote: Buffer;
  /** Pinned Intel SGX Root CA (+ TAS_TDX_EXTRA_TRUST_DIR roots), DER or PEM; 1..8. The quote's root must be byte-equal to one. */
  trustRoots: Buffer[];
  /**
   * Intel SGX Root CA CRL (DER or PEM). `null` (explicit; `undefined` is refused) only when none
   * fresh could be had and TAS_CRL_FAIL_MODE=open: revocation by it is then not checked and the
   * `revocation` check says so.
   */
  rootCrl: Buffer | null;
  /** CRL of the PCK certificate's issuer (`ca=platform` or `ca=processor`, by the leaf's issuer CN); `null` as for rootCrl. */
  pckCrl: Buffer | null;
  tcbInfo: PcsSignedJson;
  qeIdentity: PcsSignedJson;
  /** Verification time, whole seconds since the epoch (the addon has no clock). */
  at: number;
  /** Allowed clock skew for CRL windows (default 0). */
  crlSkewSeconds?: number;
  /** Leave `quote` out of the result (the caller parsed it already; saves ~40 Buffers). */
  omitQuote?: boolean;
}

/**
 * TdxVerifyLeanResult is verifyTdxQuoteLean's result: the same checks passed, but only what the
 * per-request path needs comes back (the caller has the parsed quote from peekTdxQuote).
 */
export interface TdxVerifyLeanResult {
  pckChainCached: boolean;
  qeReportCached: boolean;
  caType: 'platform' | 'processor';
  pckSerialHex: string;
  sgx: SgxExtension;
  /** Absent when that CRL was given as null. */
  rootCrlNextUpdate?: Date;
  pckCrlNextUpdate?: Date;
}

/** TdxPeek is an UNVERIFIED read of a quote: the parse plus the PCK leaf's CA type and SGX extension. */
export interface TdxPeek {
  quote: TdxQuote;
  /** Which PCK CRL to fetch (`ca=platform|processor`), from the leaf's issuer CN. */
  caType: 'platform' | 'processor';
  leaf: CertSummary;
  /** FMSPC (which TCB Info to fetch), PCE-ID, SVNs: unverified until verifyTdxQuote passes. */
  sgx: SgxExtension;
}

/** SignedJsonResult names who signed a PCS body. */
export interface SignedJsonResult { signer: CertSummary; rootSha256: Buffer }

/** CrlWindow is a verified CRL's validity window. */
export interface CrlWindow { thisUpdate: Date; nextUpdate: Date }

/**
 * TdxVerifyResult is returned when every native check passed: quote structure, PCK chain to a
 * pinned root at `at`, both CRLs current with nothing revoked, QE report signature, attestation
 * key binding, quote signature, tcbInfo and QE identity signatures. Not checked here (src/tdx):
 * tcbInfo/QE identity content, freshness, FMSPC/PCE-ID match, QE identity match, TCB levels.
 */
export interface TdxVerifyResult {
  /** Absent when the input asked for `omitQuote`. */
  quote: TdxQuote;
  pck: {
    leaf: CertSummary;
    ca: CertSummary;
    /** Which PCK CA issued the leaf: selects `ca=platform|processor` for the PCK CRL. */
    caType: 'platform' | 'processor';
    rootSha256: Buffer;
    rootSpkiSha256: Buffer;
    sgx: SgxExtension;
  };
  /** True when the PCK chain's signatures/shape came from this addon instance's cache. */
  pckChainCached: boolean;
  /**
   * True when this platform's QE report (same bytes: report, PCK signature, attestation key, QE
   * auth data, under the same PCK chain) was verified earlier: only the quote signature was checked.
   */
  qeReportCached: boolean;
  /** A window is absent when that CRL was given as null (not checked). */
  crls: { root?: CrlWindow; pck?: CrlWindow };
  tcbInfo: SignedJsonResult;
  qeIdentity: SignedJsonResult;
  checks: Check[];
}

/** TdxCollateralInput re-verifies collateral without a quote (e.g. a cache entry on load). */
export interface TdxCollateralInput {
  trustRoots: Buffer[];
  /** `null`: the other pieces are checked without it (TAS_CRL_FAIL_MODE=open with none fresh). */
  rootCrl: Buffer | null;
  /** PCK CRL and its issuer chain (URL-decoded `SGX-PCK-CRL-Issuer-Chain`: PCK CA, root), both or neither. */
  pckCrl?: Buffer;
  pckCrlChain?: Buffer;
  tcbInfo?: PcsSignedJson;
  qeIdentity?: PcsSignedJson;
  at: number;
  crlSkewSeconds?: number;
}

/** TdxCollateralResult lists what verified. */
export interface TdxCollateralResult {
  rootCrl?: CrlWindow;
  pckCrl?: CrlWindow;
  pckCa?: CertSummary;
  tcbInfo?: SignedJsonResult;
  qeIdentity?: SignedJsonResult;
}

interface Binding {
  parseReport(report: Buffer): ParsedReport;
  parseReportPacked(report: Buffer): PackedReport;
  reportBytesLayout(): Array<[string, number, number]>;
  parseVek(cert: Buffer): VekInfo;
  certInfo(cert: Buffer): CertInfo;
  verify(input: VerifyInput): Promise<VerifyResult>;
  verify(input: VerifyInput & { omitReport: true; omitVek: true }): Promise<LeanVerify>;
  verifyChain(input: Omit<VerifyInput, 'report' | 'crl' | 'crlSkewSeconds' | 'omitReport'>): Promise<ChainResult>;
  verifyCrl(crl: Buffer, ark: Buffer, atSeconds: number, skewSeconds: number, serialsHex: string[]): Promise<CrlResult>;
  parseTdxQuote(quote: Buffer): TdxQuote;
  peekTdxQuote(quote: Buffer): TdxPeek;
  verifyTdxQuote(input: TdxVerifyInput & { lean?: boolean }): Promise<TdxVerifyResult & TdxVerifyLeanResult>;
  verifyTdxCollateral(input: TdxCollateralInput): Promise<TdxCollateralResult>;
  clearCache(): void;
  cacheSize(): number;
  tdxCacheSize(): number;
  vekTables(): VekTables;
  opensslVersion(): string;
}

/** VekTables counts the VCEK/VLEK tables of precomputed multiples alive in the process, and their cap. */
export interface VekTables { count: number; limit: number }

/**
 * addonPath finds the .node file: TAS_NATIVE_ADDON (used by the ASan test run), else
 * build/Release/tas_native.node at the package root (from src/native or dist/src/native).
 */
export function addonPath(): string {
  const override = process.env['TAS_NATIVE_ADDON'];
  if (override) return resolve(override);
  const candidates = [join(__dirname, '..', '..', 'build', 'Release', 'tas_native.node'), join(__dirname, '..', '..', '..', 'build', 'Release', 'tas_native.node')];
  return candidates.find((c) => existsSync(c)) ?? candidates[0]!;
}

let binding: Binding | undefined;
let loadError: Error | undefined;

function load(): Binding {
  if (binding) return binding;
  if (loadError) throw loadError;
  const path = addonPath();
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    binding = require(path) as Binding;
    return binding;
  } catch (e) {
    loadError = new NativeError('SNP_ERR_ADDON_LOAD', `cannot load the SEV-SNP addon ${path} (run \`npm run build:native\`): ${(e as Error).message}`);
    throw loadError;
  }
}

/** toNativeError keeps the native code, and the caller's stack when `origin` was captured in its frame. */
function toNativeError(e: unknown, origin?: Error): NativeError {
  if (e instanceof NativeError) return e;
  const code = typeof (e as { code?: unknown })?.code === 'string' ? (e as { code: string }).code : 'SNP_ERR_INTERNAL';
  const err = new NativeError(code, e instanceof Error ? e.message : String(e));
  if (origin !== undefined) err.stack = `NativeError [${code}]: ${err.message}\n${(origin.stack ?? '').split('\n').slice(1).join('\n')}`;
  return err;
}

function rethrow(e: unknown, origin: Error): never {
  throw toNativeError(e, origin);
}

function sync<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    // Captured here, not before the call: the stack is the same (this frame and its callers), and
    // a stack captured on every call cost more than the parse it wrapped (#16).
    return rethrow(e, new Error());
  }
}

/**
 * MAX_INFLIGHT bounds the native jobs handed to the libuv pool at once. The pool (4 threads by
 * default) is shared with fs/dns work, and on small machines 4 busy crypto threads starve the
 * event loop itself; one core is left to the loop. Further jobs wait in a FIFO here.
 * Two cores still get two jobs: with one, the loop and the pool take turns (hand a job over, wait
 * for it, hand over the next) instead of overlapping. Measured with test/bench/cycle.ts on 2 cores
 * (paired, 1 vs 2): 0.92 of the daemon CPU per cycle at 16 agents on the embedded store, 0.89 on
 * Redis, 0.97-1.01 at 4, and a lower get_secret p99 (#16). One core keeps one.
 */
export function defaultNativeConcurrency(cores: number): number {
  return Math.max(Math.min(2, cores), cores - 1);
}
let MAX_INFLIGHT = defaultNativeConcurrency(availableParallelism());
let inflight = 0;
const waiting: Array<() => void> = [];
let waitingHead = 0;

function dispatchNext(): void {
  if (inflight >= MAX_INFLIGHT || waitingHead >= waiting.length) return;
  const run = waiting[waitingHead]!;
  waiting[waitingHead++] = undefined as unknown as () => void;
  if (waitingHead > 1024 && waitingHead * 2 > waiting.length) {
    waiting.splice(0, waitingHead);
    waitingHead = 0;
  }
  run();
}

function later<T>(f: () => Promise<T>): Promise<T> {
  // The caller's stack is captured only when the call is rejected outright; a rejection from the
  // pool keeps its code and message (the caller names the operation). Capturing a stack on every
  // call, for the rare failure, cost about 2% of an attestation cycle (#16).
  return new Promise<T>((resolve, reject) => {
    const run = (): void => {
      inflight++;
      let p: Promise<T>;
      try {
        p = f();
      } catch (e) {
        inflight--;
        dispatchNext();
        reject(toNativeError(e, new Error()));
        return;
      }
      p.then(
        (v) => {
          inflight--;
          dispatchNext(); // hand the pool its next job before resolving the caller
          resolve(v);
        },
        (e: unknown) => {
          inflight--;
          dispatchNext();
          reject(toNativeError(e));
        },
      );
    };
    if (inflight < MAX_INFLIGHT) run();
    else waiting.push(run);
  });
}

/**
 * setNativeConcurrency changes how many native jobs may be handed to the libuv pool at once
 * (default: defaultNativeConcurrency(CPU count)). More than UV_THREADPOOL_SIZE only queues inside
 * libuv, which keeps the pool busy across event-loop round trips (the benchmark uses 2 over 1 thread).
 */
export function setNativeConcurrency(n: number): void {
  if (!Number.isInteger(n) || n < 1 || n > 256) throw new RangeError('native concurrency must be an integer 1..256');
  MAX_INFLIGHT = n;
  while (inflight < MAX_INFLIGHT && waitingHead < waiting.length) dispatchNext();
}

/** nativeQueueDepth is the number of native jobs waiting for a pool slot (metrics, tests). */
export function nativeQueueDepth(): number {
  return waiting.length - waitingHead;
}

/** parseReport decodes and checks a report synchronously (cheap; no crypto). */
export function parseReport(report: Buffer): ParsedReport {
  const p = sync(() => load().parseReportPacked(report));
  // The byte fields are views of one private Buffer the addon filled (one allocation instead of
  // one per field, #16); each view covers its own field only. The scalars come as an array and
  // the objects are built here, with literals (#16: the addon setting named properties cost more
  // than the parse). Same members, same order as the addon's object form (parseReportUnpacked).
  const b = p[23];
  const at = reportLayout();
  const r: ParsedReport = {
    version: p[0], guestSvn: p[1], policy: p[2], familyId: at.familyId(b), imageId: at.imageId(b), vmpl: p[3],
    signatureAlgo: p[4], currentTcb: at.currentTcb(b), platformInfo: p[5], signerInfo: p[6],
    authorKeyEn: p[7], maskChipKey: p[8], signingKey: p[9], reportData: at.reportData(b),
    measurement: at.measurement(b), hostData: at.hostData(b), idKeyDigest: at.idKeyDigest(b), authorKeyDigest: at.authorKeyDigest(b),
    reportId: at.reportId(b), reportIdMa: at.reportIdMa(b), reportedTcb: at.reportedTcb(b),
  } as unknown as ParsedReport; // the members after REPORTED_TCB follow, in the addon's order
  if (p[10]) r.cpuid = { family: p[11], model: p[12], stepping: p[13] };
  r.chipId = at.chipId(b);
  r.committedTcb = at.committedTcb(b);
  r.currentVersion = { major: p[14], minor: p[15], build: p[16] };
  r.committedVersion = { major: p[17], minor: p[18], build: p[19] };
  r.launchTcb = at.launchTcb(b);
  if (p[20]) {
    r.launchMitVector = p[21];
    r.currentMitVector = p[22];
  }
  return r;
}

/** parseReportUnpacked is the addon's form with a Buffer of its own per byte field (tests compare the two). */
export function parseReportUnpacked(report: Buffer): ParsedReport {
  return sync(() => load().parseReport(report));
}

let layout: Record<ByteField, (b: Buffer) => Buffer> | undefined;

/** reportLayout reads the packed form's layout from the addon once: a slicer per byte field. */
function reportLayout(): Record<ByteField, (b: Buffer) => Buffer> {
  if (layout !== undefined) return layout;
  const out: Partial<Record<ByteField, (b: Buffer) => Buffer>> = {};
  for (const [name, off, len] of load().reportBytesLayout()) {
    out[name as ByteField] = (b) => b.subarray(off, off + len);
  }
  const missing = BYTE_FIELDS.filter((n) => !(n in out));
  if (missing.length) throw new NativeError('SNP_ERR_ADDON_LOAD', `the addon's packed report lacks ${missing.join(', ')} (rebuild it: npm run build:native)`);
  layout = out as Record<ByteField, (b: Buffer) => Buffer>;
  return layout;
}

/** parseVek decodes a VCEK/VLEK (DER or PEM) and its AMD extensions. */
export function parseVek(cert: Buffer): VekInfo {
  return sync(() => load().parseVek(cert));
}

/** certInfo identifies any certificate (DER or PEM). */
export function certInfo(cert: Buffer): CertInfo {
  return sync(() => load().certInfo(cert));
}

/**
 * verify checks, off the event loop: report shape, SIGNING_KEY vs `kind`, the chain to the
 * anchors at `atSeconds`, the report signature and (if given) the CRL. Binding report fields to the
 * certificate (REPORTED_TCB, CHIP_ID) is the caller's job (src/snp).
 */
export function verify(input: VerifyInput): Promise<VerifyResult> {
  if (input.omitReport !== true) return later(() => load().verify(input));
  // The per-request form: the addon names the verified leaf by its SHA-256 instead of describing
  // it again; the description (parseVek of the same bytes) is kept here by that digest.
  return later(() => load().verify({ ...input, omitReport: true, omitVek: true })).then((a) => withVek(leanResult(a), input.leaf));
}

/** LeanVerify is the addon's per-request result (native/addon.cc SnpOutcomeToJs lists the positions). */
type LeanVerify = [leafSha256: Buffer, anchorSha256: Buffer, intermediateSha256: Buffer, intermediateSerialHex: string, chainCached: boolean,
  crlThisUpdate: Date | undefined, crlNextUpdate: Date | undefined, checks: Check[]];

function leanResult(a: LeanVerify): VerifyResult & { leafSha256: Buffer } {
  const r = { leafSha256: a[0], anchorSha256: a[1], intermediateSha256: a[2], intermediateSerialHex: a[3], chainCached: a[4] } as VerifyResult & { leafSha256: Buffer };
  if (a[5] !== undefined && a[6] !== undefined) r.crl = { thisUpdate: a[5], nextUpdate: a[6] };
  r.checks = a[7];
  return r;
}

const vekBySha256 = new Map<string, VekInfo>();

function withVek(r: VerifyResult & { leafSha256: Buffer }, leaf: Buffer): VerifyResult {
  const sha = r.leafSha256;
  const key = sha.toString('latin1');
  let vek = vekBySha256.get(key);
  if (vek === undefined) {
    vek = parseVek(leaf);
    if (!vek.sha256.equals(sha)) throw new NativeError('SNP_ERR_INTERNAL', 'the certificate described is not the leaf the addon verified');
    // Shared by every request with this leaf: nobody may change it.
    Object.freeze(vek.spl);
    Object.freeze(vek);
    // Bounded: VCEKs in use are a few per chip and TCB; a flood of distinct leaves only restarts it.
    if (vekBySha256.size >= 1024) vekBySha256.clear();
    vekBySha256.set(key, vek);
  }
  r.vek = vek;
  return r;
}

/** verifyChain verifies ARK -> ASK/ASVK -> VCEK/VLEK only (e.g. re-checking a cached KDS cert). */
export function verifyChain(input: Omit<VerifyInput, 'report' | 'crl' | 'crlSkewSeconds' | 'omitReport'>): Promise<ChainResult> {
  return later(() => load().verifyChain(input));
}

/** verifyCrl checks an ARK-signed CRL and returns which of `serialsHex` it lists. */
export function verifyCrl(crl: Buffer, ark: Buffer, atSeconds: number, skewSeconds: number, serialsHex: string[]): Promise<CrlResult> {
  return later(() => load().verifyCrl(crl, ark, atSeconds, skewSeconds, serialsHex));
}

/**
 * parseTdxQuote decodes and checks a TDX quote synchronously (cheap; no crypto): header, v5 body
 * descriptor (types 2 and 3 only), TD report, signature data, QE report, QE auth data,
 * certification data type 6 wrapping type 5, trailing zero padding. Rejects with TDX_ERR_*.
 */
export function parseTdxQuote(quote: Buffer): TdxQuote {
  return sync(() => load().parseTdxQuote(quote));
}

/**
 * verifyTdxQuote checks, off the event loop, everything cryptographic about a TDX quote and its
 * collateral at `at` (see TdxVerifyResult). Rejects with the first failure's TDX_ERR_* code.
 * Verified chains, CRLs and PCS signatures are cached by their exact bytes; every use re-checks
 * validity windows and revocation at `at`.
 */
export function verifyTdxQuote(input: TdxVerifyInput): Promise<TdxVerifyResult> {
  return later(() => load().verifyTdxQuote(input));
}

/**
 * verifyTdxQuoteLean runs exactly the checks of verifyTdxQuote and returns the lean result (the
 * request path: about a third cheaper than building the full result).
 */
export function verifyTdxQuoteLean(input: Omit<TdxVerifyInput, 'omitQuote'>): Promise<TdxVerifyLeanResult> {
  return later(() => load().verifyTdxQuote({ ...input, lean: true }));
}

/**
 * peekTdxQuote parses a quote and reads its PCK leaf synchronously, verifying NOTHING: it tells the
 * caller which collateral to fetch (FMSPC, PCK CA type). Rejects like parseTdxQuote, plus
 * TDX_ERR_CERT_DATA / TDX_ERR_CERT_PARSE / TDX_ERR_CERT_SHAPE / TDX_ERR_SGX_EXT for the leaf.
 */
export function peekTdxQuote(quote: Buffer): TdxPeek {
  return sync(() => load().peekTdxQuote(quote));
}

/** verifyTdxCollateral verifies PCS collateral alone (root CRL, PCK CRL + issuer chain, tcbInfo, QE identity). */
export function verifyTdxCollateral(input: TdxCollateralInput): Promise<TdxCollateralResult> {
  return later(() => load().verifyTdxCollateral(input));
}

/** clearChainCache drops every cached verified chain, CRL and PCS signature of this thread's addon instance (SIGHUP). */
export function clearChainCache(): void {
  load().clearCache();
}

/** chainCacheSize is the number of cached verified SNP chains of this thread's addon instance. */
export function chainCacheSize(): number {
  return load().cacheSize();
}

/** tdxCacheSize is the number of cached verified TDX PCK chains, CRLs and PCS signatures of this thread's addon instance. */
export function tdxCacheSize(): number {
  return load().tdxCacheSize();
}

/**
 * vekTables is the process-wide number of VEK tables (each ~140 KB; a VEK's reports verify with one
 * from its second report on) and the cap past which keys verify the generic way.
 */
export function vekTables(): VekTables {
  return load().vekTables();
}

/** opensslVersion is the OpenSSL the addon runs on (the one the running node carries). */
export function opensslVersion(): string {
  return load().opensslVersion();
}

/** Internal: the loaded binding and the call wrappers, for the other addon surfaces (src/native/gpu.ts, src/native/wrap.ts). */
export { load as loadBinding, sync as syncCall, later as laterCall };
