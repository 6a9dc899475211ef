import { registerSettings } from '../config/registry';

registerSettings('kds', [
  {
    path: 'kds.base_url',
    env: ['TAS_KDS_BASE_URL'],
    type: 'string',
    default: 'https://kdsintf.amd.com',
    section: 'Certificates (AMD KDS)',
    doc: 'AMD Key Distribution Service, or a mirror, proxy or test server.',
    check: (v) => (/^https?:\/\/[^\s/]+(\/[^\s]*)?$/.test(String(v)) ? undefined : 'must be an http(s) URL'),
  },
  { path: 'kds.proxy', env: ['TAS_KDS_PROXY'], type: 'string', section: 'Certificates (AMD KDS)', doc: 'HTTP(S) proxy URL for KDS requests (corporate proxies).' },
  { path: 'kds.ca_file', env: ['TAS_KDS_CA_FILE'], type: 'path', section: 'Certificates (AMD KDS)', doc: 'Extra CA certificate(s) to trust for the KDS (or mirror) TLS connection.' },
  {
    path: 'kds.offline',
    env: ['TAS_KDS_OFFLINE'],
    type: 'boolean',
    default: false,
    section: 'Certificates (AMD KDS)',
    doc: 'Never contact KDS: certificates come from tee-certificates, the cache and `tas kds import` only.',
  },
  {
    path: 'kds.crl_fail_mode',
    env: ['TAS_CRL_FAIL_MODE'],
    type: 'enum',
    values: ['closed', 'open'],
    default: 'closed',
    section: 'Certificates (AMD KDS)',
    doc: 'When no fresh CRL (AMD ARK, Intel root CA / PCK CA) or GPU OCSP answer can be had: `closed` refuses (503), `open` verifies without that revocation data and says so in the audit record (`details.notes`).',
  },
]);
