/**
 * Settings of certify, attested workload certificates (PROTOCOL.md §2.2; names as the original's
 * TAS_CERT_*). Everything is off unless TAS_CERT_ENABLED (or its newer name TAS_CERTIFY_ENABLED).
 */
import { registerSettings } from '../config/registry';

const SECTION = 'Workload certificates (certify)';
const NAME = /^[A-Za-z0-9_]{1,64}$/;
/** A SPIFFE trust domain: lower-case letters, digits, dots, dashes, underscores (SPIFFE-ID §2.1). */
const TRUST_DOMAIN = /^[a-z0-9._-]{1,255}$/;

registerSettings('cert', [
  {
    path: 'cert.enabled', env: ['TAS_CERT_ENABLED', 'TAS_CERTIFY_ENABLED'], type: 'boolean', default: false, section: SECTION,
    doc: 'Serve GET /alphav1/nonce, POST /alphav1/certify and GET /alphav1/ca-bundle and load the certificate signer plugin (absent, 404, when false).',
  },
  {
    path: 'cert.prefix', env: ['TAS_CERT_PLUGIN_PREFIX'], type: 'string', default: 'tas_cert', section: SECTION,
    doc: 'Name prefix of certificate signer plugins in plugins/ and TAS_EXTRA_PLUGIN_DIR.',
    check: (v) => (NAME.test(v as string) ? undefined : 'must be 1..64 letters, digits or underscores'),
  },
  {
    path: 'cert.plugin', env: ['TAS_CERT_PLUGIN'], type: 'string', default: 'tas_cert_local', section: SECTION,
    doc: 'The certificate signer plugin (tas_cert_local for labs, tas_cert_pkcs11 for a CA key in an HSM); its name must start with TAS_CERT_PLUGIN_PREFIX.',
    check: (v, get) => {
      const name = v as string;
      if (!NAME.test(name)) return 'must be 1..64 letters, digits or underscores (a plugin name, not a path)';
      const prefix = (get('cert.prefix') as string | undefined) ?? 'tas_cert';
      return name.startsWith(prefix) ? undefined : `'${name}' does not start with TAS_CERT_PLUGIN_PREFIX '${prefix}'`;
    },
  },
  {
    path: 'cert.config_file', env: ['TAS_CERT_CONFIG_FILE'], type: 'path', section: SECTION,
    doc: "The signer plugin's own YAML configuration (see docs/certify.md).",
  },
  {
    path: 'cert.trust_domain', env: ['TAS_CERT_TRUST_DOMAIN'], type: 'string', default: 'example.org', section: SECTION,
    doc: 'SPIFFE trust domain of issued certificates: spiffe://<trust domain>/<policy-domain>/<uuid>.',
    check: (v) => (TRUST_DOMAIN.test(v as string) ? undefined : 'must be a SPIFFE trust domain (lower-case letters, digits, . - _)'),
  },
  {
    path: 'cert.validity_seconds', env: ['TAS_CERT_VALIDITY_SECONDS'], type: 'integer', default: 300, min: 60, max: 30 * 86400, section: SECTION,
    doc: 'Lifetime of an issued certificate after the moment of issuance.',
  },
  {
    path: 'cert.clock_skew_seconds', env: ['TAS_CERT_CLOCK_SKEW_SECONDS'], type: 'integer', default: 90, min: 0, max: 3600, section: SECTION,
    doc: 'notBefore is backdated by this much; renewal accepts a certificate this far outside its validity.',
  },
  {
    path: 'cert.max_csr_bytes', env: ['TAS_CERT_MAX_CSR_BYTES'], type: 'integer', default: 10000, min: 256, max: 65536, section: SECTION,
    doc: 'Largest accepted CSR (decoded bytes, PEM or DER).',
  },
  {
    path: 'cert.allowed_key_types', env: ['TAS_CERT_ALLOWED_KEY_TYPES'], type: 'list', default: ['RSA', 'EC'], section: SECTION,
    doc: 'CSR key families accepted: RSA (≥ 3072 bits) and/or EC (P-256, P-384).',
    check: (v) => {
      const l = v as string[];
      if (l.length === 0) return 'must name at least one of RSA, EC';
      const bad = l.filter((x) => x !== 'RSA' && x !== 'EC');
      return bad.length ? `unknown key type(s) ${bad.join(', ')} (RSA, EC)` : undefined;
    },
  },
  {
    path: 'cert.evidence_digest_max_entries', env: ['TAS_CERT_EVIDENCE_DIGEST_MAX_ENTRIES'], type: 'integer', default: 17, min: 1, max: 64, section: SECTION,
    doc: 'Most evidence entries (CPU + GPUs) recorded in the evidence-digests extension; more is a 400.',
  },
  {
    path: 'cert.evidence_digest_max_bytes', env: ['TAS_CERT_EVIDENCE_DIGEST_MAX_BYTES'], type: 'integer', default: 4096, min: 256, max: 65536, section: SECTION,
    doc: 'Largest evidence-digests extension (JSON bytes); more is a 400.',
  },
  {
    path: 'cert.oid_root', env: ['TAS_OID_ROOT'], type: 'string', default: '1.3.6.1.4.1.65993', section: SECTION,
    doc: 'OID arc of the attestation extensions (.1 policy domain, .2 policy digest, .3 platforms, .4 attestation time, .5 evidence digests).',
    check: (v) => (/^[12]\.(0|[1-9]\d{0,8})(\.(0|[1-9]\d{0,8})){1,20}$/.test(v as string) ? undefined : 'must be a dotted OID such as 1.3.6.1.4.1.65993'),
  },
]);
