import assert from 'node:assert/strict';
import { SEV_CLAIM_SCHEMA, claimSchemaFor, type ClaimNode } from '../../src/policy/claims-schema';

/** Every claim name of PROTOCOL.md §3.4, written out from the protocol text. */
const PROTOCOL_CLAIMS = [
  'version', 'guest_svn',
  'policy.abi_minor', 'policy.abi_major', 'policy.smt_allowed', 'policy.migrate_ma_allowed', 'policy.debug_allowed',
  'policy.single_socket_required', 'policy.cxl_allowed', 'policy.mem_aes_256_xts', 'policy.rapl_dis',
  'policy.ciphertext_hiding', 'policy.page_swap_disable',
  'family_id', 'image_id', 'vmpl', 'signature_algo',
  ...['current_tcb', 'reported_tcb', 'committed_tcb', 'launch_tcb'].flatMap((t) => ['bootloader', 'tee', 'snp', 'microcode', 'fmc'].map((c) => `${t}.${c}`)),
  'platform_info.smt_enabled', 'platform_info.tsme_enabled', 'platform_info.ecc_enabled', 'platform_info.rapl_disabled',
  'platform_info.ciphertext_hiding_enabled', 'platform_info.alias_check_complete', 'platform_info.tio_enabled',
  'key_info.author_key_en', 'key_info.mask_chip_key', 'key_info.signing_key',
  'report_data', 'measurement', 'host_data', 'id_key_digest', 'author_key_digest', 'report_id', 'report_id_ma',
  'cpuid.family_id', 'cpuid.model_id', 'cpuid.stepping', 'chip_id',
  ...['current_version', 'committed_version'].flatMap((v) => ['major', 'minor', 'build'].map((c) => `${v}.${c}`)),
  'launch_mit_vector', 'current_mit_vector',
  'product', 'signer.kind', 'signer.csp_id', 'signer.hw_id',
];

/** tas extensions documented in docs/policy.md. */
const EXTENSIONS = ['chip_id_masked', 'firmware_provisional', 'policy_raw', 'platform_info_raw'];

function leaves(schema: Readonly<Record<string, ClaimNode>>, prefix = ''): string[] {
  return Object.entries(schema).flatMap(([k, n]) =>
    typeof n !== 'string' && 'children' in n ? leaves(n.children, `${prefix}${k}.`) : [`${prefix}${k}`],
  );
}

describe('policy claim schema', () => {
  it('has exactly the PROTOCOL.md §3.4 names plus the documented tas extensions', () => {
    assert.deepEqual(leaves(SEV_CLAIM_SCHEMA).sort(), [...PROTOCOL_CLAIMS, ...EXTENSIONS].sort());
  });
  it('version triples support version operators; TCBs are groups', () => {
    assert.equal((SEV_CLAIM_SCHEMA.current_version as { kind: string }).kind, 'version');
    assert.equal((SEV_CLAIM_SCHEMA.committed_version as { kind: string }).kind, 'version');
    assert.equal((SEV_CLAIM_SCHEMA.reported_tcb as { kind: string }).kind, 'object');
    assert.deepEqual(SEV_CLAIM_SCHEMA.measurement, { kind: 'bytes', bytes: 48 });
  });
  it('TDX has exactly the PROTOCOL.md §3.4 TDX names (the original\'s attribute names plus tas\'s own)', () => {
    assert.equal(claimSchemaFor('SEV'), SEV_CLAIM_SCHEMA);
    const tdx = claimSchemaFor('TDX')!;
    const rtmrs = ['rtmr0', 'rtmr1', 'rtmr2', 'rtmr3'].map((r) => `body.${r}`);
    assert.deepEqual(leaves(tdx).sort(), [
      ...['version', 'attestation_key_type', 'tee_type', 'qe_vendor_id', 'user_data'].map((n) => `header.${n}`),
      ...['tee_tcb_svn', 'mr_seam', 'mr_signer_seam', 'seam_attributes', 'td_attributes', 'xfam', 'mr_td', 'mr_config_id', 'mr_owner',
        'mr_owner_config', 'report_data', 'tee_tcb_svn2', 'mr_servicetd'].map((n) => `body.${n}`), ...rtmrs,
      ...['cpu_svn', 'misc_select', 'attributes', 'mr_enclave', 'mr_signer', 'isv_prod_id', 'isv_svn', 'report_data'].map((n) => `signature_data.qe_cert_data.qe_report.${n}`),
      ...['update', 'platform_tcb', 'tdx_module_tcb', 'qe_tcb'].map((n) => `tcb.${n}`),
      ...['debug', 'sept_ve_disable', 'pks', 'kl', 'perfmon', 'migratable'].map((n) => `td.${n}`),
      'tcb_status', 'advisory_ids', 'fmspc', 'tcb_eval_data_number', 'quote_version',
    ].sort());
  });
});
