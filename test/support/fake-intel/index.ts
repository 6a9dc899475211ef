/**
 * A fake Intel DCAP signer for tests, shaped like the genuine PKI (test/fixtures/intel-roots and the
 * PCK chains inside test/fixtures/tdx-vectors): an "Intel SGX Root CA", a PCK Platform (or
 * Processor) CA, a PCK leaf with the SGX extension (FMSPC, 16 TCB component SVNs, PCESVN, CPUSVN,
 * PCE-ID, SGX type, PPID, platform instance id, configuration), an "Intel SGX TCB Signing"
 * certificate, signed TCB Info (TDX, v3, tdxModule + tdxModuleIdentities + levels) and QE Identity
 * (TD_QE, v2) in PCS response shape, both CRLs (ECDSA, AKI + CRL number), a QE report signed by the
 * PCK key whose REPORTDATA commits to the attestation key, and quotes v4 and v5 (TD 1.0 / TD 1.5
 * body) for any REPORT_DATA, MRTD, RTMRs, TD attributes, TEE_TCB_SVN, ...
 *
 * Every key is fresh per kit (P-256, node:crypto). The fake root is trusted only where a test puts
 * it: the native `trustRoots` list or a TAS_TDX_EXTRA_TRUST_DIR (writeTrustDir). Test-only code.
 */
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bitString, bool, explicit, integer, octets, oid, printable, seq, set, time, tlv, utf8 } from '../fake-amd/der';
import { encodeExtension, keyId, toPem, type Extension } from '../fake-amd/x509';

export const INTEL_OID = {
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  sgx: '1.2.840.113741.1.13.1',
  cn: '2.5.4.3',
  o: '2.5.4.10',
  l: '2.5.4.7',
  st: '2.5.4.8',
  c: '2.5.4.6',
  keyUsage: '2.5.29.15',
  basicConstraints: '2.5.29.19',
  ski: '2.5.29.14',
  aki: '2.5.29.35',
  crlDp: '2.5.29.31',
  crlNumber: '2.5.29.20',
} as const;

export const ROOT_CN = 'Intel SGX Root CA';
export const PLATFORM_CA_CN = 'Intel SGX PCK Platform CA';
export const PROCESSOR_CA_CN = 'Intel SGX PCK Processor CA';
export const PCK_CN = 'Intel SGX PCK Certificate';
export const TCB_SIGNING_CN = 'Intel SGX TCB Signing';
/** Intel's TD Quoting Enclave MRSIGNER (observed 2023-2026). */
export const TD_QE_MRSIGNER = 'DC9E2A7C6F948F17474E34A7FC43ED030F7C1563F1BABDDF6340C82E0E54A8C5';
const INTEL_QE_VENDOR_ID = Buffer.from('939a7233f79c4ca9940a0db3957f0607', 'hex');
const DAY = 86_400_000;

/** intelName is `CN=<cn>, O=Intel Corporation, L=Santa Clara, ST=CA, C=US` (Intel's order). */
export function intelName(cn: string): Buffer {
  const rdn = (o: string, v: Buffer): Buffer => set(seq(oid(o), v));
  return seq(rdn(INTEL_OID.cn, utf8(cn)), rdn(INTEL_OID.o, utf8('Intel Corporation')), rdn(INTEL_OID.l, utf8('Santa Clara')), rdn(INTEL_OID.st, utf8('CA')), rdn(INTEL_OID.c, printable('US')));
}

const ecdsaAlg = (): Buffer => seq(oid(INTEL_OID.ecdsaWithSha256));
/** derSign is ecdsa-with-SHA256 in X.509's DER form; rawSign the r ‖ s form of quotes and PCS JSON. */
const derSign = (key: KeyObject, data: Buffer): Buffer => sign('sha256', data, key);
export const rawSign = (key: KeyObject, data: Buffer): Buffer => sign('sha256', data, { key, dsaEncoding: 'ieee-p1363' });

function serial(): Buffer {
  const s = randomBytes(20);
  s[0] = (s[0]! & 0x7f) | 0x01; // positive, 20 bytes like Intel's
  return s;
}

