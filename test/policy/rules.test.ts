import assert from 'node:assert/strict';
import { compileRules, evaluate } from '../../src/policy/rules';
import { claimSchemaFor } from '../../src/policy/claims-schema';
import { isTasError } from '../../src/errors';

const MEAS = '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff';

/** claims in the shape src/snp produces: bytes as Buffers, u64 fields possibly bigint. */
function claims(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    version: 3,
    guest_svn: 2,
    vmpl: 0,
    signature_algo: 1,
    measurement: Buffer.from(MEAS, 'hex'),
    host_data: Buffer.alloc(32),
    report_data: Buffer.alloc(64, 0xab),
    id_key_digest: Buffer.alloc(48, 1),
    author_key_digest: Buffer.alloc(48, 2),
    chip_id: Buffer.alloc(64, 0xcd),
    chip_id_masked: false,
    firmware_provisional: false,
    product: 'Genoa',
    signer: { kind: 'VCEK' },
    policy: { abi_major: 1, abi_minor: 55, smt_allowed: true, debug_allowed: false, migrate_ma_allowed: false, single_socket_required: false },
    reported_tcb: { bootloader: 9, tee: 0, snp: 23, microcode: 213 },
    current_tcb: { bootloader: 9, tee: 0, snp: 23, microcode: 213 },
    committed_tcb: { bootloader: 9, tee: 0, snp: 23, microcode: 213 },
    platform_info: { smt_enabled: true, tsme_enabled: false, ecc_enabled: true, alias_check_complete: true },
    current_version: { major: 1, minor: 55, build: 22 },
    committed_version: { major: 1, minor: 55, build: 21 },
    launch_mit_vector: 0b1011n,
    current_mit_vector: 0xffff_ffff_ffff_fff0n,
    ...over,
  };
}

function one(rules: unknown, c = claims()) {
  const r = evaluate(rules, c);
  return r;
}

function storeError(rules: unknown, type: 'SEV' | 'TDX' = 'SEV'): string {
  try {
    compileRules(rules, claimSchemaFor(type));
  } catch (e) {
    assert.ok(isTasError(e));
    assert.equal(e.code, 'POLICY_INVALID');
    return e.detail;
  }
  assert.fail('expected POLICY_INVALID');
}

