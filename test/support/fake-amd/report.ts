/**
 * Building and signing ATTESTATION_REPORTs (AMD 56860 Table 23; SNP.md §1.1) for tests: every field
 * settable, signature ECDSA P-384 / SHA-384 over bytes 0x000..0x29F with R and S stored as 72-byte
 * little-endian integers. Test-only code.
 */
import { hash, sign, type KeyObject } from 'node:crypto';

export type Product = 'Milan' | 'Genoa' | 'Turin';
export const PRODUCTS: readonly Product[] = ['Milan', 'Genoa', 'Turin'];

/** Tcb is a TCB_VERSION by component; `fmc` is used on Turin only; spl4..spl7 are the reserved bytes. */
export interface Tcb {
  readonly bootloader: number;
  readonly tee: number;
  readonly snp: number;
  readonly microcode: number;
  readonly fmc?: number;
  readonly spl4?: number;
  readonly spl5?: number;
  readonly spl6?: number;
  readonly spl7?: number;
}

/** DEFAULT_TCB per product (the TCBs of the genuine vectors). */
export const DEFAULT_TCB: Readonly<Record<Product, Tcb>> = {
  Milan: { bootloader: 4, tee: 0, snp: 24, microcode: 219 },
  Genoa: { bootloader: 10, tee: 0, snp: 23, microcode: 84 },
  Turin: { fmc: 1, bootloader: 1, tee: 1, snp: 4, microcode: 81 },
};

/** DEFAULT_CPUID per product (family, model, stepping as seen in genuine v3+ reports). */
export const DEFAULT_CPUID: Readonly<Record<Product, { family: number; model: number; stepping: number }>> = {
  Milan: { family: 0x19, model: 0x01, stepping: 0x01 },
  Genoa: { family: 0x19, model: 0x11, stepping: 0x01 },
  Turin: { family: 0x1a, model: 0x02, stepping: 0x01 },
};

const u8 = (v: number | undefined, what: string): number => {
  const n = v ?? 0;
  if (!Number.isInteger(n) || n < 0 || n > 255) throw new RangeError(`${what} must be 0..255, got ${n}`);
  return n;
};

/** encodeTcb lays a Tcb out in the product's byte order (SNP.md §1.4); a Buffer passes through. */
export function encodeTcb(product: Product, tcb: Tcb | Buffer): Buffer {
  if (Buffer.isBuffer(tcb)) {
    if (tcb.length !== 8) throw new RangeError('raw TCB must be 8 bytes');
    return Buffer.from(tcb);
  }
  if (product === 'Turin') {
    return Buffer.from([
      u8(tcb.fmc, 'fmc'), u8(tcb.bootloader, 'bootloader'), u8(tcb.tee, 'tee'), u8(tcb.snp, 'snp'),
      u8(tcb.spl5, 'spl5'), u8(tcb.spl6, 'spl6'), u8(tcb.spl7, 'spl7'), u8(tcb.microcode, 'microcode'),
    ]);
  }
  return Buffer.from([
    u8(tcb.bootloader, 'bootloader'), u8(tcb.tee, 'tee'), u8(tcb.spl4, 'spl4'), u8(tcb.spl5, 'spl5'),
    u8(tcb.spl6, 'spl6'), u8(tcb.spl7, 'spl7'), u8(tcb.snp, 'snp'), u8(tcb.microcode, 'microcode'),
  ]);
}

/** FirmwareVersion is MAJOR.MINOR.BUILD. */
export interface FirmwareVersion {
  readonly major: number;
  readonly minor: number;
  readonly build: number;
}

