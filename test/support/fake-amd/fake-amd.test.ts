/**
 * Self-checks of the fake AMD signer, independent of tas's own verifier: chains verify with the
 * openssl CLI, report signatures verify with node:crypto, and the certificate shape matches the
 * genuine AMD certificates byte-for-byte where it must (DN, PSS parameters, extension layout).
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { X509Certificate, createPublicKey, verify } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeAmd, PRODUCTS, REPORT_SIZE, encodeTcb, loadAgentFixture, toPem, type Product } from './index';

const FIXTURES = join(__dirname, '../../fixtures');
const vectorsDir = (): string => join(FIXTURES, 'snp-vectors');

/** verifyReportSig checks the report signature with node:crypto (r/s little-endian, 72 bytes). */
function verifyReportSig(report: Buffer, certDer: Buffer): boolean {
  const r = Buffer.from(report.subarray(0x2a0, 0x2a0 + 48)).reverse();
  const s = Buffer.from(report.subarray(0x2e8, 0x2e8 + 48)).reverse();
  const key = createPublicKey({ key: certDer, format: 'der', type: 'spki' } as never);
  return verify('sha384', report.subarray(0, 0x2a0), { key, dsaEncoding: 'ieee-p1363' }, Buffer.concat([r, s]));
}
function leafKey(der: Buffer): ReturnType<typeof createPublicKey> {
  return new X509Certificate(der).publicKey;
}
function verifyWithCert(report: Buffer, der: Buffer): boolean {
  const r = Buffer.from(report.subarray(0x2a0, 0x2a0 + 48)).reverse();
  const s = Buffer.from(report.subarray(0x2e8, 0x2e8 + 48)).reverse();
  return verify('sha384', report.subarray(0, 0x2a0), { key: leafKey(der), dsaEncoding: 'ieee-p1363' }, Buffer.concat([r, s]));
}

function opensslVerify(dir: string, ark: string, inter: string, leafDer: Buffer): string {
  const leaf = join(dir, 'leaf.pem');
  writeFileSync(leaf, toPem(leafDer));
  writeFileSync(join(dir, 'ark.pem'), ark);
  writeFileSync(join(dir, 'inter.pem'), inter);
  return execFileSync('openssl', ['verify', '-no-CApath', '-CAfile', join(dir, 'ark.pem'), '-untrusted', join(dir, 'inter.pem'),
    '-attime', String(Date.parse('2026-06-01T00:00:00Z') / 1000), leaf], { encoding: 'utf8' });
}

/** asn1Skeleton lists tags/lengths/OIDs/strings of a certificate (no key or signature bytes). */
function asn1Outline(pem: string, dir: string): string[] {
  const f = join(dir, 'outline.pem');
  writeFileSync(f, pem);
  return execFileSync('openssl', ['asn1parse', '-in', f], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => /OBJECT|STRING|BOOLEAN/.test(l) && !/BIT STRING/.test(l))
    .map((l) => l.replace(/^\s*\d+:/, '').replace(/\[HEX DUMP\]:[0-9A-F]+/, 'HEX'));
}

