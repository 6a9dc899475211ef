/**
 * Every genuine AMD-signed vector verifies against the pinned roots and yields exactly the claims
 * of expected.json (computed by two independent implementations); negatives derived from the
 * genuine vectors fail with precise reasons.
 */
import { strict as assert } from 'node:assert';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { SnpVerifier, type Claims, type Product } from '../../src/snp';
import { TasError } from '../../src/errors';

const VEC = join(__dirname, '../fixtures/snp-vectors');
const ROOTS = join(__dirname, '../fixtures/amd-roots');
type Expected = Record<string, Record<string, unknown> & {
  product: Product; report_version: number; vek_file: string; vek_not_before: string; vek_not_after: string;
  checks: Record<string, string>;
}>;
const expected = JSON.parse(readFileSync(join(VEC, 'expected.json'), 'utf8')) as Expected;

/** midpoint of the VEK validity: a pinned time at which the (possibly expired) certificate is valid. */
const midpoint = (e: Expected[string]): Date => new Date((Date.parse(e.vek_not_before) + Date.parse(e.vek_not_after)) / 2);

function load(name: string): { report: Buffer; vek: Buffer; intermediate: Buffer } {
  const d = join(VEC, name);
  const e = expected[name]!;
  const inter = existsSync(join(d, 'ask.pem')) ? join(d, 'ask.pem') : join(d, 'asvk.pem');
  return { report: readFileSync(join(d, 'report.bin')), vek: readFileSync(join(d, e.vek_file)), intermediate: readFileSync(inter) };
}

const bitsOf = (hex: string): bigint => BigInt(hex);
const version = (s: string): { major: number; minor: number; build: number } => {
  const [major, minor, build] = s.split('.').map(Number) as [number, number, number];
  return { major, minor, build };
};
const tcb = (t: Record<string, unknown>): Record<string, number> => {
  const o: Record<string, number> = { bootloader: t['bootloader'] as number, tee: t['tee'] as number, snp: t['snp'] as number, microcode: t['microcode'] as number };
  if (t['fmc'] !== undefined) o['fmc'] = t['fmc'] as number;
  return o;
};

/** expectedClaims maps expected.json's independent decoding onto PROTOCOL.md §3.4 claim names. */
function expectedClaims(e: Expected[string]): Claims {
  const pb = e['policy_bits'] as Record<string, number>;
  const pl = e['platform_bits'] as Record<string, number>;
  const sg = e['signer'] as Record<string, unknown>;
  const ext = e['vek_extensions'] as Record<string, unknown>;
  const kind = sg['signing_key'] as 'VCEK' | 'VLEK';
  const num = (hex: string): number | bigint => {
    const b = bitsOf(hex);
    return b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b;
  };
  const c: Claims = {
    version: e.report_version,
    guest_svn: e['guest_svn'] as number,
    policy: {
      abi_minor: pb['abi_minor']!, abi_major: pb['abi_major']!, smt_allowed: pb['smt'] === 1, migrate_ma_allowed: pb['migrate_ma'] === 1,
      debug_allowed: pb['debug'] === 1, single_socket_required: pb['single_socket'] === 1, cxl_allowed: pb['cxl_allow'] === 1,
      mem_aes_256_xts: pb['mem_aes_256_xts'] === 1, rapl_dis: pb['rapl_dis'] === 1, ciphertext_hiding: pb['ciphertext_hiding'] === 1,
      page_swap_disable: pb['page_swap_disable'] === 1,
    },
    family_id: e['family_id'] as string,
    image_id: e['image_id'] as string,
    vmpl: e['vmpl'] as number,
    signature_algo: e['signature_algo'] as number,
    current_tcb: tcb(e['current_tcb'] as Record<string, unknown>) as never,
    reported_tcb: tcb(e['reported_tcb'] as Record<string, unknown>) as never,
    committed_tcb: tcb(e['committed_tcb'] as Record<string, unknown>) as never,
    launch_tcb: tcb(e['launch_tcb'] as Record<string, unknown>) as never,
    platform_info: {
      smt_enabled: pl['smt_en'] === 1, tsme_enabled: pl['tsme_en'] === 1, ecc_enabled: pl['ecc_en'] === 1, rapl_disabled: pl['rapl_dis'] === 1,
      ciphertext_hiding_enabled: pl['ciphertext_hiding_en'] === 1, alias_check_complete: pl['alias_check_complete'] === 1, tio_enabled: pl['tio_en'] === 1,
    },
    key_info: { author_key_en: sg['author_key_en'] === 1, mask_chip_key: sg['mask_chip_key'] === 1, signing_key: kind === 'VCEK' ? 0 : 1 },
    report_data: e['report_data'] as string,
    measurement: e['measurement'] as string,
    host_data: e['host_data'] as string,
    id_key_digest: e['id_key_digest'] as string,
    author_key_digest: e['author_key_digest'] as string,
    report_id: e['report_id'] as string,
    report_id_ma: e['report_id_ma'] as string,
    // A masked CHIP_ID is never a claim of zeros (PROTOCOL.md §3.4): the VCEK hwID in its layout, or absent (VLEK).
    ...(!/^0+$/.test(e['chip_id'] as string)
      ? { chip_id: e['chip_id'] as string }
      : ext['hwID'] !== undefined ? { chip_id: (ext['hwID'] as string).padEnd(128, '0') } : {}),
    current_version: version(e['current_version'] as string),
    committed_version: version(e['committed_version'] as string),
    product: e.product,
    signer: {
      kind,
      ...(ext['cspID'] !== undefined ? { csp_id: ext['cspID'] as string } : {}),
      ...(ext['hwID'] !== undefined ? { hw_id: ext['hwID'] as string } : {}),
    },
    chip_id_masked: /^0+$/.test(e['chip_id'] as string),
    firmware_provisional: e['current_tcb_raw'] !== e['committed_tcb_raw'] || e['current_version'] !== e['committed_version'],
    policy_raw: num(e['policy'] as string),
    platform_info_raw: num(e['platform_info'] as string),
  };
  if (e['cpuid_fam_id'] !== undefined) c.cpuid = { family_id: e['cpuid_fam_id'] as number, model_id: e['cpuid_mod_id'] as number, stepping: e['cpuid_step'] as number };
  if (e['launch_mit_vector'] !== undefined) c.launch_mit_vector = e['launch_mit_vector'] as number;
  if (e['current_mit_vector'] !== undefined) c.current_mit_vector = e['current_mit_vector'] as number;
  return c;
}

