/**
 * parseReport against the genuine vectors (every field equals expected.json) and derived
 * malformed reports (each rejected with its precise code).
 */
import assert from 'node:assert/strict';
import { parseReport, parseReportUnpacked, NativeError, catalogueCodeFor, nativeToTasError, NATIVE_CODES, type ParsedReport } from '../../src/native/index.js';
import { VECTORS, vector, mutate, expectCode } from './vectors.js';

const hex = (b: Buffer): string => b.toString('hex');
const tcbRaw = (b: Buffer): string => '0x' + b.readBigUInt64LE(0).toString(16).padStart(16, '0');
const ver = (v: { major: number; minor: number; build: number }): string => `${v.major}.${v.minor}.${v.build}`;

describe('native parseReport', () => {
  for (const v of VECTORS) {
    it(`${v.name}: every field equals expected.json`, () => {
      const r: ParsedReport = parseReport(v.report);
      const e = v.expected;
      assert.equal(r.version, e['report_version']);
      assert.equal(r.guestSvn, e['guest_svn']);
      assert.equal(r.policy, BigInt(e['policy'] as string));
      assert.equal(hex(r.familyId), e['family_id']);
      assert.equal(hex(r.imageId), e['image_id']);
      assert.equal(r.vmpl, e['vmpl']);
      assert.equal(r.signatureAlgo, e['signature_algo']);
      assert.equal(tcbRaw(r.currentTcb), e['current_tcb_raw']);
      assert.equal(r.platformInfo, BigInt(e['platform_info'] as string));
      assert.equal(r.signerInfo, e['signer_info']);
      const signer = e['signer'] as { author_key_en: number; mask_chip_key: number; signing_key: string };
      assert.equal(r.authorKeyEn, signer.author_key_en === 1);
      assert.equal(r.maskChipKey, signer.mask_chip_key === 1);
      assert.equal(r.signingKey, { VCEK: 0, VLEK: 1 }[e.signing_key]);
      assert.equal(hex(r.reportData), e['report_data']);
      assert.equal(hex(r.measurement), e['measurement']);
      assert.equal(hex(r.hostData), e['host_data']);
      assert.equal(hex(r.idKeyDigest), e['id_key_digest']);
      assert.equal(hex(r.authorKeyDigest), e['author_key_digest']);
      assert.equal(hex(r.reportId), e['report_id']);
      assert.equal(hex(r.reportIdMa), e['report_id_ma']);
      assert.equal(tcbRaw(r.reportedTcb), e['reported_tcb_raw']);
      if (r.version >= 3) {
        assert.deepEqual(r.cpuid, { family: e['cpuid_fam_id'], model: e['cpuid_mod_id'], stepping: e['cpuid_step'] });
      } else {
        assert.equal(r.cpuid, undefined);
        assert.equal(e['cpuid_fam_id'], undefined);
      }
      assert.equal(hex(r.chipId), e['chip_id']);
      assert.equal(tcbRaw(r.committedTcb), e['committed_tcb_raw']);
      assert.equal(ver(r.currentVersion), e['current_version']);
      assert.equal(ver(r.committedVersion), e['committed_version']);
      assert.equal(tcbRaw(r.launchTcb), e['launch_tcb_raw']);
      if (r.version >= 5) {
        assert.equal(r.launchMitVector, BigInt(e['launch_mit_vector'] as number));
        assert.equal(r.currentMitVector, BigInt(e['current_mit_vector'] as number));
      } else {
        assert.equal(r.launchMitVector, undefined);
        assert.equal(e['launch_mit_vector'], undefined);
      }
      assert.deepEqual(e['nonzero_reserved'], []);
    });
  }

  const base = vector('mstav-milan-v3').report; // v3
  const v2 = vector('gosevguest-milan-v2').report;
  const v5 = vector('mstav-turin-v5').report;

  it('the packed form (byte fields as views of one Buffer) equals the one-Buffer-per-field form, members in the same order, views independent', () => {
    for (const v of VECTORS) {
      const packed = parseReport(v.report);
      const unpacked = parseReportUnpacked(v.report);
      assert.deepEqual(packed, unpacked, v.name);
      assert.deepEqual(Object.keys(packed), Object.keys(unpacked), `${v.name}: member order`);
      for (const [k, x] of Object.entries(packed)) {
        if (!Buffer.isBuffer(x)) continue;
        assert.equal(x.length, (unpacked as unknown as Record<string, Buffer>)[k]!.length, `${v.name}: ${k} length`);
      }
      // A view covers its field only: changing one leaves every other field and the input alone.
      const before = Buffer.from(v.report);
      packed.chipId.fill(0xff);
      assert.deepEqual(packed.committedTcb, unpacked.committedTcb);
      assert.deepEqual(packed.reportedTcb, unpacked.reportedTcb);
      assert.ok(v.report.equals(before), 'the caller\'s report is not shared');
    }
  });

  it('rejects 1183- and 1185-byte reports and an empty one (SNP_ERR_REPORT_SIZE)', async () => {
    await expectCode(() => parseReport(base.subarray(0, 1183)), 'SNP_ERR_REPORT_SIZE');
    await expectCode(() => parseReport(Buffer.concat([base, Buffer.alloc(1)])), 'SNP_ERR_REPORT_SIZE');
    await expectCode(() => parseReport(Buffer.alloc(0)), 'SNP_ERR_REPORT_SIZE');
  });

  it('rejects versions 0, 1, 6 and 0xFFFFFFFF and parses 4 like 3 (SNP_ERR_REPORT_VERSION)', async () => {
    for (const version of [0, 1, 6, 0xffffffff]) {
      await expectCode(() => parseReport(mutate(base, (b) => b.writeUInt32LE(version, 0))), 'SNP_ERR_REPORT_VERSION');
    }
    const r4 = parseReport(mutate(base, (b) => b.writeUInt32LE(4, 0)));
    assert.equal(r4.version, 4);
    assert.deepEqual(r4.cpuid, parseReport(base).cpuid);
    assert.equal(r4.launchMitVector, undefined);
  });

  it('rejects SIGNATURE_ALGO other than 1 (SNP_ERR_SIGNATURE_ALGO)', async () => {
    for (const algo of [0, 2, 0x100]) {
      await expectCode(() => parseReport(mutate(base, (b) => b.writeUInt32LE(algo, 0x34))), 'SNP_ERR_SIGNATURE_ALGO');
    }
  });

  it('rejects every must-be-zero area (SNP_ERR_MBZ)', async () => {
    const cases: Array<[string, Buffer, number]> = [
      ['reserved 0x04C', base, 0x04c],
      ['reserved 0x04F', base, 0x04f],
      ['v3 reserved 0x18B', base, 0x18b],
      ['v3 reserved 0x19F', base, 0x19f],
      ['v2 reserved 0x188 (CPUID slot)', v2, 0x188],
      ['v2 reserved 0x19F', v2, 0x19f],
      ['reserved 0x1EB', base, 0x1eb],
      ['reserved 0x1EF', base, 0x1ef],
      ['v3 reserved 0x1F8 (mit vector slot)', base, 0x1f8],
      ['v3 reserved 0x29F', base, 0x29f],
      ['v5 reserved 0x208', v5, 0x208],
      ['v5 reserved 0x29F', v5, 0x29f],
      ['R padding byte 48', base, 0x2a0 + 48],
      ['R padding byte 71', base, 0x2a0 + 71],
      ['S padding byte 48', base, 0x2e8 + 48],
      ['S padding byte 71', base, 0x2e8 + 71],
      ['unsigned tail 0x330', base, 0x330],
      ['unsigned tail 0x49F', base, 0x49f],
    ];
    for (const [what, src, off] of cases) {
      await expectCode(() => parseReport(mutate(src, (b) => (b[off] = 0x01))), 'SNP_ERR_MBZ').catch((e: Error) => {
        throw new Error(`${what}: ${e.message}`);
      });
    }
    // signer info bits 31:5
    await expectCode(() => parseReport(mutate(base, (b) => b.writeUInt32LE(1 << 5, 0x48))), 'SNP_ERR_MBZ');
    await expectCode(() => parseReport(mutate(base, (b) => b.writeUInt32LE(0x80000000, 0x48))), 'SNP_ERR_MBZ');
  });

  it('v5 mitigation vectors are fields, not reserved', () => {
    const r = parseReport(mutate(v5, (b) => b.writeBigUInt64LE(0x1234n, 0x200)));
    assert.equal(r.currentMitVector, 0x1234n);
  });

  it('rejects reserved SIGNING_KEY values 2..6 and decodes 7 (unsigned)', async () => {
    for (const k of [2, 3, 4, 5, 6]) {
      await expectCode(() => parseReport(mutate(base, (b) => b.writeUInt32LE(k << 2, 0x48))), 'SNP_ERR_SIGNING_KEY');
    }
    assert.equal(parseReport(mutate(base, (b) => b.writeUInt32LE(7 << 2, 0x48))).signingKey, 7);
  });

  it('enforces POLICY bit 17 = 1 and bits 63:26 = 0; PLATFORM_INFO is lenient', async () => {
    const policy = parseReport(base).policy;
    await expectCode(() => parseReport(mutate(base, (b) => b.writeBigUInt64LE(policy & ~(1n << 17n), 0x08))), 'SNP_ERR_POLICY_BIT17');
    await expectCode(() => parseReport(mutate(base, (b) => b.writeBigUInt64LE(policy | (1n << 26n), 0x08))), 'SNP_ERR_POLICY_RESERVED');
    await expectCode(() => parseReport(mutate(base, (b) => b.writeBigUInt64LE(policy | (1n << 63n), 0x08))), 'SNP_ERR_POLICY_RESERVED');
    assert.equal(parseReport(mutate(base, (b) => b.writeBigUInt64LE(policy | (1n << 25n), 0x08))).policy, policy | (1n << 25n));
    assert.equal(parseReport(mutate(base, (b) => b.writeBigUInt64LE(0xffffffffffffffffn, 0x40))).platformInfo, 0xffffffffffffffffn);
  });

  it('rejects non-Buffer input with SNP_ERR_ARGUMENT and throws NativeError', () => {
    assert.throws(() => parseReport('x' as unknown as Buffer), (e: unknown) => e instanceof NativeError && e.code === 'SNP_ERR_ARGUMENT');
  });

  it('maps codes onto the error catalogue (malformed vs verification failed)', () => {
    assert.equal(catalogueCodeFor('SNP_ERR_REPORT_SIZE'), 'TEE_EVIDENCE_MALFORMED');
    assert.equal(catalogueCodeFor('SNP_ERR_MBZ'), 'TEE_EVIDENCE_MALFORMED');
    assert.equal(catalogueCodeFor('SNP_ERR_REPORT_SIGNATURE'), 'TEE_VERIFICATION_FAILED');
    assert.equal(catalogueCodeFor('SNP_ERR_CRL_STALE'), 'TEE_VERIFICATION_FAILED');
    const t = nativeToTasError(new NativeError('SNP_ERR_CHAIN', 'x'));
    assert.equal(t.code, 'TEE_VERIFICATION_FAILED');
    assert.equal(t.reason, 'SNP_ERR_CHAIN');
    // The code is the reason; the detail does not repeat it (log lines and `reason: detail` texts
    // read "SNP_ERR_CHAIN: SNP_ERR_CHAIN: ..." otherwise).
    assert.equal(t.detail, 'x');
    for (const code of Object.keys(NATIVE_CODES)) assert.match(code, /^(SNP|TDX)_ERR_[A-Z0-9_]+$/);
  });
});
