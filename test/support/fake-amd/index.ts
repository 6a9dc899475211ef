/**
 * FakeAmd: a test-only AMD SEV-SNP "manufacturer". It mints ARK/ASK/ASVK/VCEK/VLEK certificates
 * shaped exactly like AMD's (see README.md in this folder), ARK-signed CRLs, and signs
 * ATTESTATION_REPORTs for Milan, Genoa and Turin. CA and leaf keys are cached on disk (first
 * writer wins) so that every process of a test run — the daemon under test, a benchmark child, a
 * demo — sees the same fake roots and keys.
 */
import { createPrivateKey, createPublicKey, generateKeyPair, createHash, type KeyObject } from 'node:crypto';
import { existsSync, linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { buildCert, buildCrl, ext, toPem, type Extension, type RevokedEntry } from './x509';
import { buildReportBody, reusedNonceSigner, signReportBody, DEFAULT_TCB, type Product, type ReportFields, type Tcb } from './report';

export { encodeTcb, buildReportBody, reusedNonceSigner, signReportBody, DEFAULT_TCB, DEFAULT_CPUID, PRODUCTS, REPORT_SIZE, SIGNED_SIZE } from './report';
export type { Product, ReportFields, Tcb, FirmwareVersion } from './report';
export { toPem } from './x509';
export type { Extension, RevokedEntry } from './x509';

/** CA_FACTS: serials and validity AMD uses for each product's CA certificates. */
const CA_FACTS: Record<Product, { ark: number; ask: number; asvk: number; notBefore: string }> = {
  Milan: { ark: 0x10000, ask: 0x10001, asvk: 0x10101, notBefore: '2020-10-22T17:23:05Z' },
  Genoa: { ark: 0x20000, ask: 0x20002, asvk: 0x20101, notBefore: '2022-01-26T15:34:37Z' },
  Turin: { ark: 0x30000, ask: 0x30001, asvk: 0x30101, notBefore: '2023-05-15T20:03:12Z' },
};

/** DEFAULT_LEAF_VALIDITY: fixed so that certificates minted by different processes agree. */
export const DEFAULT_VCEK_VALIDITY = { notBefore: new Date('2026-01-01T00:00:00Z'), notAfter: new Date('2033-01-01T00:00:00Z') };
export const DEFAULT_VLEK_VALIDITY = { notBefore: new Date('2026-01-01T00:00:00Z'), notAfter: new Date('2028-01-01T00:00:00Z') };

/** FakeAmdOptions configure FakeAmd.create. */
export interface FakeAmdOptions {
  readonly product: Product;
  /** RSA modulus of ARK/ASK/ASVK (AMD: 4096). */
  readonly rsaBits?: 2048 | 3072 | 4096;
  /** Key/cert cache directory; default $TAS_FAKE_AMD_CACHE or <tmpdir>/tas-fake-amd-v1. */
  readonly cacheDir?: string;
}

/** LeafOptions shape a VCEK or VLEK; omitted values come from the kit's defaults. */
export interface LeafOptions {
  /** CHIP_ID the hwID is derived from (64 bytes; Turin uses bytes 0..7). Default the kit's chip. */
  readonly chipId?: Buffer;
  /** Raw hwID override; null omits the extension (negative tests). */
  readonly hwId?: Buffer | null;
  /** TCB the certificate attests (default the product's DEFAULT_TCB). */
  readonly tcb?: Tcb;
  /** productName extension; default `Milan-B0`/`Genoa`/`Turin` (VLEK: `Milan`/...); null omits it. */
  readonly productName?: string | null;
  /** structVersion extension (default 0; 1 on Turin). */
  readonly structVersion?: number;
  /** cspID (VLEK default `CN=fake-csp.example`); for a VCEK, set to add one (negative tests). */
  readonly cspId?: string | null;
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  /** Leaf key (private or public); default the kit's cached VCEK/VLEK key. */
  readonly key?: KeyObject;
  readonly serial?: number;
  readonly subjectCN?: string;
  /** Issue under this CA instead of the default (ASK for VCEK, ASVK for VLEK). */
  readonly issuer?: 'ASK' | 'ASVK' | 'ARK';
  /** Appended after the KDS extensions. */
  readonly extraExtensions?: readonly Extension[];
}

/** CrlOptions for FakeAmd.crlDer. */
export interface CrlOptions {
  readonly thisUpdate: Date;
  readonly nextUpdate: Date;
  /** Serials (ASK 0x..., ASVK, or 0 for a leaf) to list as revoked. */
  readonly revoked?: ReadonlyArray<number | bigint | RevokedEntry>;
  readonly crlNumber?: number;
  /** Sign with this key instead of the ARK's (negative tests). */
  readonly signer?: KeyObject;
}

interface CaEntry {
  key: KeyObject;
  der: Buffer;
  spki: Buffer;
}

function defaultCacheDir(): string {
  return process.env['TAS_FAKE_AMD_CACHE'] ?? join(tmpdir(), 'tas-fake-amd-v1');
}

/**
 * cached returns the content of `dir/name`, producing it with make() when absent. Creation is
 * atomic and first-writer-wins (link(2) refuses to replace), so concurrent processes converge.
 */
async function cached(dir: string, name: string, make: () => Promise<string>): Promise<string> {
  const path = join(dir, name);
  if (existsSync(path)) return readFileSync(path, 'utf8');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const content = await make();
  const tmp = `${path}.${process.pid}.${Math.random().toString(16).slice(2)}`;
  writeFileSync(tmp, content, { mode: 0o600 });
  try {
    linkSync(tmp, path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  } finally {
    unlinkSync(tmp);
  }
  return readFileSync(path, 'utf8');
}

function genRsa(bits: number): Promise<string> {
  return new Promise((res, rej) =>
    generateKeyPair('rsa', { modulusLength: bits, publicExponent: 65537 }, (err, _pub, priv) =>
      err ? rej(err) : res(priv.export({ type: 'pkcs8', format: 'pem' }) as string),
    ),
  );
}

function genEc(): Promise<string> {
  return new Promise((res, rej) =>
    generateKeyPair('ec', { namedCurve: 'secp384r1' }, (err, _pub, priv) =>
      err ? rej(err) : res(priv.export({ type: 'pkcs8', format: 'pem' }) as string),
    ),
  );
}

/** newLeafKey makes a fresh ECDSA P-384 key (e.g. for "signed by another VCEK" tests). */
export async function newLeafKey(): Promise<KeyObject> {
  return createPrivateKey(await genEc());
}

function spkiOf(key: KeyObject): Buffer {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return pub.export({ type: 'spki', format: 'der' });
}

/** defaultChipId is a deterministic fake CHIP_ID per product (8 significant bytes on Turin). */
export function defaultChipId(product: Product): Buffer {
  const h = createHash('sha512').update(`tas fake-amd chip ${product}`).digest();
  if (product === 'Turin') return Buffer.concat([h.subarray(0, 8), Buffer.alloc(56)]);
  return h;
}

/** FakeAmd is one product's fake AMD: its CA chain, leaf keys, and signing operations. */
export class FakeAmd {
  readonly product: Product;
  readonly chipId: Buffer;
  readonly arkDer: Buffer;
  readonly askDer: Buffer;
  readonly asvkDer: Buffer;
  readonly arkKey: KeyObject;
  readonly askKey: KeyObject;
  readonly asvkKey: KeyObject;
  /** Default VCEK / VLEK private keys (cached on disk, shared by every process). */
  readonly vcekKey: KeyObject;
  readonly vlekKey: KeyObject;
  private readonly ark: CaEntry;
  private readonly ask: CaEntry;
  private readonly asvk: CaEntry;

  private constructor(product: Product, ark: CaEntry, ask: CaEntry, asvk: CaEntry, vcekKey: KeyObject, vlekKey: KeyObject) {
    this.product = product;
    this.chipId = defaultChipId(product);
    this.ark = ark;
    this.ask = ask;
    this.asvk = asvk;
    this.arkDer = ark.der;
    this.askDer = ask.der;
    this.asvkDer = asvk.der;
    this.arkKey = ark.key;
    this.askKey = ask.key;
    this.asvkKey = asvk.key;
    this.vcekKey = vcekKey;
    this.vlekKey = vlekKey;
  }

  /** create loads (or generates and caches) the product's fake chain. */
  static async create(opts: FakeAmdOptions): Promise<FakeAmd> {
    const p = opts.product;
    if (!(p in CA_FACTS)) throw new Error(`unknown product ${String(p)}`);
    const bits = opts.rsaBits ?? 4096;
    const dir = opts.cacheDir ?? defaultCacheDir();
    const lp = p.toLowerCase();
    // One file holds the three CA keys and certificates, so keys and certs can never disagree.
    const caJson = await cached(dir, `ca-${lp}-${bits}.json`, async () => {
      const [arkPem, askPem, asvkPem] = await Promise.all([genRsa(bits), genRsa(bits), genRsa(bits)]);
      const f = CA_FACTS[p];
      const nb = new Date(f.notBefore);
      const na = new Date(nb);
      na.setUTCFullYear(na.getUTCFullYear() + 25);
      const arkKey = createPrivateKey(arkPem);
      const askKey = createPrivateKey(askPem);
      const asvkKey = createPrivateKey(asvkPem);
      const arkSpki = spkiOf(arkKey);
      const ark = buildCert({
        serial: f.ark, issuerCN: `ARK-${p}`, subjectCN: `ARK-${p}`, notBefore: nb, notAfter: na, spki: arkSpki,
        signer: arkKey, pssTrailer: true,
        extensions: [ext.keyUsage('certSign+cRLSign'), ext.ski(arkSpki), ext.basicConstraints(false),
          ext.crlDp(`https://kdsintf.amd.com/vcek/v1/${p}/crl`)],
      });
      const sub = (serial: number, cn: string, key: KeyObject, crl: string): Buffer => {
        const spki = spkiOf(key);
        return buildCert({
          serial, issuerCN: `ARK-${p}`, subjectCN: cn, notBefore: nb, notAfter: na, spki, signer: arkKey, pssTrailer: true,
          extensions: [ext.ski(spki), ext.aki(arkSpki), ext.basicConstraints(true), ext.keyUsage('certSign'), ext.crlDp(crl)],
        });
      };
      const ask = sub(f.ask, `SEV-${p}`, askKey, `https://kdsintf.amd.com/vcek/v1/${p}/crl`);
      const asvk = sub(f.asvk, `SEV-VLEK-${p}`, asvkKey, `https://kdsintf.amd.com/vlek/v1/${p}/crl`);
      return JSON.stringify({
        ark: { key: arkPem, der: ark.toString('base64') },
        ask: { key: askPem, der: ask.toString('base64') },
        asvk: { key: asvkPem, der: asvk.toString('base64') },
      });
    });
    const j = JSON.parse(caJson) as Record<'ark' | 'ask' | 'asvk', { key: string; der: string }>;
    const entry = (e: { key: string; der: string }): CaEntry => {
      const key = createPrivateKey(e.key);
      return { key, der: Buffer.from(e.der, 'base64'), spki: spkiOf(key) };
    };
    const [vcekPem, vlekPem] = await Promise.all([
      cached(dir, `vcek-${lp}.key.pem`, genEc),
      cached(dir, `vlek-${lp}.key.pem`, genEc),
    ]);
    return new FakeAmd(p, entry(j.ark), entry(j.ask), entry(j.asvk), createPrivateKey(vcekPem), createPrivateKey(vlekPem));
  }

  /** all creates the three products' kits. */
  static async all(opts: Omit<FakeAmdOptions, 'product'> = {}): Promise<Record<Product, FakeAmd>> {
    const [Milan, Genoa, Turin] = await Promise.all(
      (['Milan', 'Genoa', 'Turin'] as const).map((product) => FakeAmd.create({ ...opts, product })),
    );
    return { Milan: Milan!, Genoa: Genoa!, Turin: Turin! };
  }

  get arkPem(): string { return toPem(this.arkDer); }
  get askPem(): string { return toPem(this.askDer); }
  get asvkPem(): string { return toPem(this.asvkDer); }

  /** certChainPem is the KDS `cert_chain` body: ASK (or ASVK) then ARK. */
  certChainPem(kind: 'VCEK' | 'VLEK' = 'VCEK'): string {
    return (kind === 'VCEK' ? this.askPem : this.asvkPem) + this.arkPem;
  }

  /** hwIdFor is the hwID of a chip: 64 bytes, or CHIP_ID[0..7] on Turin. */
  hwIdFor(chipId: Buffer = this.chipId): Buffer {
    return this.product === 'Turin' ? Buffer.from(chipId.subarray(0, 8)) : Buffer.from(chipId);
  }

  private leaf(kind: 'VCEK' | 'VLEK', o: LeafOptions): Buffer {
    const p = this.product;
    const tcb = o.tcb ?? DEFAULT_TCB[p];
    const turin = p === 'Turin';
    const exts: Extension[] = [ext.kdsInteger('1', o.structVersion ?? (turin ? 1 : 0))];
    const pn = o.productName === undefined ? (kind === 'VCEK' && p === 'Milan' ? 'Milan-B0' : p) : o.productName;
    if (pn !== null) exts.push(ext.kdsIa5('2', pn));
    // Extension order and presence exactly as KDS emits them (SNP.md §2.2).
    if (turin) {
      exts.push(ext.kdsInteger('3.9', tcb.fmc ?? 0), ext.kdsInteger('3.1', tcb.bootloader), ext.kdsInteger('3.2', tcb.tee),
        ext.kdsInteger('3.3', tcb.snp), ext.kdsInteger('3.5', tcb.spl5 ?? 0), ext.kdsInteger('3.6', tcb.spl6 ?? 0),
        ext.kdsInteger('3.7', tcb.spl7 ?? 0), ext.kdsInteger('3.8', tcb.microcode));
    } else {
      exts.push(ext.kdsInteger('3.1', tcb.bootloader), ext.kdsInteger('3.2', tcb.tee), ext.kdsInteger('3.4', tcb.spl4 ?? 0),
        ext.kdsInteger('3.5', tcb.spl5 ?? 0), ext.kdsInteger('3.6', tcb.spl6 ?? 0), ext.kdsInteger('3.7', tcb.spl7 ?? 0),
        ext.kdsInteger('3.3', tcb.snp), ext.kdsInteger('3.8', tcb.microcode));
    }
    const hw = o.hwId === undefined ? (kind === 'VCEK' ? this.hwIdFor(o.chipId ?? this.chipId) : null) : o.hwId;
    if (hw !== null) exts.push(ext.kdsRaw('4', hw));
    const csp = o.cspId === undefined ? (kind === 'VLEK' ? 'CN=fake-csp.example' : null) : o.cspId;
    if (csp !== null) exts.push(ext.kdsIa5('5', csp));
    exts.push(...(o.extraExtensions ?? []));
    const issuer = o.issuer ?? (kind === 'VCEK' ? 'ASK' : 'ASVK');
    const ca = issuer === 'ASK' ? this.ask : issuer === 'ASVK' ? this.asvk : this.ark;
    const issuerCN = issuer === 'ASK' ? `SEV-${p}` : issuer === 'ASVK' ? `SEV-VLEK-${p}` : `ARK-${p}`;
    const validity = kind === 'VCEK' ? DEFAULT_VCEK_VALIDITY : DEFAULT_VLEK_VALIDITY;
    return buildCert({
      serial: o.serial ?? 0,
      issuerCN,
      subjectCN: o.subjectCN ?? (kind === 'VCEK' ? 'SEV-VCEK' : 'SEV-VLEK'),
      notBefore: o.notBefore ?? validity.notBefore,
      notAfter: o.notAfter ?? validity.notAfter,
      spki: spkiOf(o.key ?? (kind === 'VCEK' ? this.vcekKey : this.vlekKey)),
      extensions: exts,
      signer: ca.key,
      pssTrailer: false, // VCEKs issued since 2026 omit the DEFAULT trailerField
    });
  }

  /** vcekDer mints a VCEK (serial 0, secp384r1 key, KDS extensions, hwID) signed by the ASK. */
  vcekDer(o: LeafOptions = {}): Buffer { return this.leaf('VCEK', o); }
  /** vlekDer mints a VLEK (cspID, no hwID) signed by the ASVK. */
  vlekDer(o: LeafOptions = {}): Buffer { return this.leaf('VLEK', o); }
  vcekPem(o: LeafOptions = {}): string { return toPem(this.vcekDer(o)); }
  vlekPem(o: LeafOptions = {}): string { return toPem(this.vlekDer(o)); }

  /**
   * signReport builds and signs a report. The signing key defaults to the kit's VCEK key, or its
   * VLEK key when fields.signingKey is 'VLEK'; pass `key` to sign with another one.
   */
  signReport(fields: ReportFields = {}, key?: KeyObject): Buffer {
    const k = key ?? (fields.signingKey === 'VLEK' ? this.vlekKey : this.vcekKey);
    return signReportBody(buildReportBody(this.product, this.chipId, fields), k);
  }

  /**
   * benchReportSigner (benchmarks only): signReport with the VCEK key and one reused ECDSA nonce, so
   * that signing costs microseconds instead of a P-384 scalar multiplication (reusedNonceSigner says
   * why that gives the key away, and why that is fine for a fake AMD's key in a benchmark).
   */
  benchReportSigner(): (fields: ReportFields) => Buffer {
    const signBody = reusedNonceSigner(this.vcekKey);
    return (fields) => signBody(buildReportBody(this.product, this.chipId, fields));
  }

  /** crlDer mints an ARK-signed CRL with the caller's thisUpdate/nextUpdate. */
  crlDer(o: CrlOptions): Buffer {
    return buildCrl({
      issuerCN: `ARK-${this.product}`,
      issuerSpki: this.ark.spki,
      signer: o.signer ?? this.ark.key,
      thisUpdate: o.thisUpdate,
      nextUpdate: o.nextUpdate,
      revoked: (o.revoked ?? []).map((r) => (typeof r === 'object' ? r : { serial: r })),
      crlNumber: o.crlNumber ?? 1,
    });
  }

  /**
   * writeTrustDir writes `ark-<product>.pem` into dir (a TAS_SNP_EXTRA_TRUST_DIR); with
   * `intermediates`, also `ask-<product>.pem` and `asvk-<product>.pem` (offered, never trusted, when
   * evidence carries no intermediate). Returns the ARK file.
   */
  async writeTrustDir(dir: string, opts: { intermediates?: boolean } = {}): Promise<string> {
    await mkdir(dir, { recursive: true });
    const lp = this.product.toLowerCase();
    const f = join(dir, `ark-${lp}.pem`);
    await writeFile(f, this.arkPem);
    if (opts.intermediates) {
      await writeFile(join(dir, `ask-${lp}.pem`), this.askPem);
      await writeFile(join(dir, `asvk-${lp}.pem`), this.asvkPem);
    }
    return f;
  }
}

/** signReportWith signs a report for a product with any ECDSA P-384 key (PEM or KeyObject). */
export function signReportWith(product: Product, key: KeyObject | string, fields: ReportFields & { chipId: Buffer }): Buffer {
  const k = typeof key === 'string' ? createPrivateKey(key) : key;
  return signReportBody(buildReportBody(product, fields.chipId, fields), k);
}

/** AgentFixture is one of /work/shared/agent-fixtures' fake chains with its test VCEK key. */
export interface AgentFixture {
  readonly dir: string;
  readonly product: Product;
  readonly chipId: Buffer;
  readonly reportedTcb: Tcb;
  readonly measurement: Buffer;
  readonly arkPem: string;
  readonly askPem: string;
  readonly vcekDer: Buffer;
  readonly vcekKey: KeyObject;
  readonly params: Record<string, unknown>;
  /** signReport signs with the fixture's VCEK key; defaults follow params.json (TCB, chip, cpuid, platform info, firmware). */
  signReport(fields?: ReportFields): Buffer;
}

/** AGENT_FIXTURES_DIR: repository copy when present, else the shared reference folder. */
export function agentFixturesDir(): string {
  const local = resolve(__dirname, '../../fixtures/agent-fixtures');
  return existsSync(local) ? local : '/work/shared/agent-fixtures';
}

/** loadAgentFixture reads `chain`, `chain-milan` or `chain-turin`. */
export function loadAgentFixture(name: 'chain' | 'chain-milan' | 'chain-turin', root = agentFixturesDir()): AgentFixture {
  const dir = join(root, name);
  const params = JSON.parse(readFileSync(join(dir, 'params.json'), 'utf8')) as {
    product: Product; chip_id: string; measurement: string;
    reported_tcb: { bootloader: number; tee: number; snp: number; microcode: number; fmc?: number };
    report_defaults: { version: number; cpuid: string[]; platform_info: string; firmware: string; mit_vector: number | null };
  };
  const product = params.product;
  const chipHex = params.chip_id;
  const chipId = Buffer.concat([Buffer.from(chipHex, 'hex'), Buffer.alloc(64)]).subarray(0, 64);
  const rd = params.report_defaults;
  const [major, minor, build] = rd.firmware.split('.').map(Number) as [number, number, number];
  const vcekKey = createPrivateKey(readFileSync(join(dir, 'vcek.key.pem')));
  const defaults: ReportFields = {
    version: rd.version,
    cpuid: { family: Number(rd.cpuid[0]), model: Number(rd.cpuid[1]), stepping: Number(rd.cpuid[2]) },
    platformInfo: BigInt(rd.platform_info),
    currentVersion: { major, minor, build },
    reportedTcb: params.reported_tcb,
    measurement: Buffer.from(params.measurement, 'hex'),
    ...(rd.mit_vector !== null ? { launchMitVector: rd.mit_vector, currentMitVector: rd.mit_vector } : {}),
  };
  return {
    dir,
    product,
    chipId,
    reportedTcb: params.reported_tcb,
    measurement: Buffer.from(params.measurement, 'hex'),
    arkPem: readFileSync(join(dir, 'ark.pem'), 'utf8'),
    askPem: readFileSync(join(dir, 'ask.pem'), 'utf8'),
    vcekDer: readFileSync(join(dir, 'vcek.der')),
    vcekKey,
    params: params as unknown as Record<string, unknown>,
    signReport: (fields: ReportFields = {}) =>
      signReportBody(buildReportBody(product, chipId, { ...defaults, ...fields }), vcekKey),
  };
}