const crlDp = (url: string): Extension => ({ oid: INTEL_OID.crlDp, value: seq(seq(explicit(0, explicit(0, tlv(0x86, Buffer.from(url, 'ascii')))))) });
const ski = (spki: Buffer): Extension => ({ oid: INTEL_OID.ski, value: octets(keyId(spki)) });
const aki = (issuerSpki: Buffer): Extension => ({ oid: INTEL_OID.aki, value: seq(tlv(0x80, keyId(issuerSpki))) });
const keyUsage = (kind: 'ca' | 'signing'): Extension => ({
  oid: INTEL_OID.keyUsage,
  critical: true,
  // keyCertSign + cRLSign (CAs) or digitalSignature + nonRepudiation (PCK, TCB Signing), as Intel's.
  value: kind === 'ca' ? Buffer.from('03020106', 'hex') : Buffer.from('030206c0', 'hex'),
});
const basicConstraints = (ca: boolean, pathLen?: number): Extension => ({
  oid: INTEL_OID.basicConstraints,
  critical: true,
  value: ca ? seq(bool(true), ...(pathLen === undefined ? [] : [integer(pathLen)])) : seq(),
});

interface Issued {
  der: Buffer;
  serialHex: string;
  key: KeyObject;
  spki: Buffer;
}

function issue(o: { subjectCN: string; issuerCN: string; spki: Buffer; signer: KeyObject; notBefore: Date; notAfter: Date; extensions: Extension[] }): { der: Buffer; serialHex: string } {
  const sn = serial();
  const alg = ecdsaAlg();
  const tbs = seq(explicit(0, integer(2)), integer(sn), alg, intelName(o.issuerCN), seq(time(o.notBefore), time(o.notAfter)), intelName(o.subjectCN), o.spki, explicit(3, seq(...o.extensions.map(encodeExtension))));
  // serialHex as the native side renders serials (OpenSSL BN_bn2hex: whole bytes, lowercase).
  return { der: seq(tbs, alg, bitString(derSign(o.signer, tbs))), serialHex: sn.toString('hex') };
}

function keyPair(): { key: KeyObject; pub: KeyObject; spki: Buffer } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { key: privateKey, pub: publicKey, spki: publicKey.export({ type: 'spki', format: 'der' }) };
}

/** SgxExtensionSpec is what the PCK certificate certifies. */
export interface SgxExtensionSpec {
  fmspc: string;
  pceId: string;
  pceSvn: number;
  tcbComponents: number[];
  cpuSvn: Buffer;
  sgxType: number;
  ppid: Buffer;
  platformInstanceId?: Buffer;
}

/** sgxExtension encodes the SGX extension value (a SEQUENCE of {OID, value} pairs, TDX.md §2.6). */
export function sgxExtension(s: SgxExtensionSpec, edit?: (pairs: Buffer[]) => Buffer[]): Buffer {
  const pair = (suffix: string, v: Buffer): Buffer => seq(oid(`${INTEL_OID.sgx}.${suffix}`), v);
  const tcb = [...s.tcbComponents.map((svn, i) => pair(`2.${i + 1}`, integer(svn))), pair('2.17', integer(s.pceSvn)), pair('2.18', octets(s.cpuSvn))];
  let pairs = [
    pair('1', octets(s.ppid)),
    pair('2', seq(...tcb)),
    pair('3', octets(Buffer.from(s.pceId, 'hex'))),
    pair('4', octets(Buffer.from(s.fmspc, 'hex'))),
    pair('5', tlv(0x0a, Buffer.from([s.sgxType]))),
  ];
  if (s.platformInstanceId) {
    pairs.push(pair('6', octets(s.platformInstanceId)));
    pairs.push(pair('7', seq(pair('7.1', bool(false)), pair('7.2', bool(true)), pair('7.3', bool(true)))));
  }
  if (edit) pairs = edit(pairs);
  return seq(...pairs);
}

export interface FakeIntelOptions {
  /** The kit's "now": certificates, CRLs and collateral are valid around it (default: the real now). */
  now?: Date;
  /** Leaf issuer: the PCK Platform CA (default) or the PCK Processor CA. */
  caType?: 'platform' | 'processor';
  /** SGX extension of the PCK leaf (defaults: FMSPC 90C06F000000, PCESVN 13, components 4 4 2 2 4 1 0 5 0...). */
  sgx?: Partial<SgxExtensionSpec>;
  /** Replace the encoded SGX extension pairs (malformed-extension tests). */
  editSgxExtension?: (pairs: Buffer[]) => Buffer[];
  /** Leave the SGX extension off the PCK leaf. */
  omitSgxExtension?: boolean;
}