describe('policy rule engine', () => {
  describe('operators (table)', () => {
    const table: Array<[string, unknown, boolean]> = [
      ['exact_match uint pass', { vmpl: { exact_match: 0 } }, true],
      ['exact_match uint fail', { vmpl: { exact_match: 1 } }, false],
      ['min_value pass (equal)', { guest_svn: { min_value: 2 } }, true],
      ['min_value fail', { guest_svn: { min_value: 3 } }, false],
      ['max_value pass', { vmpl: { max_value: 1 } }, true],
      ['max_value fail', { guest_svn: { max_value: 1 } }, false],
      ['allow_list uint pass', { version: { allow_list: [2, 3, 5] } }, true],
      ['allow_list uint fail', { version: { allow_list: [2, 5] } }, false],
      ['deny_list uint pass', { version: { deny_list: [2, 5] } }, true],
      ['deny_list uint fail', { version: { deny_list: [3] } }, false],
      ['boolean pass', { policy: { debug_allowed: { boolean: false } } }, true],
      ['boolean fail', { policy: { smt_allowed: { boolean: false } } }, false],
      ['bare nested boolean = boolean', { policy: { debug_allowed: false } }, true],
      ['bare nested boolean fail', { policy: { debug_allowed: true } }, false],
      ['bare value = exact_match', { vmpl: 0 }, true],
      ['bare value = exact_match fail', { guest_svn: 7 }, false],
      ['bool allow_list [true,false] allows either', { policy: { smt_allowed: { allow_list: [true, false] } } }, true],
      ['bytes exact_match lowercase', { measurement: { exact_match: MEAS } }, true],
      ['bytes exact_match 0x + uppercase', { measurement: { exact_match: `0x${MEAS.toUpperCase()}` } }, true],
      ['bytes exact_match 0X prefix', { measurement: `0X${MEAS}` }, true],
      ['bytes exact_match differs', { measurement: { exact_match: MEAS.replace(/^00/, '01') } }, false],
      ['bytes allow_list (measurement allow-list)', { measurement: { allow_list: ['aa'.repeat(48), MEAS.toUpperCase()] } }, true],
      ['bytes allow_list miss', { measurement: { allow_list: ['aa'.repeat(48)] } }, false],
      ['bytes deny_list', { id_key_digest: { deny_list: ['01'.repeat(48)] } }, false],
      ['author key digest allow-list', { author_key_digest: { allow_list: ['02'.repeat(48)] } }, true],
      ['string allow_list product', { product: { allow_list: ['Genoa', 'Turin'] } }, true],
      ['string exact product fail', { product: 'Milan' }, false],
      ['signer kind', { signer: { kind: { allow_list: ['VCEK'] } } }, true],
      ['csp_id absent on VCEK fails', { signer: { csp_id: { allow_list: ['Azure'] } } }, false],
      ['per-component TCB min', { reported_tcb: { microcode: { min_value: 200 }, snp: { min_value: 23 } } }, true],
      ['per-component TCB min fail', { reported_tcb: { microcode: { min_value: 214 } } }, false],
      ['fmc absent on Genoa fails closed', { reported_tcb: { fmc: { min_value: 0 } } }, false],
      ['min_version pass', { current_version: { min_version: '1.55.22' } }, true],
      ['min_version fail on build', { current_version: { min_version: '1.55.23' } }, false],
      ['min_version without build', { committed_version: { min_version: '1.55' } }, true],
      ['max_version', { committed_version: { max_version: '1.55.20' } }, false],
      ['version exact via bare string', { current_version: '1.55.22' }, true],
      ['version component rule', { current_version: { minor: { min_value: 56 } } }, false],
      ['committed == current', { firmware_provisional: false }, true],
      ['chip id masked flag', { chip_id_masked: { boolean: true } }, false],
      ['bits_set (mitigation vector superset)', { launch_mit_vector: { bits_set: 0b1001 } }, true],
      ['bits_set miss', { launch_mit_vector: { bits_set: 0b0100 } }, false],
      ['u64 bigint claim vs hex operand', { current_mit_vector: { min_value: '0xfffffffffffffff0' } }, true],
      ['platform_info require', { platform_info: { ecc_enabled: true, alias_check_complete: true } }, true],
      ['platform_info absent bit fails', { platform_info: { tio_enabled: false } }, false],
    ];
    for (const [name, rules, want] of table) {
      it(name, () => {
        const r = one(rules);
        assert.equal(r.ok, want, JSON.stringify(r.failures));
        assert.equal(r.failures.length === 0, want);
        assert.ok(r.results.length >= 1);
      });
    }
  });

  it('hex claims given as strings compare like byte claims', () => {
    const r = one({ measurement: { exact_match: MEAS.toUpperCase() } }, claims({ measurement: `0x${MEAS}` }));
    assert.equal(r.ok, true);
  });

  it('collects every failure with path, operator, expected and actual', () => {
    const r = evaluate(
      {
        vmpl: { exact_match: 1 },
        guest_svn: { min_value: 9, max_value: 100 },
        policy: { debug_allowed: true, smt_allowed: true },
        reported_tcb: { microcode: { min_value: 250 } },
        measurement: 'ff'.repeat(48),
      },
      claims(),
    );
    assert.equal(r.ok, false);
    assert.equal(r.results.length, 7);
    assert.equal(r.failures.length, 5);
    const byPath = Object.fromEntries(r.results.map((x) => [`${x.path}:${x.op}`, x]));
    assert.deepEqual(byPath['vmpl:exact_match'], { path: 'vmpl', op: 'exact_match', expected: 1, actual: 0, ok: false });
    assert.deepEqual(byPath['guest_svn:min_value'], { path: 'guest_svn', op: 'min_value', expected: 9, actual: 2, ok: false });
    assert.equal(byPath['guest_svn:max_value']!.ok, true);
    assert.deepEqual(byPath['policy.debug_allowed:boolean'], { path: 'policy.debug_allowed', op: 'boolean', expected: true, actual: false, ok: false });
    assert.equal(byPath['reported_tcb.microcode:min_value']!.actual, 213);
    assert.equal(byPath['measurement:exact_match']!.actual, MEAS);
    assert.match(r.failures.join('\n'), /reported_tcb\.microcode min_value: expected 250, actual 213/);
  });

  it('an absent claim is a failure that says so', () => {
    const r = evaluate({ cpuid: { family_id: 0x19 } }, claims());
    assert.equal(r.ok, false);
    assert.deepEqual(r.results[0], { path: 'cpuid.family_id', op: 'exact_match', expected: 0x19, actual: null, ok: false });
    assert.match(r.failures[0]!, /claim absent/);
  });

  it('large u64 actual values are reported as decimal strings', () => {
    const r = evaluate({ current_mit_vector: { max_value: 1 } }, claims());
    assert.equal(r.results[0]!.actual, (0xffff_ffff_ffff_fff0n).toString());
  });

  it('Turin claims: fmc rules work because claims are decoded per product', () => {
    const turin = claims({ product: 'Turin', reported_tcb: { fmc: 1, bootloader: 1, tee: 1, snp: 4, microcode: 81 } });
    assert.equal(evaluate({ reported_tcb: { fmc: { min_value: 1 }, microcode: { min_value: 81 } } }, turin).ok, true);
    assert.equal(evaluate({ reported_tcb: { fmc: { min_value: 2 } } }, turin).ok, false);
  });

  describe('store-time refusals name the problem', () => {
    it('unknown top-level claim', () => assert.match(storeError({ debug: false }), /unknown claim 'debug'/));
    it('unknown nested claim', () => assert.match(storeError({ policy: { debugging: false } }), /'debugging'.*policy/));
    it('unknown operator on a leaf', () => assert.match(storeError({ vmpl: { at_most: 1 } }), /unknown operator 'at_most' on claim 'vmpl'/));
    it('operator not applicable to kind', () => assert.match(storeError({ measurement: { min_value: 1 } }), /operator 'min_value' does not apply to claim 'measurement'/));
    it('operator on a group', () => assert.match(storeError({ reported_tcb: { min_value: 1 } }), /group/));
    it('bad hex', () => assert.match(storeError({ measurement: 'xyz' }), /measurement.*hex/));
    it('odd-length hex', () => assert.match(storeError({ measurement: 'abc' }), /whole bytes/));
    it('negative integer', () => assert.match(storeError({ vmpl: { max_value: -1 } }), /non-negative integer/));
    it('boolean operand type', () => assert.match(storeError({ policy: { debug_allowed: { boolean: 'no' } } }), /true or false/));
    it('empty list', () => assert.match(storeError({ product: { allow_list: [] } }), /empty/));
    it('empty operator object', () => assert.match(storeError({ vmpl: {} }), /no operator/));
    it('bad version', () => assert.match(storeError({ current_version: { min_version: 'one' } }), /version/));
    it('empty rules', () => assert.match(storeError({}), /empty/));
    it('hex of the wrong length for the field', () => assert.match(storeError({ measurement: MEAS.slice(0, 94) }), /48 bytes \(96 hex characters\), got 47/));
    it('wrong length inside an allow-list', () => assert.match(storeError({ host_data: { allow_list: ['00'.repeat(32), 'ab'] } }), /32 bytes/));
    it('enum values (product, signer kind)', () => {
      assert.match(storeError({ product: 'Milam' }), /"Milam" is not one of Milan, Genoa, Turin/);
      assert.match(storeError({ signer: { kind: { allow_list: ['VCEK', 'ASK'] } } }), /"ASK" is not one of VCEK, VLEK/);
    });
    it('prototype member names are unknown claims, not schema nodes', () => {
      const d = storeError(JSON.parse('{"constructor": 1, "__proto__": {"x": 1}, "policy": {"toString": true, "hasOwnProperty": 1}}'));
      assert.match(d, /unknown claim 'constructor'/);
      assert.match(d, /unknown claim '__proto__'/);
      assert.match(d, /'toString'/);
      assert.match(d, /'hasOwnProperty'/);
    });
    it('operator names are not looked up on the prototype either', () => {
      assert.match(storeError({ vmpl: { valueOf: 1 } }), /unknown operator 'valueOf' on claim 'vmpl'/);
    });
    it('names ALL problems at once', () => {
      const d = storeError({ debug: false, vmpl: { at_most: 1 }, policy: { nope: true } });
      assert.match(d, /'debug'/);
      assert.match(d, /'at_most'/);
      assert.match(d, /'nope'/);
    });
    it('without a schema, operator operands are still checked', () => {
      assert.throws(() => compileRules({ mrtd: { min_value: 'x' } }, null), /non-negative integer/);
      assert.doesNotThrow(() => compileRules({ mrtd: { exact_match: 'ab' }, td_attributes: { debug: false } }, null));
    });
    it('TDX policies are checked against the TDX claim schema (names, byte lengths, statuses)', () => {
      assert.match(storeError({ mrtd: { exact_match: 'ab' } }, 'TDX'), /unknown claim 'mrtd'/);
      assert.match(storeError({ body: { mr_td: 'abcd1234' } }, 'TDX'), /48 bytes/);
      assert.match(storeError({ tcb: { platform_tcb: 'Great' } }, 'TDX'), /not one of/);
      assert.match(storeError({ advisory_ids: { exact_match: 'INTEL-SA-00001' } }, 'TDX'), /does not apply/);
      assert.doesNotThrow(() => compileRules({ tcb: { update: 'standard', platform_tcb: 'UpToDate' }, td: { debug: false }, advisory_ids: { deny_list: ['INTEL-SA-00960'] } }, claimSchemaFor('TDX')));
    });
    it('refuses deeply nested rule trees', () => {
      let deep: Record<string, unknown> = { x: 1 };
      for (let i = 0; i < 12; i++) deep = { n: deep };
      assert.throws(() => compileRules(deep, null), /deeper than/);
    });
  });
});