async function reason(p: Promise<unknown>): Promise<{ code: string; reason: string }> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof TasError, `expected TasError, got ${String(e)}`);
    return { code: e.code, reason: e.reason };
  }
  assert.fail('expected a rejection');
}

describe('snp: genuine AMD vectors', () => {
  const names = Object.keys(expected);
  it('has the six published vectors', () => assert.equal(names.length, 6));

  for (const name of names) {
    const e = expected[name]!;
    it(`${name}: verifies against the pinned roots with the claims of expected.json`, async () => {
      const ev = load(name);
      const v = new SnpVerifier({ v2Product: e.report_version === 2 ? e.product : undefined });
      const res = await v.verify({ report: ev.report, vek: ev.vek, at: midpoint(e) });
      assert.equal(res.product, e.product);
      assert.equal(res.productSource, e['product_source'] === 'cpuid' ? 'cpuid' : 'config');
      assert.equal(res.anchorIsTestRoot, false);
      assert.deepEqual(res.claims, expectedClaims(e));
      const byName = new Map(res.checks.map((c) => [c.name, c]));
      for (const n of ['report_signature', 'tcb_matches_cert', 'chip_id_matches_hwid', 'cert_tcb_le_current', 'product']) {
        assert.equal(byName.get(n)?.ok, true, n);
      }
      if (e.checks['chip_id_matches_hwid'] === 'SKIP') assert.match(byName.get('chip_id_matches_hwid')!.detail, /not applicable|skipped/);
      // The vector's own ASK/ASVK (byte-identical to the pinned ones) gives the same result.
      const again = await v.verify({ report: ev.report, vek: ev.vek, intermediate: ev.intermediate, at: midpoint(e) });
      assert.deepEqual(again.claims, res.claims);
      // The daemon's form without the passed checks: the same verdict, claims and product, no list.
      const lean = await v.verify({ report: ev.report, vek: ev.vek, at: midpoint(e), withoutPassedChecks: true });
      assert.deepEqual(lean.claims, res.claims);
      assert.equal(lean.product, res.product);
      assert.deepEqual(lean.checks, []);
    });
  }

  it('without the passed checks a failure still names its one failing check', async () => {
    const ev = load('mstav-genoa-v3');
    const res = await new SnpVerifier().check({ report: ev.report, vek: load('mstav-milan-v3').vek, at: new Date('2026-06-01T00:00:00Z'), withoutPassedChecks: true });
    assert.equal(res.valid, false);
    assert.equal(res.checks.length, 1);
    assert.equal(res.checks[0]!.ok, false);
    assert.match(res.checks[0]!.detail, /^SNP_ERR_/);
  });

  it('v2 report without TAS_SNP_V2_PRODUCT is refused (SNP_ERR_V2_PRODUCT_UNSET)', async () => {
    const ev = load('gosevguest-milan-v2');
    const r = await reason(new SnpVerifier().verify({ report: ev.report, vek: ev.vek, at: midpoint(expected['gosevguest-milan-v2']!) }));
    assert.deepEqual(r, { code: 'TEE_VERIFICATION_FAILED', reason: 'SNP_ERR_V2_PRODUCT_UNSET' });
  });

  it('v2 report with the wrong configured product fails at the chain (Milan VCEK under Genoa roots)', async () => {
    const ev = load('virtee-milan-v2');
    const r = await reason(new SnpVerifier({ v2Product: 'Genoa' }).verify({ report: ev.report, vek: ev.vek, at: midpoint(expected['virtee-milan-v2']!) }));
    assert.deepEqual(r, { code: 'TEE_VERIFICATION_FAILED', reason: 'SNP_ERR_CHAIN' });
  });

  it('a flipped signed byte fails the report signature', async () => {
    const ev = load('mstav-genoa-v3');
    const bad = Buffer.from(ev.report);
    bad[0x90]! ^= 1;
    const r = await reason(new SnpVerifier().verify({ report: bad, vek: ev.vek, at: midpoint(expected['mstav-genoa-v3']!) }));
    assert.deepEqual(r, { code: 'TEE_VERIFICATION_FAILED', reason: 'SNP_ERR_REPORT_SIGNATURE' });
  });

  it('a non-zero byte in the unsigned tail is refused as malformed', async () => {
    const ev = load('mstav-genoa-v3');
    const bad = Buffer.from(ev.report);
    bad[0x400] = 1;
    const r = await reason(new SnpVerifier().verify({ report: bad, vek: ev.vek, at: midpoint(expected['mstav-genoa-v3']!) }));
    assert.deepEqual(r, { code: 'TEE_EVIDENCE_MALFORMED', reason: 'SNP_ERR_MBZ' });
  });

  it('a truncated report is malformed (SNP_ERR_REPORT_SIZE)', async () => {
    const ev = load('mstav-genoa-v3');
    const r = await reason(new SnpVerifier().verify({ report: ev.report.subarray(0, 1000), vek: ev.vek, at: new Date('2026-06-01T00:00:00Z') }));
    assert.deepEqual(r, { code: 'TEE_EVIDENCE_MALFORMED', reason: 'SNP_ERR_REPORT_SIZE' });
  });

  it('VCEK <-> VLEK swap is refused (signer kind)', async () => {
    const vl = load('trustee-milan-v3-vlek');
    const vc = load('mstav-milan-v3');
    const at = new Date('2025-06-01T00:00:00Z');
    // VLEK-signed report presented with a VCEK
    const a = await reason(new SnpVerifier().verify({ report: vl.report, vek: vc.vek, at }));
    assert.deepEqual(a, { code: 'TEE_VERIFICATION_FAILED', reason: 'SNP_ERR_SIGNER_KIND' });
    // VCEK-signed report presented with the VLEK
    const b = await reason(new SnpVerifier().verify({ report: vc.report, vek: vl.vek, at }));
    assert.deepEqual(b, { code: 'TEE_VERIFICATION_FAILED', reason: 'SNP_ERR_SIGNER_KIND' });
  });

  it('swapped product roots fail: Milan chain with the Genoa ASK / ARK', async () => {
    const ev = load('mstav-milan-v3');
    const at = new Date('2026-06-01T00:00:00Z');
    const r1 = await reason(new SnpVerifier().verify({ report: ev.report, vek: ev.vek, intermediate: readFileSync(join(ROOTS, 'genoa/ask.pem')), at }));
    assert.deepEqual(r1, { code: 'TEE_VERIFICATION_FAILED', reason: 'SNP_ERR_CHAIN' });
    const r2 = await reason(new SnpVerifier({ anchorsOverride: [readFileSync(join(ROOTS, 'genoa/ark.pem'))] }).verify({ report: ev.report, vek: ev.vek, at }));
    assert.deepEqual(r2, { code: 'TEE_VERIFICATION_FAILED', reason: 'SNP_ERR_CHAIN' });
  });

  it('expected product disagreeing with CPUID is refused (SNP_ERR_PRODUCT_MISMATCH)', async () => {
    const ev = load('mstav-turin-v5');
    const r = await reason(new SnpVerifier().verify({ report: ev.report, vek: ev.vek, at: new Date('2026-06-01T00:00:00Z'), product: 'Genoa' }));
    assert.deepEqual(r, { code: 'TEE_VERIFICATION_FAILED', reason: 'SNP_ERR_PRODUCT_MISMATCH' });
  });

  it('the VLEK is refused after its notAfter (SNP_ERR_CERT_EXPIRED)', async () => {
    const ev = load('trustee-milan-v3-vlek');
    const r = await reason(new SnpVerifier().verify({ report: ev.report, vek: ev.vek, at: new Date('2026-06-01T00:00:00Z') }));
    assert.deepEqual(r, { code: 'TEE_VERIFICATION_FAILED', reason: 'SNP_ERR_CERT_EXPIRED' });
  });

  it('check() reports the failing step without throwing', async () => {
    const ev = load('mstav-genoa-v3');
    const res = await new SnpVerifier().check({ report: ev.report, vek: load('mstav-milan-v3').vek, at: new Date('2026-06-01T00:00:00Z') });
    assert.equal(res.valid, false);
    const last = res.checks[res.checks.length - 1]!;
    assert.equal(last.ok, false);
    assert.match(last.detail, /^SNP_ERR_/);
  });
});
