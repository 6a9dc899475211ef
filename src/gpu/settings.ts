/**
 * Settings of the NVIDIA GPU layer (PROTOCOL.md §5): where OCSP answers and RIMs come from, the
 * offline mode for air-gapped hosts, and extra roots for labs and tests.
 */
import { registerSettings } from '../config/registry';

const GPU = 'GPU evidence (NVIDIA)';
const url = (v: unknown): string | undefined => (/^https?:\/\/[^\s/]+(\/[^\s]*)?$/.test(String(v)) ? undefined : 'must be an http(s) URL');

registerSettings('nvidia', [
  { path: 'nvidia.ocsp_url', env: ['TAS_NVIDIA_OCSP_URL'], type: 'string', default: 'https://ocsp.ndis.nvidia.com', section: GPU, doc: 'NVIDIA OCSP responder for the GPU device certificates (answers are cached until their nextUpdate).', check: url },
  { path: 'nvidia.rim_url', env: ['TAS_NVIDIA_RIM_URL'], type: 'string', default: 'https://rim.attestation.nvidia.com/v1/rim/', section: GPU, doc: 'NVIDIA RIM service: driver and VBIOS reference measurements by RIM id (signature checked with xmlsec1 when fetched).', check: url },
  { path: 'nvidia.offline', env: ['TAS_NVIDIA_OFFLINE'], type: 'boolean', default: false, section: GPU, doc: 'Never contact NVIDIA: OCSP answers and RIMs come from the cache and `tas gpu import` only.' },
  {
    path: 'nvidia.extra_trust_dir', env: ['TAS_NVIDIA_EXTRA_TRUST_DIR'], type: 'path', section: GPU,
    doc: 'Extra NVIDIA device identity and RIM roots (PEM files, labs and tests only) trusted besides the pinned ones: logged as a warning at every start and flagged in /management/status.',
  },
]);
