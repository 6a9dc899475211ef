/**
 * The addon against AMD-shaped chains minted by the fake AMD signer (test/support/fake-amd):
 * CRL handling end to end (fresh, revoked, stale, future, wrong signer) and certificate/extension
 * shapes that genuine vectors cannot provide (each rejected with its precise code).
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { FakeAmd, toPem } from '../support/fake-amd/index.js';
import { ext } from '../support/fake-amd/x509.js';
import { verify, verifyCrl, parseVek, clearChainCache, type VerifyInput } from '../../src/native/index.js';
import { expectCode } from './vectors.js';

const AT = Math.floor(Date.parse('2026-06-01T00:00:00Z') / 1000);
const day = 86400;
const date = (s: number): Date => new Date(s * 1000);

describe('native addon with fake AMD chains (CRL, extensions, shapes)', function () {
  this.timeout(120_000); // the first run generates the fake CA keys (cached afterwards)
  let milan: FakeAmd;
  let genoa: FakeAmd;
  let turin: FakeAmd;

  before(async () => {
    ({ Milan: milan, Genoa: genoa, Turin: turin } = await FakeAmd.all());
  });
  beforeEach(() => clearChainCache());

  const vcekInput = (kit: FakeAmd, over: Partial<VerifyInput> = {}): VerifyInput => ({
    report: kit.signReport({}),
    leaf: kit.vcekDer(),
    intermediate: kit.askDer,
    anchors: [kit.arkDer],
    product: kit.product,
    kind: 'VCEK',
    atSeconds: AT,
    ...over,
  });

  it('verifies fake chains for all products and both signer kinds', async () => {
    for (const kit of [milan, genoa, turin]) {
      const r = await verify(vcekInput(kit));
      assert.equal(r.vek.kind, 'VCEK');
      const vlek = await verify({ ...vcekInput(kit), report: kit.signReport({ signingKey: 'VLEK', chipId: Buffer.alloc(64) }), leaf: kit.vlekDer(), intermediate: kit.asvkDer, kind: 'VLEK' });
      assert.equal(vlek.vek.cspId, 'CN=fake-csp.example');
    }
  });

  it("the benchmark's reused-nonce signer makes reports the addon verifies (same r, fresh s) and no others", async () => {
    const sign = genoa.benchReportSigner();
    const a = sign({ reportData: Buffer.alloc(64, 1) });
    const b = sign({ reportData: Buffer.alloc(64, 2) });
    // One nonce for every signature: r repeats, s follows the message.
    assert.deepEqual(a.subarray(0x2a0, 0x2e8), b.subarray(0x2a0, 0x2e8));
    assert.notDeepEqual(a.subarray(0x2e8, 0x330), b.subarray(0x2e8, 0x330));
    for (const rep of [a, b]) assert.equal((await verify(vcekInput(genoa, { report: rep }))).report.reportData.equals(rep.subarray(0x50, 0x90)), true);
    // A changed signed byte, or another message's s, is refused as a bad signature.
    const tampered = Buffer.from(a);
    tampered[0x50]! ^= 1;
    await expectCode(verify(vcekInput(genoa, { report: tampered })), 'SNP_ERR_REPORT_SIGNATURE');
    const swapped = Buffer.from(a);
    b.copy(swapped, 0x2e8, 0x2e8, 0x330);
    await expectCode(verify(vcekInput(genoa, { report: swapped })), 'SNP_ERR_REPORT_SIGNATURE');
  });

  it('a fresh ARK-signed CRL passes and reports its window', async () => {
    const crl = milan.crlDer({ thisUpdate: date(AT - day), nextUpdate: date(AT + 6 * day) });
    const r = await verify(vcekInput(milan, { crl }));
    assert.equal(r.crl?.thisUpdate.getTime(), (AT - day) * 1000);
    assert.equal(r.crl?.nextUpdate.getTime(), (AT + 6 * day) * 1000);
    assert.ok(r.checks.some((c) => c.name === 'crl' && c.ok));
    // The per-request form (the addon's flat result) carries the same CRL dates and checks.
    const lean = await verify(vcekInput(milan, { crl, omitReport: true }));
    assert.deepEqual(lean.crl, r.crl);
    assert.deepEqual(lean.checks, r.checks);
    assert.deepEqual((await verify(vcekInput(milan, { crl, omitReport: true, omitChecks: true }))).crl, r.crl);
    // PEM armour works as well, and the default skew is 300 s.
    const pem = Buffer.from(toPem(crl, 'X509 CRL'));
    assert.equal((await verify(vcekInput(milan, { crl: pem }))).crl?.nextUpdate.getTime(), (AT + 6 * day) * 1000);
    const edge = milan.crlDer({ thisUpdate: date(AT - day), nextUpdate: date(AT - 299) });
    assert.ok((await verify(vcekInput(milan, { crl: edge }))).crl);
    await expectCode(verify(vcekInput(milan, { crl: milan.crlDer({ thisUpdate: date(AT - day), nextUpdate: date(AT - 300) }) })), 'SNP_ERR_CRL_STALE');
  });

  it('a revoked ASK/ASVK fails with SNP_ERR_REVOKED', async () => {
    const askSerial = BigInt('0x' + (await verify(vcekInput(genoa))).intermediateSerialHex);
    const crl = genoa.crlDer({ thisUpdate: date(AT - day), nextUpdate: date(AT + day), revoked: [askSerial, 0x77] });
    await expectCode(verify(vcekInput(genoa, { crl })), 'SNP_ERR_REVOKED');
    const direct = await verifyCrl(crl, genoa.arkDer, AT, 300, [askSerial.toString(16).toUpperCase(), '77', '78']);
    assert.deepEqual(direct.revoked, [askSerial.toString(16), '77']);
  });

  it('stale and future CRLs fail with SNP_ERR_CRL_STALE (skew honoured at the edges)', async () => {
    const crl = turin.crlDer({ thisUpdate: date(AT - 7 * day), nextUpdate: date(AT - 1000) });
    await expectCode(verify(vcekInput(turin, { crl })), 'SNP_ERR_CRL_STALE');
    await expectCode(verify(vcekInput(turin, { crl, crlSkewSeconds: 1000 })), 'SNP_ERR_CRL_STALE'); // now-skew == nextUpdate
    assert.ok(await verify(vcekInput(turin, { crl, crlSkewSeconds: 1001 })));
    const future = turin.crlDer({ thisUpdate: date(AT + 600), nextUpdate: date(AT + 7 * day) });
    await expectCode(verifyCrl(future, turin.arkDer, AT, 300, []), 'SNP_ERR_CRL_STALE');
    assert.deepEqual((await verifyCrl(future, turin.arkDer, AT, 600, [])).revoked, []);
  });

  it('a CRL signed by anyone but the ARK fails with SNP_ERR_CRL_SIGNATURE', async () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const forged = milan.crlDer({ thisUpdate: date(AT - day), nextUpdate: date(AT + day), signer: privateKey });
    await expectCode(verify(vcekInput(milan, { crl: forged })), 'SNP_ERR_CRL_SIGNATURE');
    const askSigned = milan.crlDer({ thisUpdate: date(AT - day), nextUpdate: date(AT + day), signer: milan.askKey });
    await expectCode(verifyCrl(askSigned, milan.arkDer, AT, 300, []), 'SNP_ERR_CRL_SIGNATURE');
    const genoaCrl = genoa.crlDer({ thisUpdate: date(AT - day), nextUpdate: date(AT + day) });
    await expectCode(verify(vcekInput(milan, { crl: genoaCrl })), 'SNP_ERR_CRL_SIGNATURE');
    await expectCode(verifyCrl(Buffer.from('junk'), milan.arkDer, AT, 300, []), 'SNP_ERR_CRL_PARSE');
    await expectCode(verifyCrl(genoaCrl, genoa.arkDer, AT, 300, ['xyz']), 'SNP_ERR_ARGUMENT');
  });

  it('the report must be signed by the certified key (SNP_ERR_REPORT_SIGNATURE)', async () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
    await expectCode(verify(vcekInput(milan, { report: milan.signReport({}, privateKey) })), 'SNP_ERR_REPORT_SIGNATURE');
  });

  type Kit = () => FakeAmd;
  const M: Kit = () => milan;
  const G: Kit = () => genoa;
  const T: Kit = () => turin;
  const extCases: Array<[string, Kit, 'VCEK' | 'VLEK', (k: FakeAmd) => Buffer, string]> = [
    ['VCEK without hwID', M, 'VCEK', (k) => k.vcekDer({ hwId: null }), 'SNP_ERR_EXT'],
    ['VCEK with a cspID too', M, 'VCEK', (k) => k.vcekDer({ cspId: 'CN=x' }), 'SNP_ERR_EXT'],
    ['VLEK without cspID', M, 'VLEK', (k) => k.vlekDer({ cspId: null }), 'SNP_ERR_EXT'],
    ['no productName', G, 'VCEK', (k) => k.vcekDer({ productName: null }), 'SNP_ERR_EXT'],
    ['structVersion 2', G, 'VCEK', (k) => k.vcekDer({ structVersion: 2 }), 'SNP_ERR_EXT'],
    ['structVersion 0 with fmcSPL (Turin layout)', T, 'VCEK', (k) => k.vcekDer({ structVersion: 0 }), 'SNP_ERR_EXT'],
    ['ucodeSPL 300 (out of range)', M, 'VCEK', (k) => k.vcekDer({ tcb: { bootloader: 4, tee: 0, snp: 24, microcode: 300 } }), 'SNP_ERR_EXT'],
    ['duplicate blSPL', M, 'VCEK', (k) => k.vcekDer({ extraExtensions: [ext.kdsInteger('3.1', 4)] }), 'SNP_ERR_EXT'],
    ['unknown AMD extension 3704.1.99', M, 'VCEK', (k) => k.vcekDer({ extraExtensions: [ext.kdsInteger('99', 1)] }), 'SNP_ERR_EXT'],
    ['unknown AMD arc 3704.2.1', M, 'VCEK', (k) => k.vcekDer({ extraExtensions: [{ oid: '1.3.6.1.4.1.3704.2.1', value: Buffer.from([2, 1, 0]) }] }), 'SNP_ERR_EXT'],
    ['hwID of 65 bytes', M, 'VCEK', (k) => k.vcekDer({ hwId: Buffer.alloc(65, 7) }), 'SNP_ERR_EXT'],
    ['SPL that is an IA5String', M, 'VCEK', (k) => k.vcekDer({ extraExtensions: [ext.kdsIa5('3.9', '1')] }), 'SNP_ERR_EXT'],
    ['leaf serial 1', M, 'VCEK', (k) => k.vcekDer({ serial: 1 }), 'SNP_ERR_CERT_SHAPE'],
    ['VCEK named SEV-VLEK', M, 'VCEK', (k) => k.vcekDer({ subjectCN: 'SEV-VLEK' }), 'SNP_ERR_SIGNER_KIND'],
    ['leaf CN neither VCEK nor VLEK', M, 'VCEK', (k) => k.vcekDer({ subjectCN: 'SEV-ASK' }), 'SNP_ERR_CERT_DN'],
    ['P-256 leaf key', M, 'VCEK', (k) => k.vcekDer({ key: generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey }), 'SNP_ERR_CERT_SHAPE'],
  ];
  for (const [what, kitOf, kind, make, code] of extCases) {
    it(`parseVek and verify reject ${what} (${code})`, async () => {
      const kit = kitOf();
      const leaf = make(kit);
      await expectCode(() => parseVek(leaf), code);
      const over: Partial<VerifyInput> = kind === 'VLEK'
        ? { leaf, intermediate: kit.asvkDer, kind, report: kit.signReport({ signingKey: 'VLEK', chipId: Buffer.alloc(64) }) }
        : { leaf };
      await expectCode(verify(vcekInput(kit, over)), code);
    });
  }

  it('hwID wrapped in an OCTET STRING is tolerated; a raw hwID starting 04 40 stays raw', () => {
    const chip = Buffer.alloc(64, 0x5a);
    const wrapped = parseVek(milan.vcekDer({ hwId: Buffer.concat([Buffer.from([0x04, 0x40]), chip]) }));
    assert.deepEqual(wrapped.hwId, chip);
    const tricky = Buffer.concat([Buffer.from([0x04, 0x40]), Buffer.alloc(62, 1)]);
    assert.deepEqual(parseVek(milan.vcekDer({ hwId: tricky })).hwId, tricky);
    assert.equal(parseVek(turin.vcekDer()).hwId?.length, 8);
  });

  it('leaf expiry and not-yet-valid are SNP_ERR_CERT_EXPIRED', async () => {
    const leaf = milan.vcekDer({ notBefore: date(AT - 10 * day), notAfter: date(AT - day) });
    await expectCode(verify(vcekInput(milan, { leaf })), 'SNP_ERR_CERT_EXPIRED');
    const early = milan.vcekDer({ notBefore: date(AT + day), notAfter: date(AT + 10 * day) });
    await expectCode(verify(vcekInput(milan, { leaf: early })), 'SNP_ERR_CERT_EXPIRED');
  });

  it('a VCEK issued directly by the ARK is refused (SNP_ERR_CHAIN)', async () => {
    await expectCode(verify(vcekInput(milan, { leaf: milan.vcekDer({ issuer: 'ARK' }) })), 'SNP_ERR_CHAIN');
  });
});
