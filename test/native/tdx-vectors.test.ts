/**
 * parseTdxQuote / verifyTdxQuote / verifyTdxCollateral against the genuine Intel TDX vectors
 * (test/fixtures/tdx-vectors) at each vector's `verify_at`, and negatives derived from them (each
 * refused with its precise TDX_ERR_* code). Negatives that need re-signing (revoked PCK, another
 * root, re-signed body types) are in tdx-fake.test.ts.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseTdxQuote, peekTdxQuote, verifyTdxQuote, verifyTdxQuoteLean, verifyTdxCollateral, clearChainCache, tdxCacheSize, NativeError, NATIVE_CODES, catalogueCodeFor, type TdxVerifyInput } from '../../src/native/index.js';
import { TDX_VECTORS, tdxInput, signedJson, INTEL_ROOT_DER, rawJsonSpan } from '../support/tdx-vectors.js';

const hex = (b: Buffer): string => b.toString('hex');

async function expectTdx(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof NativeError, `not a NativeError: ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return true;
  });
}

function flip(b: Buffer, off: number, mask = 0x01): Buffer {
  const c = Buffer.from(b);
  c[off] = c[off]! ^ mask;
  return c;
}

describe('native TDX: genuine vectors', () => {
  beforeEach(() => clearChainCache());

  it('has the four vectors of PROVENANCE.md', () => {
    assert.deepEqual(TDX_VECTORS.map((v) => v.name), ['automata-00806f-v4-outofdate', 'dcapqvl-b0c06f-v4-uptodate', 'gotdx-90c06f-v5-uptodate', 'trustee-50806f-v4-debug']);
  });

  for (const v of TDX_VECTORS) {
    describe(v.name, () => {
      it('parses: framing, offsets and every TD report field equal expected.json', () => {
        const q = parseTdxQuote(v.quote);
        const e = v.expected;
        assert.equal(q.version, e.quote.version);
        assert.equal(q.bodyType, e.quote.body_type ?? 2);
        assert.equal(q.bodySize, e.quote.body_size);
        assert.equal(q.offsets.signedRegion.length, e.quote.signed_len);
        assert.equal(q.offsets.signatureData.length, e.quote.sig_data_len);
        assert.equal(q.trailingBytes, e.quote.trailing_bytes);
        assert.equal(q.qeAuthData.length, e.quote.qe_auth_data_len);
        assert.equal(v.quote.length, e.quote.quote_size);
        assert.equal(q.offsets.body.offset, q.version === 4 ? 0x30 : 0x36);
        assert.equal(q.offsets.trailing.offset + q.offsets.trailing.length, v.quote.length);
        const td = e.td;
        const b = q.body;
        assert.equal(hex(b.teeTcbSvn), td['tee_tcb_svn']);
        assert.equal(hex(b.mrSeam), td['mrseam']);
        assert.equal(hex(b.mrSignerSeam), td['mrsignerseam']);
        assert.equal(hex(b.seamAttributes), td['seam_attributes']);
        assert.equal(hex(b.tdAttributes), td['td_attributes']);
        assert.equal(b.tdAttributesValue, b.tdAttributes.readBigUInt64LE(0));
        assert.equal(hex(b.xfam), td['xfam']);
        assert.equal(hex(b.mrTd), td['mrtd']);
        assert.equal(hex(b.mrConfigId), td['mrconfigid']);
        assert.equal(hex(b.mrOwner), td['mrowner']);
        assert.equal(hex(b.mrOwnerConfig), td['mrownerconfig']);
        for (let i = 0; i < 4; i++) assert.equal(hex(b.rtmr[i]!), td[`rtmr${i}`]);
        assert.equal(hex(b.reportData), td['report_data']);
        if (q.bodyType === 3) {
          assert.equal(hex(b.teeTcbSvn2!), td['tee_tcb_svn2']);
          assert.equal(hex(b.mrServiceTd!), td['mrservicetd']);
        } else {
          assert.equal(b.teeTcbSvn2, undefined);
          assert.equal(b.mrServiceTd, undefined);
        }
        assert.equal(q.qeReport.isvSvn, e.qe.isvsvn);
        assert.equal(hex(q.qeReport.mrSigner), e.qe.mrsigner);
        assert.equal(q.qeReport.raw.length, 384);
        assert.equal(q.certificationDataType, 6);
        assert.equal(q.innerCertificationDataType, 5);
        assert.match(q.pckChain.toString('latin1'), /^-----BEGIN CERTIFICATE-----/);
      });

      it('verifies at verify_at: PCK chain, CRLs, QE report, binding, quote signature, tcbInfo and QE identity signatures', async () => {
        const r = await verifyTdxQuote(tdxInput(v));
        const ext = v.expected.pck.ext;
        assert.equal(r.pckChainCached, false);
        assert.equal(hex(r.pck.sgx.fmspc), ext.fmspc);
        assert.equal(hex(r.pck.sgx.pceId), ext.pceid);
        assert.equal(r.pck.sgx.pceSvn, ext.pcesvn);
        assert.deepEqual(r.pck.sgx.tcbComponents, ext.sgx_tcb_comp_svn);
        assert.equal(hex(r.pck.sgx.cpuSvn), ext.cpusvn);
        assert.equal(hex(r.pck.sgx.ppid), ext.ppid);
        assert.equal(r.pck.sgx.sgxType, ext.sgx_type);
        assert.equal(BigInt(`0x${r.pck.leaf.serialHex}`), BigInt(`0x${v.expected.pck.serial}`));
        assert.equal(r.pck.ca.subjectCN, v.expected.pck.issuer_cn);
        assert.equal(r.pck.caType, 'platform');
        assert.equal(r.pck.rootSha256.toString('hex'), '44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3');
        assert.equal(r.tcbInfo.signer.subjectCN, 'Intel SGX TCB Signing');
        assert.equal(r.qeIdentity.signer.subjectCN, 'Intel SGX TCB Signing');
        assert.deepEqual(r.checks.map((c) => c.name), ['quote_structure', 'pck_chain', 'revocation', 'qe_report_signature', 'attestation_key_binding', 'quote_signature', 'tcb_info_signature', 'qe_identity_signature']);
        assert.ok(r.checks.every((c) => c.ok));
        assert.equal(r.quote.version, v.expected.quote.version);
        const windows = v.expected['collateral_windows'] as Record<string, [string, string]>;
        assert.equal(r.crls.pck!.thisUpdate.toISOString().replace('.000', ''), windows['PCK CRL']![0]);
        assert.equal(r.crls.root!.nextUpdate.toISOString().replace('.000', ''), windows['Root CA CRL']![1]);
        // A second run is served from the caches and says so.
        const again = await verifyTdxQuote(tdxInput(v, { omitQuote: true }));
        assert.equal(again.pckChainCached, true);
        assert.equal(r.qeReportCached, false);
        assert.equal(again.qeReportCached, true);
        assert.equal((again as { quote?: unknown }).quote, undefined);
        assert.ok(tdxCacheSize() >= 5);
      });

      it('fails at today\'s date (collateral expired), cached or not', async () => {
        const now = Math.floor(Date.now() / 1000);
        await expectTdx(verifyTdxQuote(tdxInput(v, { at: now })), 'TDX_ERR_CRL_STALE');
        await verifyTdxQuote(tdxInput(v));
        await expectTdx(verifyTdxQuote(tdxInput(v, { at: now })), 'TDX_ERR_CRL_STALE');
        await expectTdx(verifyTdxQuote(tdxInput(v, { at: v.validWindow[1] + 86400 * 400 })), 'TDX_ERR_CRL_STALE');
      });

      it('peekTdxQuote reads FMSPC, PCE-ID and the CA type without verifying; the lean verification agrees', async () => {
        const p = peekTdxQuote(v.quote);
        const ext = v.expected.pck.ext;
        assert.equal(hex(p.sgx.fmspc), ext.fmspc);
        assert.equal(hex(p.sgx.pceId), ext.pceid);
        assert.equal(p.caType, 'platform');
        assert.equal(p.leaf.subjectCN, 'Intel SGX PCK Certificate');
        assert.equal(p.quote.version, v.expected.quote.version);
        const lean = await verifyTdxQuoteLean(tdxInput(v));
        assert.equal(lean.caType, 'platform');
        assert.equal(lean.pckSerialHex, p.leaf.serialHex);
        assert.deepEqual(lean.sgx.tcbComponents, ext.sgx_tcb_comp_svn);
        assert.equal(lean.pckCrlNextUpdate!.getTime() / 1000 > v.at, true);
        assert.equal((lean as unknown as { checks?: unknown }).checks, undefined);
        // Lean or not, a failure is the same failure.
        await expectTdx(verifyTdxQuoteLean(tdxInput(v, { quote: flip(v.quote, 0x1c) })), 'TDX_ERR_QUOTE_SIGNATURE');
      });

      it('collateral verifies alone (verifyTdxCollateral) at verify_at', async () => {
        const r = await verifyTdxCollateral({
          trustRoots: [INTEL_ROOT_DER],
          rootCrl: v.rootCrl,
          pckCrl: v.pckCrl,
          pckCrlChain: v.pckCrlChain,
          tcbInfo: signedJson(v.tcbInfoJson, 'tcbInfo', v.tcbInfoChain),
          qeIdentity: signedJson(v.qeIdentityJson, 'enclaveIdentity', v.qeIdentityChain),
          at: v.at,
        });
        assert.equal(r.pckCa!.subjectCN, 'Intel SGX PCK Platform CA');
        assert.equal(r.tcbInfo!.signer.subjectCN, 'Intel SGX TCB Signing');
        assert.ok(r.pckCrl!.nextUpdate.getTime() / 1000 > v.at);
      });
    });
  }
});

describe('native TDX: negatives derived from genuine vectors', () => {
  const v4 = TDX_VECTORS.find((v) => v.name === 'dcapqvl-b0c06f-v4-uptodate')!;
  const v5 = TDX_VECTORS.find((v) => v.name === 'gotdx-90c06f-v5-uptodate')!;
  const q4 = parseTdxQuote(v4.quote);
  const q5 = parseTdxQuote(v5.quote);
  const sig4 = q4.offsets.signatureData.offset;
  // Caches on: a negative must be refused even after the genuine input was verified once.
  before(async () => {
    clearChainCache();
    await verifyTdxQuote(tdxInput(v4));
    await verifyTdxQuote(tdxInput(v5));
  });
  const run = (quote: Buffer, over: Partial<TdxVerifyInput> = {}, v = v4): Promise<unknown> => verifyTdxQuote(tdxInput(v, { quote, ...over }));

  const cases: Array<[string, () => Promise<unknown>, string]> = [
    ['header: version 3', () => run(flip(v4.quote, 0x00, 0x07)), 'TDX_ERR_HEADER'],
    ['header: attestation key type 3 (P-384)', () => run(flip(v4.quote, 0x02, 0x01)), 'TDX_ERR_HEADER'],
    ['header: TEE type SGX (0)', () => run(flip(v4.quote, 0x04, 0x81)), 'TDX_ERR_HEADER'],
    ['header: QE vendor id', () => run(flip(v4.quote, 0x0c)), 'TDX_ERR_HEADER'],
    ['header: user data (signed)', () => run(flip(v4.quote, 0x1c)), 'TDX_ERR_QUOTE_SIGNATURE'],
    ['header: reserved byte 0x08 (signed)', () => run(flip(v4.quote, 0x08)), 'TDX_ERR_QUOTE_SIGNATURE'],
    ['body: MRTD', () => run(flip(v4.quote, 0x30 + 0x88)), 'TDX_ERR_QUOTE_SIGNATURE'],
    ['body: REPORTDATA last byte', () => run(flip(v4.quote, 0x30 + 0x247)), 'TDX_ERR_QUOTE_SIGNATURE'],
    ['v5 body: MRSERVICETD (TD 1.5 field)', () => run(flip(v5.quote, q5.offsets.body.offset + 0x258), {}, v5), 'TDX_ERR_QUOTE_SIGNATURE'],
    ['v5 body type 1 (SGX report)', () => run(flip(v5.quote, 0x30, 0x02), {}, v5), 'TDX_ERR_BODY_TYPE'],
    ['v5 body type 4 (TD 1.5 extended)', () => run(flip(v5.quote, 0x30, 0x07), {}, v5), 'TDX_ERR_BODY_TYPE'],
    ['v5 body type 2 with the 648-byte size', () => run(flip(v5.quote, 0x30, 0x01), {}, v5), 'TDX_ERR_BODY_TYPE'],
    ['quote signature r', () => run(flip(v4.quote, sig4 + 0x00)), 'TDX_ERR_QUOTE_SIGNATURE'],
    ['quote signature s', () => run(flip(v4.quote, sig4 + 0x3f)), 'TDX_ERR_QUOTE_SIGNATURE'],
    ['attestation key', () => run(flip(v4.quote, sig4 + 0x40)), 'TDX_ERR_QE_REPORT_DATA'],
    ['certification data type 5', () => run(flip(v4.quote, sig4 + 0x80, 0x03)), 'TDX_ERR_CERT_DATA'],
    ['certification data size', () => run(flip(v4.quote, sig4 + 0x82)), 'TDX_ERR_CERT_DATA'],
    ['QE report MRSIGNER', () => run(flip(v4.quote, q4.offsets.qeReport.offset + 0x80)), 'TDX_ERR_QE_REPORT_SIGNATURE'],
    ['QE report REPORTDATA', () => run(flip(v4.quote, q4.offsets.qeReport.offset + 0x140)), 'TDX_ERR_QE_REPORT_SIGNATURE'],
    ['QE report signature', () => run(flip(v4.quote, q4.offsets.qeReportSignature.offset + 5)), 'TDX_ERR_QE_REPORT_SIGNATURE'],
    ['QE auth data', () => run(flip(v4.quote, q4.offsets.qeAuthData.offset + 3)), 'TDX_ERR_QE_REPORT_DATA'],
    ['QE auth data size', () => run(flip(v4.quote, q4.offsets.qeAuthData.offset - 2)), 'TDX_ERR_CERT_DATA'],
    ['inner certification data type', () => run(flip(v4.quote, q4.offsets.pckChain.offset - 6, 0x01)), 'TDX_ERR_CERT_DATA'],
    ['PCK chain byte (base64 of the leaf signature)', () => run(flip(v4.quote, q4.offsets.pckChain.offset + 1200, 0x01)), 'TDX_ERR_CERT_PARSE'],
    ['PCK chain with 2 certificates', () => run(chainQuote(v4.quote, (pems) => pems.slice(0, 2).join('\n'))), 'TDX_ERR_CERT_DATA'],
    ['PCK chain root replaced by the PCK CA', () => run(chainQuote(v4.quote, (pems) => [pems[0], pems[1], pems[1]].join('\n'))), 'TDX_ERR_ROOT_NOT_PINNED'],
    ['PCK chain with junk between certificates', () => run(chainQuote(v4.quote, (pems) => pems.join('\nx\n'))), 'TDX_ERR_CERT_DATA'],
    ['non-zero trailing byte', () => run(flip(v4.quote, v4.quote.length - 1)), 'TDX_ERR_TRAILING'],
    ['non-zero byte appended', () => run(Buffer.concat([v5.quote, Buffer.from([0, 0, 7])]), {}, v5), 'TDX_ERR_TRAILING'],
    ['truncated inside the signature data', () => run(v4.quote.subarray(0, sig4 + 100)), 'TDX_ERR_QUOTE_SIZE'],
    ['truncated inside the body', () => run(v4.quote.subarray(0, 300)), 'TDX_ERR_QUOTE_SIZE'],
    ['header only', () => run(v4.quote.subarray(0, 47)), 'TDX_ERR_QUOTE_SIZE'],
    ['tcbInfo: one byte edited', () => run(v4.quote, { tcbInfo: editBody(v4, (s) => s.replace('"tcbEvaluationDataNumber":', '"tcbEvaluationDataNumber": ')) }), 'TDX_ERR_TCB_INFO_SIGNATURE'],
    ['tcbInfo: re-serialised (JSON.stringify of the parsed value)', () => run(v4.quote, { tcbInfo: reserialised(v4.tcbInfoJson, 'tcbInfo', v4.tcbInfoChain) }), 'TDX_ERR_TCB_INFO_SIGNATURE'],
    ['tcbInfo: signature flipped', () => run(v4.quote, { tcbInfo: { ...signedJson(v4.tcbInfoJson, 'tcbInfo', v4.tcbInfoChain), signature: flip(Buffer.from((JSON.parse(v4.tcbInfoJson.toString()) as { signature: string }).signature, 'hex'), 10) } }), 'TDX_ERR_TCB_INFO_SIGNATURE'],
    ['tcbInfo: the QE identity body under its signature', () => run(v4.quote, { tcbInfo: { ...signedJson(v4.tcbInfoJson, 'tcbInfo', v4.tcbInfoChain), bodyBytes: rawJsonSpan(v4.qeIdentityJson, 'enclaveIdentity') } }), 'TDX_ERR_TCB_INFO_SIGNATURE'],
    ['QE identity: re-serialised', () => run(v4.quote, { qeIdentity: reserialised(v4.qeIdentityJson, 'enclaveIdentity', v4.qeIdentityChain) }), 'TDX_ERR_QE_IDENTITY_SIGNATURE'],
    ['QE identity: one byte edited', () => run(v4.quote, { qeIdentity: { ...signedJson(v4.qeIdentityJson, 'enclaveIdentity', v4.qeIdentityChain), bodyBytes: flip(rawJsonSpan(v4.qeIdentityJson, 'enclaveIdentity'), 20, 0x20) } }), 'TDX_ERR_QE_IDENTITY_SIGNATURE'],
    ['tcbInfo chain: PCK CRL issuer chain (Platform CA is not the TCB signer)', () => run(v4.quote, { tcbInfo: signedJson(v4.tcbInfoJson, 'tcbInfo', v4.pckCrlChain) }), 'TDX_ERR_COLLATERAL_CHAIN'],
    ['tcbInfo chain: one certificate only', () => run(v4.quote, { tcbInfo: signedJson(v4.tcbInfoJson, 'tcbInfo', Buffer.from(v4.tcbInfoChain.toString().split(/(?<=-----END CERTIFICATE-----)/)[0]!)) }), 'TDX_ERR_COLLATERAL_CHAIN'],
    ['PCK CRL: the root CA CRL in its place', () => run(v4.quote, { pckCrl: v4.rootCrl }), 'TDX_ERR_CRL_SIGNATURE'],
    ['root CA CRL: the PCK CRL in its place', () => run(v4.quote, { rootCrl: v4.pckCrl }), 'TDX_ERR_CRL_SIGNATURE'],
    ['PCK CRL: a flipped signature byte', () => run(v4.quote, { pckCrl: flip(v4.pckCrl, v4.pckCrl.length - 3) }), 'TDX_ERR_CRL_SIGNATURE'],
    ['PCK CRL: not DER', () => run(v4.quote, { pckCrl: Buffer.from('not a crl') }), 'TDX_ERR_CRL_PARSE'],
    ['trust roots: the PCK Platform CA instead of the root', () => run(v4.quote, { trustRoots: [pemCert(v4.pckCrlChain, 0)] }), 'TDX_ERR_ROOT_NOT_PINNED'],
    ['trust roots: none', () => run(v4.quote, { trustRoots: [] }), 'TDX_ERR_ARGUMENT'],
    ['at: not a number', () => run(v4.quote, { at: 'now' as unknown as number }), 'TDX_ERR_ARGUMENT'],
    ['at: before the PCK certificate was issued', () => run(v4.quote, { at: Math.floor(Date.parse('2019-01-01T00:00:00Z') / 1000) }), 'TDX_ERR_CERT_EXPIRED'],
  ];
  for (const [name, f, code] of cases) {
    it(`${name} → ${code}`, () => expectTdx(f(), code));
  }

  it('parse failures are TEE_EVIDENCE_MALFORMED, crypto failures TEE_VERIFICATION_FAILED', () => {
    assert.equal(catalogueCodeFor('TDX_ERR_BODY_TYPE'), 'TEE_EVIDENCE_MALFORMED');
    assert.equal(catalogueCodeFor('TDX_ERR_TRAILING'), 'TEE_EVIDENCE_MALFORMED');
    assert.equal(catalogueCodeFor('TDX_ERR_QUOTE_SIGNATURE'), 'TEE_VERIFICATION_FAILED');
    assert.equal(catalogueCodeFor('TDX_ERR_REVOKED'), 'TEE_VERIFICATION_FAILED');
  });

  it('parseTdxQuote refuses non-Buffers and oversize input with TDX_ERR_ARGUMENT', () => {
    assert.throws(() => parseTdxQuote('x' as unknown as Buffer), (e: unknown) => e instanceof NativeError && e.code === 'TDX_ERR_ARGUMENT');
    assert.throws(() => parseTdxQuote(Buffer.alloc(65 * 1024)), (e: unknown) => e instanceof NativeError && e.code === 'TDX_ERR_ARGUMENT');
  });

  it('a zero-padded quote still verifies (padding is tolerated, not signed)', async () => {
    await verifyTdxQuote(tdxInput(v5, { quote: Buffer.concat([v5.quote, Buffer.alloc(3000)]) }));
  });
});

/** chainQuote rebuilds a quote with another PCK chain (sizes fixed up; signatures left as they are). */
function chainQuote(quote: Buffer, edit: (pems: string[]) => string): Buffer {
  const q = parseTdxQuote(quote);
  const pems = q.pckChain.toString('latin1').replace(/\0$/, '').match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g)!;
  const chain = Buffer.from(edit(pems), 'latin1');
  const sigOff = q.offsets.signatureData.offset;
  const head = Buffer.from(quote.subarray(0, q.offsets.pckChain.offset));
  const sigLen = q.offsets.pckChain.offset - sigOff + chain.length;
  head.writeUInt32LE(sigLen, sigOff - 4);
  head.writeUInt32LE(sigLen - 0x86, sigOff + 0x82);
  head.writeUInt32LE(chain.length, q.offsets.pckChain.offset - 4);
  return Buffer.concat([head, chain]);
}

