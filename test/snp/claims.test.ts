/**
 * Claims and CLAIM_SCHEMA: the names are exactly PROTOCOL.md §3.4 plus tas's documented extensions,
 * every claim the verifier produces conforms to the schema (kind, hex length, enum values), and
 * product-specific claims (fmc, cpuid, mitigation vectors, csp_id) appear exactly when they exist.
 */
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLAIM_SCHEMA, SnpVerifier, buildClaims, detectProduct, productFromCpuid, type ClaimSchemaNode, type Claims } from '../../src/snp';
import { parseReport } from '../../src/native';

/** PROTOCOL.md §3.4, transcribed: top-level name → nested names (or null for a leaf). */
const PROTOCOL: Record<string, string[] | null> = {
  version: null, guest_svn: null,
  policy: ['abi_minor', 'abi_major', 'smt_allowed', 'migrate_ma_allowed', 'debug_allowed', 'single_socket_required', 'cxl_allowed',
    'mem_aes_256_xts', 'rapl_dis', 'ciphertext_hiding', 'page_swap_disable'],
  family_id: null, image_id: null, vmpl: null, signature_algo: null,
  current_tcb: ['bootloader', 'tee', 'snp', 'microcode', 'fmc'],
  reported_tcb: ['bootloader', 'tee', 'snp', 'microcode', 'fmc'],
  committed_tcb: ['bootloader', 'tee', 'snp', 'microcode', 'fmc'],
  launch_tcb: ['bootloader', 'tee', 'snp', 'microcode', 'fmc'],
  platform_info: ['smt_enabled', 'tsme_enabled', 'ecc_enabled', 'rapl_disabled', 'ciphertext_hiding_enabled', 'alias_check_complete', 'tio_enabled'],
  key_info: ['author_key_en', 'mask_chip_key', 'signing_key'],
  report_data: null, measurement: null, host_data: null, id_key_digest: null, author_key_digest: null, report_id: null, report_id_ma: null,
  cpuid: ['family_id', 'model_id', 'stepping'],
  chip_id: null,
  current_version: ['major', 'minor', 'build'],
  committed_version: ['major', 'minor', 'build'],
  launch_mit_vector: null, current_mit_vector: null,
  product: null,
  signer: ['kind', 'csp_id', 'hw_id'],
};
/** tas's extensions (documented in src/snp/claims.ts and docs). */
const EXTENSIONS = ['chip_id_masked', 'firmware_provisional', 'policy_raw', 'platform_info_raw'];

function conforms(path: string, node: ClaimSchemaNode, v: unknown, problems: string[]): void {
  switch (node.kind) {
    case 'int':
      if (!((typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) || (typeof v === 'bigint' && v >= 0n))) problems.push(`${path}: not a non-negative integer`);
      break;
    case 'bool':
      if (typeof v !== 'boolean') problems.push(`${path}: not boolean`);
      break;
    case 'string':
      if (typeof v !== 'string') problems.push(`${path}: not a string`);
      break;
    case 'hex': {
      const len = node.bytes > 0 ? `{${node.bytes * 2}}` : '+';
      if (typeof v !== 'string' || !new RegExp(`^[0-9a-f]${len}$`).test(v) || v.length % 2 !== 0) problems.push(`${path}: not ${node.bytes || 'whole'} bytes of lowercase hex`);
      break;
    }
    case 'enum':
      if (!node.values.includes(v as string)) problems.push(`${path}: ${String(v)} not in ${node.values.join('|')}`);
      break;
    case 'object': {
      if (typeof v !== 'object' || v === null) {
        problems.push(`${path}: not an object`);
        break;
      }
      const o = v as Record<string, unknown>;
      for (const k of Object.keys(o)) if (!(k in node.fields)) problems.push(`${path}.${k}: not in the schema`);
      for (const [k, f] of Object.entries(node.fields)) {
        if (o[k] === undefined) {
          if (!f.optional) problems.push(`${path}.${k}: missing`);
        } else conforms(`${path}.${k}`, f, o[k], problems);
      }
    }
  }
}

function conformsAll(c: Claims): string[] {
  const problems: string[] = [];
  conforms('claims', { kind: 'object', fields: CLAIM_SCHEMA }, c, problems);
  return problems;
}