/** ReportFields: every field of the report; anything omitted gets a sensible default. */
export interface ReportFields {
  /** 2, 3, 4 or 5 (default 3; 5 on Turin). Any u32 is written as given (for negative tests). */
  readonly version?: number;
  readonly guestSvn?: number;
  /** GUEST POLICY (default 0x30000: SMT allowed, reserved bit 17 set). */
  readonly policy?: bigint | number;
  readonly familyId?: Buffer;
  readonly imageId?: Buffer;
  readonly vmpl?: number;
  /** Default 1 (ECDSA P-384 with SHA-384). */
  readonly signatureAlgo?: number;
  /** Defaults to reportedTcb. */
  readonly currentTcb?: Tcb | Buffer;
  /** Default: the product's DEFAULT_TCB (must match the VCEK's SPLs to verify). */
  readonly reportedTcb?: Tcb | Buffer;
  readonly committedTcb?: Tcb | Buffer;
  readonly launchTcb?: Tcb | Buffer;
  /** PLATFORM_INFO (default 0x27 on Milan/Genoa, 0x65 on Turin). */
  readonly platformInfo?: bigint | number;
  readonly authorKeyEn?: boolean;
  readonly maskChipKey?: boolean;
  /** SIGNING_KEY: 'VCEK' (0), 'VLEK' (1) or a raw 3-bit value (e.g. 7). Default VCEK. */
  readonly signingKey?: 'VCEK' | 'VLEK' | number;
  /** Raw signer-info u32; overrides authorKeyEn/maskChipKey/signingKey. */
  readonly signerInfoRaw?: number;
  /** Up to 64 bytes, zero padded. */
  readonly reportData?: Buffer;
  readonly measurement?: Buffer;
  readonly hostData?: Buffer;
  readonly idKeyDigest?: Buffer;
  readonly authorKeyDigest?: Buffer;
  readonly reportId?: Buffer;
  /** Default all 0xFF (no migration agent). */
  readonly reportIdMa?: Buffer;
  /** v3+ only (ignored for v2 unless cpuidForce): default per product. */
  readonly cpuid?: { family: number; model: number; stepping: number };
  /** Write the CPUID bytes even in a v2 report (negative tests). */
  readonly cpuidForce?: boolean;
  /** CHIP_ID: 64 bytes, or 8 (zero-extended, Turin). Default: the kit's chip id. Zeros = masked. */
  readonly chipId?: Buffer;
  readonly currentVersion?: FirmwareVersion;
  readonly committedVersion?: FirmwareVersion;
  /** v5 only. */
  readonly launchMitVector?: bigint | number;
  readonly currentMitVector?: bigint | number;
  /** mutate runs on the finished body BEFORE signing (e.g. to set a reserved byte, signed). */
  readonly mutateBeforeSign?: (body: Buffer) => void;
}

/** REPORT_SIZE is the size of an ATTESTATION_REPORT. */
export const REPORT_SIZE = 0x4a0;
/** SIGNED_SIZE is the signed prefix 0x000..0x29F. */
export const SIGNED_SIZE = 0x2a0;

function put(buf: Buffer, off: number, size: number, v: Buffer | undefined, what: string): void {
  if (v === undefined) return;
  if (v.length > size) throw new RangeError(`${what} is at most ${size} bytes, got ${v.length}`);
  v.copy(buf, off);
}

/**
 * buildReportBody lays out the 1184-byte report with a zero signature (for the given product's TCB
 * layout) and returns it unsigned.
 */
export function buildReportBody(product: Product, defaultChipId: Buffer, f: ReportFields = {}): Buffer {
  const b = Buffer.alloc(REPORT_SIZE);
  const version = f.version ?? (product === 'Turin' ? 5 : 3);
  b.writeUInt32LE(version >>> 0, 0x000);
  b.writeUInt32LE((f.guestSvn ?? 0) >>> 0, 0x004);
  b.writeBigUInt64LE(BigInt(f.policy ?? 0x30000), 0x008);
  put(b, 0x010, 16, f.familyId, 'familyId');
  put(b, 0x020, 16, f.imageId, 'imageId');
  b.writeUInt32LE((f.vmpl ?? 0) >>> 0, 0x030);
  b.writeUInt32LE((f.signatureAlgo ?? 1) >>> 0, 0x034);
  const reported = encodeTcb(product, f.reportedTcb ?? DEFAULT_TCB[product]);
  encodeTcb(product, f.currentTcb ?? reported).copy(b, 0x038);
  b.writeBigUInt64LE(BigInt(f.platformInfo ?? (product === 'Turin' ? 0x65 : 0x27)), 0x040);
  let signer: number;
  if (f.signerInfoRaw !== undefined) signer = f.signerInfoRaw >>> 0;
  else {
    const sk = f.signingKey === undefined || f.signingKey === 'VCEK' ? 0 : f.signingKey === 'VLEK' ? 1 : f.signingKey;
    signer = (f.authorKeyEn ? 1 : 0) | (f.maskChipKey ? 2 : 0) | ((sk & 7) << 2);
  }
  b.writeUInt32LE(signer >>> 0, 0x048);
  put(b, 0x050, 64, f.reportData, 'reportData');
  put(b, 0x090, 48, f.measurement, 'measurement');
  put(b, 0x0c0, 32, f.hostData, 'hostData');
  put(b, 0x0e0, 48, f.idKeyDigest, 'idKeyDigest');
  put(b, 0x110, 48, f.authorKeyDigest, 'authorKeyDigest');
  put(b, 0x140, 32, f.reportId, 'reportId');
  (f.reportIdMa ?? Buffer.alloc(32, 0xff)).copy(b, 0x160);
  reported.copy(b, 0x180);
  if (version >= 3 || f.cpuidForce) {
    const c = f.cpuid ?? DEFAULT_CPUID[product];
    b[0x188] = u8(c.family, 'cpuid.family');
    b[0x189] = u8(c.model, 'cpuid.model');
    b[0x18a] = u8(c.stepping, 'cpuid.stepping');
  }
  put(b, 0x1a0, 64, f.chipId ?? defaultChipId, 'chipId');
  encodeTcb(product, f.committedTcb ?? reported).copy(b, 0x1e0);
  const cur = f.currentVersion ?? { major: 1, minor: 55, build: product === 'Turin' ? 65 : 40 };
  b[0x1e8] = u8(cur.build, 'build');
  b[0x1e9] = u8(cur.minor, 'minor');
  b[0x1ea] = u8(cur.major, 'major');
  const com = f.committedVersion ?? cur;
  b[0x1ec] = u8(com.build, 'build');
  b[0x1ed] = u8(com.minor, 'minor');
  b[0x1ee] = u8(com.major, 'major');
  encodeTcb(product, f.launchTcb ?? reported).copy(b, 0x1f0);
  if (version >= 5) {
    b.writeBigUInt64LE(BigInt(f.launchMitVector ?? 0), 0x1f8);
    b.writeBigUInt64LE(BigInt(f.currentMitVector ?? 0), 0x200);
  }
  f.mutateBeforeSign?.(b);
  return b;
}

