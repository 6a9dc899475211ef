/**
 * A fake NVIDIA, shaped like the real one, for tests:
 *  - a device-identity PKI of five P-384 certificates per GPU (root "Fake NVIDIA Device Identity
 *    CA" → "GH100 Identity" → "GH100 Provisioner ICA 1" → per-device "GH100 A01 GSP BROM" → leaf
 *    "GH100 A01 GSP FMC LF" carrying the FWID extension 2.23.133.5.4.1), made with the openssl CLI;
 *  - SPDM 1.1 GET_MEASUREMENTS request/response pairs for any nonce and measurements, signed with
 *    the leaf key (ECDSA P-384, raw r‖s over request ‖ response), wrapped in the SDK's JSON entry
 *    (the C++ SDK's 4 keys or the Python SDK's 7);
 *  - RIMs (SWID XML) signed with xmlsec1 by a fake RIM root (ecdsa-sha384, C14N 1.1);
 *  - OCSP answers for the device certificates from a real `openssl ocsp` responder on loopback.
 * Nothing here is a mock of tas: tas verifies all of it with its production code.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createHash, createPrivateKey, randomBytes, sign } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SdkEntry } from './gpu-evidence';

function ossl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

interface Cert { key: string; cert: string; pem: string; serial: string }

let serialCounter = 0x1000;

/** mkCert makes a P-384 key and a certificate signed by `issuer` (self-signed when absent). */
function mkCert(dir: string, name: string, subject: string, issuer: Cert | undefined, ext: string): Cert {
  const key = join(dir, `${name}.key`);
  const cert = join(dir, `${name}.pem`);
  const cfg = join(dir, `${name}.cnf`);
  writeFileSync(cfg, `[req]\ndistinguished_name=dn\nprompt=no\n[dn]\n${subject.split('/').filter(Boolean).join('\n')}\n[ext]\n${ext}\n`);
  ossl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384', '-out', key], dir);
  const serial = (serialCounter++).toString(16) + randomBytes(8).toString('hex');
  if (!issuer) {
    ossl(['req', '-new', '-x509', '-key', key, '-out', cert, '-days', '36500', '-sha384', '-config', cfg, '-extensions', 'ext', '-set_serial', `0x${serial}`], dir);
  } else {
    const csr = join(dir, `${name}.csr`);
    ossl(['req', '-new', '-key', key, '-out', csr, '-config', cfg], dir);
    ossl(['x509', '-req', '-in', csr, '-CA', issuer.cert, '-CAkey', issuer.key, '-out', cert, '-days', '36500', '-sha384', '-extfile', cfg, '-extensions', 'ext', '-set_serial', `0x${serial}`], dir);
  }
  return { key, cert, pem: readFileSync(cert, 'utf8'), serial: serial.replace(/^0+/, '') };
}

const CA_EXT = 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid';

/** SpdmOptions shape one GET_MEASUREMENTS exchange. */
export interface SpdmOptions {
  nonce: string;
  /** 48-byte values of blocks 1..n (RIM indexes 0..n-1). */
  measurements: Buffer[];
  driverVersion?: string;
  vbiosVersion?: string;
  /** FWID opaque field; default the device's (its certificate's); null leaves it out. */
  fwid?: Buffer | null;
  /** Zero bytes appended after the signature. */
  padding?: number;
}

/** vbiosBytes inverts NVIDIA's VBIOS version rendering ("96.00.5E.00.01" → 8 bytes). */
export function vbiosBytes(v: string): Buffer {
  const p = v.split('.').map((x) => parseInt(x, 16));
  return Buffer.from([p[3]!, p[2]!, p[1]!, p[0]!, p[4]!, 0, 0, 0]);
}

function le(n: number, bytes: number): Buffer {
  const b = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) b[i] = (n >> (8 * i)) & 0xff;
  return b;
}

function tlv(type: number, value: Buffer): Buffer {
  return Buffer.concat([le(type, 2), le(value.length, 2), value]);
}

export const FAKE_PROJECT = { project: '1010', sku: '0200', chip: '882' };

/** FakeGpu is one device: its BROM and leaf certificates and keys. */
export class FakeGpu {
  constructor(
    readonly index: number,
    readonly chainPem: string,
    private readonly leafKeyPem: string,
    readonly fwid: Buffer,
    readonly brom: Cert,
  ) {}

