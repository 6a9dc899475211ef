/** Settings of the Intel PCS collateral client (PROTOCOL.md §5). */
import { registerSettings } from '../config/registry';

const PCS = 'Collateral (Intel PCS)';
const url = (v: unknown) => (/^https?:\/\/[^\s/]+(\/[^\s]*)?$/.test(String(v)) ? undefined : 'must be an http(s) URL');

registerSettings('pcs', [
  {
    path: 'pcs.base_url', env: ['TAS_PCS_BASE_URL'], type: 'string', default: 'https://api.trustedservices.intel.com', section: PCS,
    doc: 'Intel PCS v4, or a PCCS (an untrusted cache: everything it serves is verified against the pinned Intel root).', check: url,
  },
  {
    path: 'pcs.root_crl_url', env: ['TAS_PCS_ROOT_CRL_URL'], type: 'string',
    default: 'https://certificates.trustedservices.intel.com/IntelSGXRootCA.der', section: PCS,
    doc: 'Where the Intel SGX Root CA CRL (DER) is fetched.', check: url,
  },
  { path: 'pcs.proxy', env: ['TAS_PCS_PROXY'], type: 'string', section: PCS, doc: 'HTTP(S) proxy URL for PCS requests.' },
  { path: 'pcs.ca_file', env: ['TAS_PCS_CA_FILE'], type: 'path', section: PCS, doc: 'Extra CA certificate(s) to trust for the PCS (or PCCS) TLS connection.' },
  {
    path: 'pcs.offline', env: ['TAS_PCS_OFFLINE'], type: 'boolean', default: false, section: PCS,
    doc: 'Never contact PCS: collateral comes from the cache and `tas pcs import` only.',
  },
]);