export interface TdQuoteOptions {
  version?: 4 | 5;
  /** v5 only: 2 = TD report 1.0, 3 = TD report 1.5 (default for v5). Other values are written as given (negative tests). */
  bodyType?: number;
  reportData?: Buffer;
  mrTd?: Buffer;
  rtmr?: Buffer[];
  /** TDATTRIBUTES (u64; default SEPT_VE_DISABLE = 1 << 28). */
  tdAttributes?: bigint;
  xfam?: bigint;
  /** 16 bytes: [0] module ISVSVN, [1] module major version, [2] late microcode SVN (default 05 01 02). */
  teeTcbSvn?: Buffer;
  teeTcbSvn2?: Buffer;
  mrSeam?: Buffer;
  mrSignerSeam?: Buffer;
  seamAttributes?: Buffer;
  mrConfigId?: Buffer;
  mrOwner?: Buffer;
  mrOwnerConfig?: Buffer;
  mrServiceTd?: Buffer;
  userData?: Buffer;
  qeIsvSvn?: number;
  qeMrSigner?: Buffer;
  qeAuthData?: Buffer;
  /** Zero bytes appended after the signature data (as real quotes in fixed-size buffers carry). */
  padding?: number;
  /** Sign with another attestation key than the one the QE report commits to. */
  signWith?: KeyObject;
}

export interface TcbInfoOptions {
  issueDate?: Date;
  nextUpdate?: Date;
  fmspc?: string;
  pceId?: string;
  id?: string;
  version?: number;
  tcbEvaluationDataNumber?: number;
  tdxModule?: object;
  tdxModuleIdentities?: object[];
  tcbLevels?: object[];
}

export interface QeIdentityOptions {
  issueDate?: Date;
  nextUpdate?: Date;
  id?: string;
  version?: number;
  tcbEvaluationDataNumber?: number;
  tcbLevels?: object[];
  mrsigner?: string;
  isvprodid?: number;
}

export interface CrlOptions {
  thisUpdate?: Date;
  nextUpdate?: Date;
  /** Serials (hex) listed as revoked. */
  revoked?: string[];
}

const iso = (d: Date): string => d.toISOString().replace(/\.\d{3}Z$/, 'Z');
const comps = (svns: number[]): Array<{ svn: number }> => svns.map((svn) => ({ svn }));

/** FakeIntel is one fake Intel DCAP PKI with one platform (PCK leaf) and one attestation key. */
export class FakeIntel {
  readonly now: Date;
  readonly root: Issued;
  readonly pckCa: Issued;
  readonly pck: Issued;
  readonly tcbSigning: Issued;
  readonly attestationKey: KeyObject;
  /** X ‖ Y of the attestation public key (64 bytes). */
  readonly attestationPublic: Buffer;
  readonly sgx: SgxExtensionSpec;
  readonly caType: 'platform' | 'processor';
  private readonly qeMemo = new Map<string, { report: Buffer; signature: Buffer }>();

