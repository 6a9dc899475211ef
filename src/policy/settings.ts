/**
 * Settings of the policy module (PROTOCOL.md §5, exact names). The trust set is re-read on SIGHUP
 * (the daemon calls PolicyTrust.reload from a lifecycle hook; see ./index.ts attachPolicyService).
 */
import { registerSettings } from '../config/registry';

const SECTION = 'Policies';

registerSettings('policy', [
  {
    path: 'policy.trust', env: ['TAS_POLICY_TRUST'], type: 'path', reload: true, section: SECTION,
    doc: 'File or directory of PEM RSA public keys or certificates trusted to sign policies (re-read on SIGHUP).',
  },
  {
    path: 'policy.enforce_signed', env: ['TAS_ENFORCE_SIGNED_POLICIES'], type: 'boolean', default: true, reload: true, section: SECTION,
    doc: 'Refuse unsigned policies at store time and at use.',
  },
  {
    path: 'policy.allow_unsigned_key_binding', env: ['TAS_ALLOW_UNSIGNED_KEY_BINDING'], type: 'boolean', default: false, reload: true,
    section: SECTION,
    doc: 'Let a policy whose signature covers only validation_rules (first-dialect signers) release its key_id.',
  },
]);
