import { registerSettings } from '../config/registry';

registerSettings('attest', [
  {
    path: 'attest.require_binding',
    env: ['TAS_REQUIRE_REPORT_DATA_BINDING'],
    type: 'boolean',
    defaultDoc: 'true for policy-id, false for key-id',
    section: 'Attestation',
    doc: 'Require REPORT_DATA = SHA-512(nonce ‖ wrapping-key). Unset: required for policy-id requests (current agents always bind), not for key-id requests (first dialect).',
  },
]);
