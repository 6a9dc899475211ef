/** Settings of the nonce life cycle (PROTOCOL.md §2 and §5). */
import { registerSettings } from '../config/registry';

registerSettings('nonce', [
  {
    path: 'nonce.ttl_seconds',
    env: ['TAS_NONCE_EXPIRATION_SECONDS'],
    type: 'integer',
    min: 1,
    max: 86_400,
    default: 120,
    section: 'Nonces',
    doc: 'Lifetime of an issued nonce; a transient failure returns the nonce with its original expiry.',
  },
  {
    path: 'nonce.max_outstanding',
    env: ['TAS_NONCE_MAX_OUTSTANDING'],
    type: 'integer',
    min: 1,
    max: 100_000_000,
    default: 100_000,
    section: 'Nonces',
    doc: 'Cap on issued, unexpired nonces; beyond it get_nonce answers 503 + Retry-After.',
  },
]);