  /** spdm builds request ‖ signed response. */
  spdm(o: SpdmOptions): Buffer {
    const req = Buffer.concat([Buffer.from([0x11, 0xe0, 0x01, 0xff]), Buffer.from(o.nonce, 'hex'), Buffer.from([0x00])]);
    const record = Buffer.concat(o.measurements.map((m, i) => Buffer.concat([Buffer.from([i + 1, 0x01]), le(3 + m.length, 2), Buffer.from([0x01]), le(m.length, 2), m])));
    const opaqueParts = [
      tlv(6, vbiosBytes(o.vbiosVersion ?? '96.00.5E.00.01')),
      tlv(17, Buffer.from(`${FAKE_PROJECT.project}\0`)),
      tlv(18, Buffer.from(`${FAKE_PROJECT.sku}\0`)),
      tlv(15, Buffer.from(`${FAKE_PROJECT.chip}\0\0\0\0\0`)),
      tlv(3, Buffer.from(`${o.driverVersion ?? '550.144.03'}\0`)),
      tlv(11, Buffer.from([0x55])),
    ];
    const fwid = o.fwid === undefined ? this.fwid : o.fwid;
    if (fwid) opaqueParts.push(tlv(20, fwid));
    const opaque = Buffer.concat(opaqueParts);
    const resp = Buffer.concat([Buffer.from([0x11, 0x60, 0x00, 0x00, o.measurements.length]), le(record.length, 3), record, randomBytes(32), le(opaque.length, 2), opaque]);
    const signed = Buffer.concat([req, resp]);
    const sig = sign('sha384', signed, { key: createPrivateKey(this.leafKeyPem), dsaEncoding: 'ieee-p1363' });
    return Buffer.concat([signed, sig, Buffer.alloc(o.padding ?? 0)]);
  }

  /** entry wraps SPDM evidence as the SDK's JSON entry (4 keys: C++ SDK; 7: Python SDK / nvtrust). */
  entry(o: SpdmOptions & { shape?: 4 | 7; spdm?: Buffer }): SdkEntry {
    const e: SdkEntry = {
      arch: 'HOPPER',
      certificate: Buffer.from(this.chainPem).toString('base64'),
      evidence: (o.spdm ?? this.spdm(o)).toString('base64'),
      nonce: o.nonce,
    };
    if (o.shape === 7) Object.assign(e, { driver_version: o.driverVersion ?? '550.144.03', vbios_version: o.vbiosVersion ?? '96.00.5E.00.01', version: '1.0' });
    return e;
  }
}

/** FakeNvidia is one fake NVIDIA: a device PKI, GPUs, a RIM signer and an OCSP responder. */
export class FakeNvidia {
  readonly dir: string;
  private constructor(dir: string, readonly root: Cert, readonly identity: Cert, readonly provisioner: Cert, readonly rimRoot: Cert, readonly rimSigner: Cert) {
    this.dir = dir;
  }