describe('snp: claims and CLAIM_SCHEMA', () => {
  it('names are exactly PROTOCOL.md §3.4 plus the documented extensions', () => {
    assert.deepEqual(Object.keys(CLAIM_SCHEMA).sort(), [...Object.keys(PROTOCOL), ...EXTENSIONS].sort());
    for (const [k, sub] of Object.entries(PROTOCOL)) {
      const n = CLAIM_SCHEMA[k]!;
      if (sub === null) assert.notEqual(n.kind, 'object', k);
      else {
        assert.equal(n.kind, 'object', k);
        assert.deepEqual(Object.keys((n as { fields: object }).fields).sort(), [...sub].sort(), k);
      }
    }
  });

  const VEC = join(__dirname, '../fixtures/snp-vectors');
  const expected = JSON.parse(readFileSync(join(VEC, 'expected.json'), 'utf8')) as Record<string, { vek_file: string; vek_not_before: string; vek_not_after: string; product: 'Milan' | 'Genoa' | 'Turin'; report_version: number }>;
  for (const [name, e] of Object.entries(expected)) {
    it(`${name}: every claim conforms to the schema`, async () => {
      const d = join(VEC, name);
      const at = new Date((Date.parse(e.vek_not_before) + Date.parse(e.vek_not_after)) / 2);
      const res = await new SnpVerifier({ v2Product: e.product }).verify({ report: readFileSync(join(d, 'report.bin')), vek: readFileSync(join(d, e.vek_file)), at });
      assert.deepEqual(conformsAll(res.claims), []);
      assert.equal(res.claims.reported_tcb.fmc !== undefined, e.product === 'Turin');
      assert.equal(res.claims.cpuid !== undefined, e.report_version >= 3);
      assert.equal(res.claims.launch_mit_vector !== undefined, e.report_version >= 5);
      assert.equal(res.claims.signer.csp_id !== undefined, res.claims.signer.kind === 'VLEK');
      assert.equal(res.claims.signer.hw_id !== undefined, res.claims.signer.kind === 'VCEK');
    });
  }

  it('policy and platform bits decode at their AMD positions; raw values keep unnamed bits', () => {
    const base = parseReport(readFileSync(join(VEC, 'mstav-turin-v5/report.bin')));
    const c = buildClaims({ ...base, policy: (1n << 17n) | (1n << 19n) | (1n << 25n) | 0x0102n, platformInfo: 0xc1n }, 'Turin', { kind: 'VCEK' });
    assert.equal(c.policy.abi_minor, 2);
    assert.equal(c.policy.abi_major, 1);
    assert.equal(c.policy.debug_allowed, true);
    assert.equal(c.policy.page_swap_disable, true);
    assert.equal(c.policy.smt_allowed, false);
    assert.equal(c.platform_info.smt_enabled, true);
    assert.equal(c.platform_info.tio_enabled, true);
    assert.equal(c.platform_info.alias_check_complete, false);
    assert.equal(c.platform_info_raw, 0xc1); // bit 6 kept in the raw value
    const big = buildClaims({ ...base, launchMitVector: 1n << 60n }, 'Turin', { kind: 'VCEK' });
    assert.equal(big.launch_mit_vector, 1n << 60n);
    assert.deepEqual(conformsAll(big), []);
  });

  it('firmware_provisional is true when current and committed TCB or version differ', () => {
    const base = parseReport(readFileSync(join(VEC, 'mstav-genoa-v3/report.bin')));
    assert.equal(buildClaims(base, 'Genoa', { kind: 'VCEK' }).firmware_provisional, false);
    assert.equal(buildClaims({ ...base, currentVersion: { ...base.currentVersion, build: base.currentVersion.build + 1 } }, 'Genoa', { kind: 'VCEK' }).firmware_provisional, true);
  });

  it('CPUID product ranges follow SNP.md §1.7 (Bergamo/Siena are Genoa, Venice refused)', () => {
    const f = (family: number, model: number) => productFromCpuid({ family, model, stepping: 0 });
    assert.equal(f(0x19, 0x00), 'Milan');
    assert.equal(f(0x19, 0x01), 'Milan');
    assert.equal(f(0x19, 0x0f), 'Milan');
    assert.equal(f(0x19, 0x11), 'Genoa');
    assert.equal(f(0x19, 0xa0), 'Genoa');
    assert.equal(f(0x19, 0xaf), 'Genoa');
    assert.equal(f(0x19, 0x20), undefined);
    assert.equal(f(0x1a, 0x02), 'Turin');
    assert.equal(f(0x1a, 0x11), 'Turin');
    assert.equal(f(0x1a, 0x12), undefined);
    assert.equal(f(0x1a, 0x50), 'Venice');
    assert.equal(f(0x17, 0x31), undefined);
    assert.deepEqual(detectProduct(4, { family: 0x19, model: 0x01, stepping: 1 }), { product: 'Milan', source: 'cpuid' });
    assert.deepEqual(detectProduct(2, undefined, { v2Product: 'Genoa' }), { product: 'Genoa', source: 'config' });
  });
});