function pemCert(chain: Buffer, i: number): Buffer {
  return Buffer.from(chain.toString().match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g)![i]!);
}

function editBody(v: (typeof TDX_VECTORS)[number], edit: (s: string) => string): { bodyBytes: Buffer; signature: Buffer; chain: Buffer } {
  const j = signedJson(v.tcbInfoJson, 'tcbInfo', v.tcbInfoChain);
  const edited = Buffer.from(edit(j.bodyBytes.toString('utf8')));
  assert.notDeepEqual(edited, j.bodyBytes);
  return { ...j, bodyBytes: edited };
}

function reserialised(body: Buffer, key: 'tcbInfo' | 'enclaveIdentity', chain: Buffer): { bodyBytes: Buffer; signature: Buffer; chain: Buffer } {
  const j = signedJson(body, key, chain);
  const again = Buffer.from(JSON.stringify(JSON.parse(j.bodyBytes.toString('utf8')), null, 1));
  assert.notDeepEqual(again, j.bodyBytes);
  return { ...j, bodyBytes: again };
}

describe('native TDX: codes', () => {
  const root = join(__dirname, '..', '..');
  const tdxCodes = Object.keys(NATIVE_CODES).filter((k) => k.startsWith('TDX_ERR_')).sort();

  it('native/core/errors.h and NATIVE_CODES name the same TDX_ERR_* codes', () => {
    const header = readFileSync(join(root, 'native', 'core', 'errors.h'), 'utf8');
    const inHeader = [...header.matchAll(/"(TDX_ERR_[A-Z0-9_]+)"/g)].map((m) => m[1]!).sort();
    assert.deepEqual(inHeader, tdxCodes);
  });

  it('docs/audit.md lists every TDX_ERR_* reason with the text of NATIVE_CODES', () => {
    const doc = readFileSync(join(root, 'docs', 'audit.md'), 'utf8');
    const rows = new Map([...doc.matchAll(/^\| `(TDX_ERR_[A-Z0-9_]+)` \| [^|]+ \| (.+) \|$/gm)].map((m) => [m[1]!, m[2]!]));
    assert.deepEqual([...rows.keys()].sort(), tdxCodes);
    for (const c of tdxCodes) assert.equal(rows.get(c), NATIVE_CODES[c as keyof typeof NATIVE_CODES], c);
  });
});