  static create(label = 'Fake NVIDIA'): FakeNvidia {
    const dir = mkdtempSync(join(tmpdir(), 'tas-fake-nvidia-'));
    const root = mkCert(dir, 'root', `CN=${label} Device Identity CA/O=NVIDIA`, undefined, CA_EXT);
    const identity = mkCert(dir, 'identity', 'CN=NVIDIA GH100 Identity/O=NVIDIA Corporation', root, CA_EXT);
    const provisioner = mkCert(dir, 'provisioner', 'CN=NVIDIA GH100 Provisioner ICA 1/O=NVIDIA Corporation/C=US', identity, `${CA_EXT}\nauthorityInfoAccess=OCSP;URI:http://127.0.0.1/`);
    const rimRoot = mkCert(dir, 'rim-root', `CN=${label} CoRIM signing Root CA/O=NVIDIA/C=US`, undefined, CA_EXT);
    const rimSigner = mkCert(dir, 'rim-signer', 'CN=Fake NVIDIA Reference Value L3 GH100 001/O=NVIDIA/C=US', rimRoot, 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid');
    const n = new FakeNvidia(dir, root, identity, provisioner, rimRoot, rimSigner);
    writeFileSync(join(dir, 'index.txt'), '');
    writeFileSync(join(dir, 'index.txt.attr'), 'unique_subject = no\n');
    return n;
  }

  /** gpu makes a device: per-device BROM + FMC leaf with the FWID extension (Hopper layout). */
  gpu(index: number): FakeGpu {
    const d = join(this.dir, `gpu${index}-${randomBytes(3).toString('hex')}`);
    mkdirSync(d);
    const brom = mkCert(d, 'brom', `serialNumber=${randomBytes(9).toString('hex').toUpperCase()}/C=US/O=NVIDIA Corporation/CN=GH100 A01 GSP BROM`, this.provisioner, `${CA_EXT}\nauthorityInfoAccess=OCSP;URI:http://127.0.0.1/`);
    const fwid = randomBytes(48);
    // 2.23.133.5.4.1: NVIDIA's DER SEQUENCE whose last 48 bytes are the FWID.
    const ext = `3035020101${'0430'}${fwid.toString('hex')}`;
    const leaf = mkCert(d, 'leaf', `serialNumber=${randomBytes(20).toString('hex').toUpperCase()}/C=US/O=NVIDIA Corporation/CN=GH100 A01 GSP FMC LF`, brom, `keyUsage=critical,digitalSignature\n2.23.133.5.4.1=DER:${ext}`);
    const chain = [leaf.pem, brom.pem, this.provisioner.pem, this.identity.pem, this.root.pem].join('');
    return new FakeGpu(index, chain, readFileSync(leaf.key, 'utf8'), fwid, brom);
  }

  /** rim makes a RIM (SWID XML) with the given golden measurements, signed by the fake RIM signer. */
  rim(o: { version: string; product?: string; measurements: Array<{ index: number; values: Buffer[] }>; tamper?: boolean }): Buffer {
    const res = o.measurements.map((m) => `    <Resource type="Measurement" index="${m.index}" active="True" alternatives="${m.values.length}" ${m.values.map((v, i) => `SHA384:Hash${i}="${v.toString('hex')}"`).join(' ')} name="m${m.index}" size="48"/>`).join('\n');
    const tpl = `<?xml version="1.0" encoding="UTF-8"?>
<SoftwareIdentity xmlns="http://standards.iso.org/iso/19770/-2/2015/schema.xsd" xmlns:SHA384="http://www.w3.org/2001/04/xmlenc#sha384" name="${o.product ?? 'GH100'}" tagId="${randomBytes(16).toString('hex')}" version="1.0">
  <Entity name="Fake NVIDIA" role="softwareCreator tagCreator"/>
  <Meta colloquialVersion="${o.version}" product="${o.product ?? 'GH100'}" FirmwareManufacturerId="5703"/>
  <Payload>
${res}
  </Payload>
  <ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#">
    <ds:SignedInfo>
      <ds:CanonicalizationMethod Algorithm="http://www.w3.org/2006/12/xml-c14n11"/>
      <ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384"/>
      <ds:Reference URI="">
        <ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/></ds:Transforms>
        <ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#sha384"/>
        <ds:DigestValue/>
      </ds:Reference>
    </ds:SignedInfo>
    <ds:SignatureValue/>
    <ds:KeyInfo><ds:X509Data/></ds:KeyInfo>
  </ds:Signature>
</SoftwareIdentity>
`;
    const t = join(this.dir, `rim-${randomBytes(4).toString('hex')}.xml`);
    writeFileSync(t, tpl);
    const out = `${t}.signed`;
    execFileSync('xmlsec1', ['--sign', '--privkey-pem', `${this.rimSigner.key},${this.rimSigner.cert}`, '--output', out, t], { stdio: ['ignore', 'ignore', 'pipe'] });
    let xml = readFileSync(out);
    if (o.tamper) xml = Buffer.from(xml.toString('utf8').replace(/Hash0="([0-9a-f])/, (_m, c: string) => `Hash0="${c === '0' ? '1' : '0'}`));
    return xml;
  }

  /** revoke marks a device's BROM certificate revoked in the responder's index. */
  revoke(gpu: FakeGpu): void {
    const line = `R\t991231235959Z\t240101000000Z,keyCompromise\t${gpu.brom.serial.toUpperCase()}\tunknown\t/CN=GH100 A01 GSP BROM\n`;
    writeFileSync(join(this.dir, 'index.txt'), readFileSync(join(this.dir, 'index.txt'), 'utf8') + line);
  }

  /** goodFor lists certificates as valid in the index (openssl ocsp answers "unknown" for unlisted ones). */
  listValid(certs: Cert[]): void {
    const lines = certs.map((c) => `V\t991231235959Z\t\t${c.serial.toUpperCase()}\tunknown\t/CN=x\n`).join('');
    writeFileSync(join(this.dir, 'index.txt'), readFileSync(join(this.dir, 'index.txt'), 'utf8') + lines);
  }

  rootPem(): string {
    return this.root.pem;
  }

  close(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** freePort finds a free loopback port. */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s: Server = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
    s.on('error', reject);
  });
}

/**
 * OcspResponder is `openssl ocsp` on loopback, answering for the certificates issued by one CA
 * (the issuer signs its own answers: the CA-designated-responder case of RFC 6960).
 */
export class OcspResponder {
  private constructor(private readonly proc: ChildProcess, readonly url: string) {}

  static async start(nv: FakeNvidia, issuer: Cert, ndays = 1): Promise<OcspResponder> {
    const port = await freePort();
    const proc = spawn('openssl', ['ocsp', '-index', join(nv.dir, 'index.txt'), '-port', String(port), '-rsigner', issuer.cert, '-rkey', issuer.key, '-CA', issuer.cert, '-ndays', String(ndays), '-ignore_err'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const url = `http://127.0.0.1:${port}`;
    let err = '';
    proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    proc.stdout!.on('data', (d: Buffer) => (err += d.toString()));
    for (let i = 0; i < 100; i++) {
      await new Promise((r) => setTimeout(r, 50));
      const up = /waiting for OCSP client connections|ACCEPT/.test(err);
      if (up) return new OcspResponder(proc, url);
      if (proc.exitCode !== null) break;
    }
    proc.kill();
    throw new Error(`openssl ocsp did not start: ${err.slice(-500)}`);
  }

  stop(): void {
    this.proc.kill();
  }
}

export function sha256hex(b: Buffer | string): string {
  return createHash('sha256').update(b).digest('hex');
}