  private constructor(o: FakeIntelOptions) {
    this.now = o.now ?? new Date();
    this.caType = o.caType ?? 'platform';
    const t = this.now.getTime();
    const r = keyPair();
    const rootCert = issue({
      subjectCN: ROOT_CN, issuerCN: ROOT_CN, spki: r.spki, signer: r.key, notBefore: new Date(t - 400 * DAY), notAfter: new Date(t + 20 * 365 * DAY),
      extensions: [aki(r.spki), crlDp('https://certificates.trustedservices.intel.com/IntelSGXRootCA.der'), ski(r.spki), keyUsage('ca'), basicConstraints(true, 1)],
    });
    this.root = { ...rootCert, key: r.key, spki: r.spki };
    const c = keyPair();
    const caCn = this.caType === 'platform' ? PLATFORM_CA_CN : PROCESSOR_CA_CN;
    const caCert = issue({
      subjectCN: caCn, issuerCN: ROOT_CN, spki: c.spki, signer: r.key, notBefore: new Date(t - 300 * DAY), notAfter: new Date(t + 10 * 365 * DAY),
      extensions: [aki(r.spki), crlDp('https://certificates.trustedservices.intel.com/IntelSGXRootCA.der'), ski(c.spki), keyUsage('ca'), basicConstraints(true, 0)],
    });
    this.pckCa = { ...caCert, key: c.key, spki: c.spki };
    this.sgx = {
      fmspc: '90C06F000000', pceId: '0000', pceSvn: 13, tcbComponents: [4, 4, 2, 2, 4, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0],
      cpuSvn: Buffer.from('04040202040100050000000000000000', 'hex'), sgxType: 1, ppid: randomBytes(16), platformInstanceId: randomBytes(16),
      ...o.sgx,
    };
    const l = keyPair();
    const leafExt: Extension[] = [
      aki(c.spki),
      crlDp(`https://api.trustedservices.intel.com/sgx/certification/v4/pckcrl?ca=${this.caType}&encoding=der`),
      ski(l.spki), keyUsage('signing'), basicConstraints(false),
    ];
    if (!o.omitSgxExtension) leafExt.push({ oid: INTEL_OID.sgx, value: sgxExtension(this.sgx, o.editSgxExtension) });
    const leafCert = issue({ subjectCN: PCK_CN, issuerCN: caCn, spki: l.spki, signer: c.key, notBefore: new Date(t - 200 * DAY), notAfter: new Date(t + 7 * 365 * DAY), extensions: leafExt });
    this.pck = { ...leafCert, key: l.key, spki: l.spki };
    const s = keyPair();
    const signingCert = issue({
      subjectCN: TCB_SIGNING_CN, issuerCN: ROOT_CN, spki: s.spki, signer: r.key, notBefore: new Date(t - 100 * DAY), notAfter: new Date(t + 7 * 365 * DAY),
      extensions: [aki(r.spki), crlDp('https://certificates.trustedservices.intel.com/IntelSGXRootCA.der'), ski(s.spki), keyUsage('signing'), basicConstraints(false)],
    });
    this.tcbSigning = { ...signingCert, key: s.key, spki: s.spki };
    const a = keyPair();
    this.attestationKey = a.key;
    const jwk = a.pub.export({ format: 'jwk' });
    this.attestationPublic = Buffer.concat([Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]);
  }

  static create(o: FakeIntelOptions = {}): FakeIntel {
    return new FakeIntel(o);
  }

  /** at is the kit's "now" in whole seconds (the native verifier's `at`). */
  get at(): number {
    return Math.floor(this.now.getTime() / 1000);
  }

  get rootPem(): string {
    return toPem(this.root.der);
  }

  /** pckChainPem is what a quote carries: PCK leaf, PCK CA, root (leaf first). */
  get pckChainPem(): string {
    return toPem(this.pck.der) + toPem(this.pckCa.der) + toPem(this.root.der);
  }

  /** tcbSigningChainPem is the URL-decoded TCB-Info-Issuer-Chain / SGX-Enclave-Identity-Issuer-Chain header. */
  get tcbSigningChainPem(): string {
    return toPem(this.tcbSigning.der) + toPem(this.root.der);
  }

  /** pckCrlChainPem is the URL-decoded SGX-PCK-CRL-Issuer-Chain header. */
  get pckCrlChainPem(): string {
    return toPem(this.pckCa.der) + toPem(this.root.der);
  }

  private crl(issuerCN: string, issuer: Issued, o: CrlOptions, number: number): Buffer {
    const t = this.now.getTime();
    const thisUpdate = o.thisUpdate ?? new Date(t - DAY);
    const nextUpdate = o.nextUpdate ?? new Date(t + 30 * DAY);
    const alg = ecdsaAlg();
    const revoked = o.revoked?.length ? [seq(...o.revoked.map((sn) => seq(integer(Buffer.from(sn.length % 2 ? `0${sn}` : sn, 'hex')), time(thisUpdate))))] : [];
    const exts = explicit(0, seq(encodeExtension({ oid: INTEL_OID.crlNumber, value: integer(number) }), encodeExtension(aki(issuer.spki))));
    const tbs = seq(integer(1), alg, intelName(issuerCN), time(thisUpdate), time(nextUpdate), ...revoked, exts);
    return seq(tbs, alg, bitString(derSign(issuer.key, tbs)));
  }