/** signReportBody signs bytes 0x000..0x29F in place with an ECDSA P-384 private key. */
export function signReportBody(body: Buffer, key: KeyObject): Buffer {
  const sig = sign('sha384', body.subarray(0, SIGNED_SIZE), { key, dsaEncoding: 'ieee-p1363' });
  if (sig.length !== 96) throw new Error('signing key is not ECDSA P-384');
  const r = Buffer.from(sig.subarray(0, 48)).reverse();
  const s = Buffer.from(sig.subarray(48, 96)).reverse();
  body.fill(0, 0x2a0, REPORT_SIZE);
  r.copy(body, 0x2a0);
  s.copy(body, 0x2e8);
  return body;
}

/** The order n of P-384 (SEC 2, secp384r1). */
const P384_N = BigInt('0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973');

/**
 * reusedNonceSigner (benchmarks only) signs report bodies with ONE per-signer ECDSA nonce k: after a
 * single ordinary signature it costs two 384-bit modular multiplications (s = k^-1 (e + r d) mod n)
 * instead of a scalar multiplication (~1.2 verifies of CPU on the shared bench machine). Reusing k
 * gives the private key away to anyone holding two signatures: this exists so that the benchmark's
 * simulated hardware does not compete with the daemon for the CPU, and must never sign anything a
 * test key does not already make worthless. The reports verify like any other (same r, fresh s).
 */
export function reusedNonceSigner(key: KeyObject): (body: Buffer) => Buffer {
  const d = key.export({ format: 'jwk' }).d;
  if (typeof d !== 'string' || key.asymmetricKeyDetails?.namedCurve !== 'secp384r1') throw new Error('signing key is not ECDSA P-384');
  const dn = beInt(Buffer.from(d, 'base64url'));
  // One ordinary signature over any message gives k: s0 = k^-1 (e0 + r d)  =>  k^-1 = s0 / (e0 + r d).
  const m0 = Buffer.alloc(SIGNED_SIZE, 0x5a);
  const sig = sign('sha384', m0, { key, dsaEncoding: 'ieee-p1363' });
  const r = beInt(sig.subarray(0, 48));
  const s0 = beInt(sig.subarray(48, 96));
  const rd = (r * dn) % P384_N;
  const kInv = (s0 * modInverse((digestInt(m0) + rd) % P384_N, P384_N)) % P384_N;
  const rLe = Buffer.from(sig.subarray(0, 48)).reverse();
  return (body) => {
    const s = (kInv * ((digestInt(body.subarray(0, SIGNED_SIZE)) + rd) % P384_N)) % P384_N;
    if (s === 0n) return signReportBody(body, key); // probability 2^-384; an ordinary signature then
    body.fill(0, 0x2a0, REPORT_SIZE);
    rLe.copy(body, 0x2a0);
    Buffer.from(s.toString(16).padStart(96, '0'), 'hex').reverse().copy(body, 0x2e8);
    return body;
  };
}

function beInt(b: Buffer): bigint {
  return BigInt(`0x${b.toString('hex') || '0'}`);
}

/** digestInt is SHA-384(msg) as an integer: P-384 takes all 384 bits of the digest, no truncation. */
function digestInt(msg: Buffer): bigint {
  return BigInt(`0x${hash('sha384', msg, 'hex')}`);
}

/** modInverse by the extended Euclidean algorithm (m prime, a not 0 mod m). */
function modInverse(a: bigint, m: bigint): bigint {
  let [r0, r1] = [((a % m) + m) % m, m];
  let [x0, x1] = [1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [x0, x1] = [x1, x0 - q * x1];
  }
  if (r0 !== 1n) throw new Error('not invertible');
  return ((x0 % m) + m) % m;
}