describe('fake-amd signer', function () {
  this.timeout(120_000); // first run generates nine RSA-4096 keys (cached afterwards)
  let kits: Record<Product, FakeAmd>;
  let dir: string;
  before(async () => {
    kits = await FakeAmd.all();
    dir = mkdtempSync(join(tmpdir(), 'fake-amd-test-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const p of PRODUCTS) {
    it(`${p}: VCEK and VLEK chains verify with openssl`, () => {
      const k = kits[p];
      assert.match(opensslVerify(dir, k.arkPem, k.askPem, k.vcekDer()), /OK/);
      assert.match(opensslVerify(dir, k.arkPem, k.asvkPem, k.vlekDer()), /OK/);
      assert.throws(() => opensslVerify(dir, k.arkPem, k.askPem, k.vlekDer()));
    });

    it(`${p}: reports verify under the VCEK/VLEK and not under the other`, () => {
      const k = kits[p];
      const rep = k.signReport({ reportData: Buffer.alloc(64, 7) });
      assert.equal(rep.length, REPORT_SIZE);
      assert.equal(verifyWithCert(rep, k.vcekDer()), true);
      assert.equal(verifyWithCert(rep, k.vlekDer()), false);
      const vl = k.signReport({ signingKey: 'VLEK' });
      assert.equal(verifyWithCert(vl, k.vlekDer()), true);
      assert.equal((vl.readUInt32LE(0x48) >> 2) & 7, 1);
      const flipped = Buffer.from(rep);
      flipped[0x90]! ^= 1;
      assert.equal(verifyWithCert(flipped, k.vcekDer()), false);
      // unsigned tail zero, signature padding zero
      assert.ok(rep.subarray(0x330).every((b) => b === 0));
      assert.ok(rep.subarray(0x2a0 + 48, 0x2e8).every((b) => b === 0));
    });

    it(`${p}: certificate outline equals the genuine AMD certificates`, () => {
      const k = kits[p];
      const lp = p.toLowerCase();
      for (const [mine, real] of [[k.arkPem, 'ark'], [k.askPem, 'ask'], [k.asvkPem, 'asvk']] as const) {
        const genuine = readFileSync(join(FIXTURES, 'amd-roots', lp, `${real}.pem`), 'utf8');
        const a = asn1Outline(mine, dir).filter((l) => !l.includes('HEX'));
        const b = asn1Outline(genuine, dir).filter((l) => !l.includes('HEX'));
        assert.deepEqual(a, b, `${p} ${real}`);
      }
      const real = { Milan: 'mstav-milan-v3', Genoa: 'mstav-genoa-v3', Turin: 'mstav-turin-v5' }[p];
      const genuineVcek = readFileSync(join(vectorsDir(), real, 'vcek.pem'), 'utf8');
      const tcb = { Milan: { bootloader: 4, tee: 0, snp: 24, microcode: 219 }, Genoa: { bootloader: 10, tee: 0, snp: 23, microcode: 84 },
        Turin: { fmc: 1, bootloader: 1, tee: 1, snp: 4, microcode: 81 } }[p];
      const mine = toPem(k.vcekDer({ tcb }));
      // identical structure including the extension values (TCB chosen equal), apart from hwID/keys/times
      const strip = (ls: string[]): string[] => ls.map((l) => (l.includes('l=  64') || l.includes('l=   8 prim: OCTET') ? 'HWID' : l));
      assert.deepEqual(strip(asn1Outline(mine, dir)), strip(asn1Outline(genuineVcek, dir)));
    });
  }

  it('VLEK outline equals the genuine AWS VLEK apart from the cspID', () => {
    const genuine = toPem(readFileSync(join(vectorsDir(), 'trustee-milan-v3-vlek', 'vlek.der')));
    const mine = toPem(kits.Milan.vlekDer({ tcb: { bootloader: 4, tee: 0, snp: 24, microcode: 217 }, cspId: 'CN=cc-us-east-2.amazonaws.com' }));
    assert.deepEqual(asn1Outline(mine, dir), asn1Outline(genuine, dir));
  });

  it('ucodeSPL >= 128 is a real DER INTEGER with a leading 00', () => {
    const der = kits.Milan.vcekDer({ tcb: { bootloader: 4, tee: 0, snp: 24, microcode: 219 } });
    assert.ok(der.includes(Buffer.from('0404020200db', 'hex')));
  });

  it('Turin TCB layout puts FMC first; Milan/Genoa put SNP at byte 6', () => {
    assert.equal(encodeTcb('Turin', { fmc: 1, bootloader: 2, tee: 3, snp: 4, microcode: 0x51 }).toString('hex'), '0102030400000051');
    assert.equal(encodeTcb('Genoa', { bootloader: 10, tee: 0, snp: 27, microcode: 88 }).toString('hex'), '0a00000000001b58');
  });

  it('CRL is ARK-signed with the requested dates and revoked serials', () => {
    const k = kits.Genoa;
    const crl = k.crlDer({ thisUpdate: new Date('2026-11-01T00:00:00Z'), nextUpdate: new Date('2026-12-01T00:00:00Z'), revoked: [0x20002] });
    writeFileSync(join(dir, 'crl.der'), crl);
    writeFileSync(join(dir, 'ark.pem'), k.arkPem);
    const text = execFileSync('openssl', ['crl', '-inform', 'DER', '-in', join(dir, 'crl.der'), '-CAfile', join(dir, 'ark.pem'), '-noout', '-text'],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    assert.match(text, /Last Update: Nov {2}1 00:00:00 2026 GMT/);
    assert.match(text, /Next Update: Dec {2}1 00:00:00 2026 GMT/);
    assert.match(text, /Serial Number: 020002/);
    assert.match(text, /CN = ARK-Genoa/);
  });

  it('keys and certificates are shared across processes through the cache', async () => {
    const again = await FakeAmd.create({ product: 'Genoa' });
    assert.deepEqual(again.arkDer, kits.Genoa.arkDer);
    const out = execFileSync(process.execPath, ['--import', 'tsx', join(__dirname, 'cli.ts'), 'sign', '--product', 'Genoa',
      '--report-data', '09'.repeat(64)], { encoding: 'utf8' });
    const rep = Buffer.from(out, 'base64');
    assert.equal(rep.length, REPORT_SIZE);
    assert.equal(verifyWithCert(rep, kits.Genoa.vcekDer()), true);
  });

  for (const name of ['chain', 'chain-milan', 'chain-turin'] as const) {
    it(`agent fixture ${name}: reports signed with its test VCEK key verify under its vcek.der`, () => {
      const f = loadAgentFixture(name);
      const rep = f.signReport({ reportData: Buffer.alloc(64, 1) });
      assert.equal(verifyWithCert(rep, f.vcekDer), true);
      assert.ok(rep.subarray(0x1a0, 0x1a0 + 8).equals(f.chipId.subarray(0, 8)));
    });
  }

  it('the independent checker accepts a genuine AMD report (sanity of the checker itself)', () => {
    const d = join(vectorsDir(), 'gosevguest-milan-v2');
    assert.equal(verifyReportSig(readFileSync(join(d, 'report.bin')), new X509Certificate(readFileSync(join(d, 'vcek.der'))).publicKey.export({ type: 'spki', format: 'der' })), true);
  });
});