  /** rootCrl is the Intel SGX Root CA CRL (DER). */
  rootCrl(o: CrlOptions = {}): Buffer {
    return this.crl(ROOT_CN, this.root, o, 1);
  }

  /** pckCrl is the CRL of the PCK leaf's issuer (DER). */
  pckCrl(o: CrlOptions = {}): Buffer {
    return this.crl(this.caType === 'platform' ? PLATFORM_CA_CN : PROCESSOR_CA_CN, this.pckCa, o, 42);
  }

  /** signBody signs exact bytes with the TCB Signing key and returns the PCS response body. */
  signBody(member: 'tcbInfo' | 'enclaveIdentity', body: string): Buffer {
    const sig = rawSign(this.tcbSigning.key, Buffer.from(body, 'utf8')).toString('hex');
    return Buffer.from(`{"${member}":${body},"signature":"${sig}"}`, 'utf8');
  }

  /** tcbInfoBody is the TDX TCB Info value (v3) as an object: levels fit this kit's platform by default. */
  tcbInfoValue(o: TcbInfoOptions = {}): object {
    const t = this.now.getTime();
    const sgx = this.sgx.tcbComponents;
    const tdxUp = [5, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    const module = { mrsigner: '0'.repeat(96), attributes: '0000000000000000', attributesMask: 'FFFFFFFFFFFFFFFF' };
    return {
      id: o.id ?? 'TDX',
      version: o.version ?? 3,
      issueDate: iso(o.issueDate ?? new Date(t - DAY)),
      nextUpdate: iso(o.nextUpdate ?? new Date(t + 29 * DAY)),
      fmspc: (o.fmspc ?? this.sgx.fmspc).toLowerCase(),
      pceId: o.pceId ?? this.sgx.pceId,
      tcbType: 0,
      tcbEvaluationDataNumber: o.tcbEvaluationDataNumber ?? 18,
      tdxModule: o.tdxModule ?? module,
      tdxModuleIdentities: o.tdxModuleIdentities ?? [
        { id: 'TDX_01', ...module, tcbLevels: [
          { tcb: { isvsvn: 5 }, tcbDate: '2024-11-13T00:00:00Z', tcbStatus: 'UpToDate' },
          { tcb: { isvsvn: 2 }, tcbDate: '2023-08-09T00:00:00Z', tcbStatus: 'OutOfDate', advisoryIDs: ['INTEL-SA-01036'] },
        ] },
        { id: 'TDX_03', ...module, tcbLevels: [{ tcb: { isvsvn: 3 }, tcbDate: '2024-11-13T00:00:00Z', tcbStatus: 'UpToDate' }] },
      ],
      tcbLevels: o.tcbLevels ?? [
        { tcb: { sgxtcbcomponents: comps(sgx), pcesvn: this.sgx.pceSvn, tdxtcbcomponents: comps(tdxUp) }, tcbDate: '2024-11-13T00:00:00Z', tcbStatus: 'UpToDate' },
        { tcb: { sgxtcbcomponents: comps(sgx.map(() => 0)), pcesvn: 5, tdxtcbcomponents: comps(tdxUp.map(() => 0)) }, tcbDate: '2018-01-04T00:00:00Z', tcbStatus: 'OutOfDate', advisoryIDs: ['INTEL-SA-00106'] },
      ],
    };
  }

  /** tcbInfo is a signed PCS TDX TCB Info response body. */
  tcbInfo(o: TcbInfoOptions = {}): Buffer {
    return this.signBody('tcbInfo', JSON.stringify(this.tcbInfoValue(o)));
  }

  /** qeIdentity is a signed PCS TD_QE identity response body. */
  qeIdentity(o: QeIdentityOptions = {}): Buffer {
    const t = this.now.getTime();
    const value = {
      id: o.id ?? 'TD_QE',
      version: o.version ?? 2,
      issueDate: iso(o.issueDate ?? new Date(t - DAY)),
      nextUpdate: iso(o.nextUpdate ?? new Date(t + 29 * DAY)),
      tcbEvaluationDataNumber: o.tcbEvaluationDataNumber ?? 18,
      miscselect: '00000000',
      miscselectMask: 'FFFFFFFF',
      attributes: '11000000000000000000000000000000',
      attributesMask: 'FBFFFFFFFFFFFFFF0000000000000000',
      mrsigner: o.mrsigner ?? TD_QE_MRSIGNER,
      isvprodid: o.isvprodid ?? 2,
      tcbLevels: o.tcbLevels ?? [{ tcb: { isvsvn: 4 }, tcbDate: '2024-11-13T00:00:00Z', tcbStatus: 'UpToDate' }],
    };
    return this.signBody('enclaveIdentity', JSON.stringify(value));
  }

  /** qeReport builds the 384-byte QE report whose REPORTDATA commits to `attKey` and `authData`. */
  qeReport(o: { isvSvn?: number; mrSigner?: Buffer; authData: Buffer; attKey?: Buffer }): Buffer {
    const r = Buffer.alloc(384);
    Buffer.from('0404020204ff00060000000000000000', 'hex').copy(r, 0x00); // raw CPUSVN (not the certificate's)
    r.writeUInt32LE(0, 0x10);
    Buffer.from('11000000000000000700000000000000', 'hex').copy(r, 0x30);
    createHash('sha256').update('fake TD QE').digest().copy(r, 0x40);
    (o.mrSigner ?? Buffer.from(TD_QE_MRSIGNER, 'hex')).copy(r, 0x80);
    r.writeUInt16LE(2, 0x100);
    r.writeUInt16LE(o.isvSvn ?? 7, 0x102);
    createHash('sha256').update(Buffer.concat([o.attKey ?? this.attestationPublic, o.authData])).digest().copy(r, 0x140);
    return r;
  }

  /** quote builds and signs a TDX quote v4 or v5 for this platform. */
  quote(o: TdQuoteOptions = {}): Buffer {
    const version = o.version ?? 4;
    const bodyType = version === 4 ? 2 : (o.bodyType ?? 3);
    const td15 = bodyType === 3;
    const header = Buffer.alloc(48);
    header.writeUInt16LE(version, 0);
    header.writeUInt16LE(2, 2);
    header.writeUInt32LE(0x81, 4);
    INTEL_QE_VENDOR_ID.copy(header, 0x0c);
    (o.userData ?? Buffer.concat([createHash('sha256').update(this.pck.der).digest().subarray(0, 16), Buffer.alloc(4)])).copy(header, 0x1c);

    const body = Buffer.alloc(td15 ? 648 : 584);
    const put = (b: Buffer | undefined, off: number, len: number, dflt?: Buffer): void => {
      const v = b ?? dflt;
      if (!v) return;
      if (v.length !== len) throw new Error(`field at 0x${off.toString(16)} must be ${len} bytes`);
      v.copy(body, off);
    };
    put(o.teeTcbSvn, 0x000, 16, Buffer.from('05010200000000000000000000000000', 'hex'));
    put(o.mrSeam, 0x010, 48, createHash('sha384').update('fake TDX module').digest());
    put(o.mrSignerSeam, 0x040, 48);
    put(o.seamAttributes, 0x070, 8);
    body.writeBigUInt64LE(o.tdAttributes ?? 1n << 28n, 0x078);
    body.writeBigUInt64LE(o.xfam ?? 0x61ae7n, 0x080);
    put(o.mrTd, 0x088, 48, createHash('sha384').update('fake TDVF').digest());
    put(o.mrConfigId, 0x0b8, 48);
    put(o.mrOwner, 0x0e8, 48);
    put(o.mrOwnerConfig, 0x118, 48);
    (o.rtmr ?? []).forEach((r, i) => put(r, 0x148 + 48 * i, 48));
    put(o.reportData, 0x208, 64);
    if (td15) {
      put(o.teeTcbSvn2, 0x248, 16, o.teeTcbSvn ?? Buffer.from('05010200000000000000000000000000', 'hex'));
      put(o.mrServiceTd, 0x258, 48);
    }
    let signed: Buffer;
    if (version === 4) signed = Buffer.concat([header, body]);
    else {
      const desc = Buffer.alloc(6);
      desc.writeUInt16LE(bodyType, 0);
      desc.writeUInt32LE(body.length, 2);
      signed = Buffer.concat([header, desc, body]);
    }
    const authData = o.qeAuthData ?? Buffer.from(Array.from({ length: 32 }, (_, i) => i));
    // Like a real Quoting Enclave, the QE report and its PCK signature are made once per attestation
    // key (and auth data) and then carried unchanged by every quote.
    const memoKey = `${o.qeIsvSvn ?? ''}/${o.qeMrSigner?.toString('hex') ?? ''}/${authData.toString('hex')}`;
    let memo = this.qeMemo.get(memoKey);
    if (!memo) {
      const report = this.qeReport({ isvSvn: o.qeIsvSvn, mrSigner: o.qeMrSigner, authData });
      memo = { report, signature: rawSign(this.pck.key, report) };
      this.qeMemo.set(memoKey, memo);
    }
    const qe = memo.report;
    const qeSig = memo.signature;
    const chain = Buffer.from(this.pckChainPem + '\0', 'latin1');
    const authLen = Buffer.alloc(2);
    authLen.writeUInt16LE(authData.length, 0);
    const inner = Buffer.alloc(6);
    inner.writeUInt16LE(5, 0);
    inner.writeUInt32LE(chain.length, 2);
    const certBody = Buffer.concat([qe, qeSig, authLen, authData, inner, chain]);
    const certHead = Buffer.alloc(6);
    certHead.writeUInt16LE(6, 0);
    certHead.writeUInt32LE(certBody.length, 2);
    const quoteSig = rawSign(o.signWith ?? this.attestationKey, signed);
    const sigData = Buffer.concat([quoteSig, this.attestationPublic, certHead, certBody]);
    const sigLen = Buffer.alloc(4);
    sigLen.writeUInt32LE(sigData.length, 0);
    return Buffer.concat([signed, sigLen, sigData, Buffer.alloc(o.padding ?? 0)]);
  }

  /** collateral is the native verifier's collateral for this kit (PCS bodies unparsed: see rawJsonSpan). */
  collateral(o: { tcbInfo?: Buffer; qeIdentity?: Buffer; rootCrl?: Buffer; pckCrl?: Buffer } = {}): { tcbInfo: Buffer; qeIdentity: Buffer; rootCrl: Buffer; pckCrl: Buffer; tcbInfoChain: Buffer; qeIdentityChain: Buffer; pckCrlChain: Buffer } {
    return {
      tcbInfo: o.tcbInfo ?? this.tcbInfo(),
      qeIdentity: o.qeIdentity ?? this.qeIdentity(),
      rootCrl: o.rootCrl ?? this.rootCrl(),
      pckCrl: o.pckCrl ?? this.pckCrl(),
      tcbInfoChain: Buffer.from(this.tcbSigningChainPem),
      qeIdentityChain: Buffer.from(this.tcbSigningChainPem),
      pckCrlChain: Buffer.from(this.pckCrlChainPem),
    };
  }

  /** writeTrustDir puts this kit's root into `dir` (for TAS_TDX_EXTRA_TRUST_DIR). Returns the file. */
  writeTrustDir(dir: string, name = 'fake-intel-sgx-root.pem'): string {
    mkdirSync(dir, { recursive: true });
    const file = join(dir, name);
    writeFileSync(file, this.rootPem);
    return file;
  }

  /**
   * writeVectorDir lays out `dir` like an entry of test/fixtures/tdx-vectors (quote.bin when given,
   * tcb_info.json, qe_identity.json, the three issuer chains, pck_crl.der, root_ca_crl.der and a
   * vector.json with verify_at = the kit's now).
   */
  writeVectorDir(dir: string, quote?: Buffer, c = this.collateral()): string {
    mkdirSync(dir, { recursive: true });
    const w = (n: string, b: Buffer | string): void => writeFileSync(join(dir, n), b);
    if (quote) w('quote.bin', quote);
    w('tcb_info.json', c.tcbInfo);
    w('tcb_info_issuer_chain.pem', c.tcbInfoChain);
    w('qe_identity.json', c.qeIdentity);
    w('qe_identity_issuer_chain.pem', c.qeIdentityChain);
    w('pck_crl.der', c.pckCrl);
    w('pck_crl_issuer_chain.pem', c.pckCrlChain);
    w('root_ca_crl.der', c.rootCrl);
    w('vector.json', JSON.stringify({ name: 'fake-intel', verify_at: iso(this.now), valid_window: [iso(new Date(this.now.getTime() - DAY)), iso(new Date(this.now.getTime() + 29 * DAY))] }, null, 1));
    return dir;
  }
}
