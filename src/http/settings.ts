/**
 * Settings of the HTTP edge (PROTOCOL.md §5): API keys, listeners, TLS, client limits.
 * Checks here run at every load (startup and SIGHUP), so a bad key list never replaces a good one.
 */
import { registerSettings } from '../config/registry';
import { parseCidr } from './address';
import { parseRate } from './rate-limit';

const AUTH = 'Authentication';
const LISTEN = 'Listeners and TLS';
const LIMITS = 'Client limits';

/** checkKeys enforces the minimum length on every key of a list (names the offending position, never the key). */
function checkKeys(value: unknown, get: (p: string) => unknown): string | undefined {
  const min = (get('auth.min_key_length') as number | undefined) ?? 64;
  const list = value as string[];
  if (list.length === 0) return 'needs at least one key';
  const short = list.map((k, i) => (k.length < min ? i + 1 : 0)).filter((i) => i > 0);
  if (short.length) return `key number ${short.join(', ')} is shorter than ${min} characters (TAS_API_KEY_MIN_LENGTH)`;
  if (new Set(list).size !== list.length) return 'the same key is listed twice';
  // Keys travel in one HTTP header: printable ASCII only, and no ',' (a comma marks a joined duplicate header).
  const bad = list.map((k, i) => (/^[\x21-\x2b\x2d-\x7e]+$/.test(k) ? 0 : i + 1)).filter((i) => i > 0);
  if (bad.length) return `key number ${bad.join(', ')} has characters other than printable ASCII without ',' and spaces`;
  return undefined;
}

function checkPort(value: unknown): string | undefined {
  const p = value as number;
  return p >= 0 && p <= 65535 ? undefined : `must be a TCP port 0..65535, got ${p}`;
}

registerSettings('http', [
  {
    path: 'auth.min_key_length', env: ['TAS_API_KEY_MIN_LENGTH'], type: 'integer', default: 64, min: 32, max: 4096,
    section: AUTH, doc: 'Minimum length of every client and management API key.',
  },
  {
    path: 'auth.client_keys', env: ['TAS_API_KEY'], type: 'secret-list', required: true, reload: true, section: AUTH,
    doc: 'Client API keys (X-API-KEY), comma separated; several may be active for rotation.',
    check: checkKeys,
  },
  {
    path: 'auth.management_keys', env: ['TAS_MANAGEMENT_API_KEY'], type: 'secret-list', required: true, reload: true, section: AUTH,
    doc: 'Management API keys (X-MANAGEMENT-API-KEY); never equal to a client key.',
    check: (v, get) => {
      const msg = checkKeys(v, get);
      if (msg) return msg;
      const client = new Set((get('auth.client_keys') as string[] | undefined) ?? []);
      return (v as string[]).some((k) => client.has(k)) ? 'a management key is also a client key: keys must differ' : undefined;
    },
  },
  {
    path: 'server.host', env: ['TAS_SERVER_HOST'], type: 'string', default: '127.0.0.1', section: LISTEN,
    doc: 'Address of the main listener (`::` for dual stack); ignored under socket activation.',
  },
  { path: 'server.port', env: ['TAS_SERVER_PORT'], type: 'integer', default: 5000, section: LISTEN, doc: 'Port of the main listener.', check: checkPort },
  {
    path: 'server.tls.cert_file', env: ['TAS_TLS_CERT_FILE'], type: 'path', reload: true, section: LISTEN,
    doc: 'PEM certificate chain; with the key file turns on HTTPS (reloaded on SIGHUP).',
    check: (_v, get) => (get('server.tls.key_file') === undefined ? 'TAS_TLS_KEY_FILE must be set too' : undefined),
  },
  {
    path: 'server.tls.key_file', env: ['TAS_TLS_KEY_FILE'], type: 'path', reload: true, section: LISTEN,
    doc: 'PEM private key of the TLS certificate.',
    check: (_v, get) => (get('server.tls.cert_file') === undefined ? 'TAS_TLS_CERT_FILE must be set too' : undefined),
  },
  {
    path: 'server.allow_plaintext', env: ['TAS_ALLOW_PLAINTEXT'], type: 'boolean', default: false, section: LISTEN,
    doc: 'Allow plain HTTP on a non-loopback address (otherwise startup is refused).',
  },
  {
    path: 'management.host', env: ['TAS_MANAGEMENT_HOST'], type: 'string', section: LISTEN,
    doc: 'Address of a separate management listener; when set, management routes are served only there.',
    check: (_v, get) => (get('management.port') === undefined ? 'TAS_MANAGEMENT_PORT must be set too' : undefined),
  },
  {
    path: 'management.port', env: ['TAS_MANAGEMENT_PORT'], type: 'integer', section: LISTEN, doc: 'Port of the separate management listener.',
    check: (v, get) => checkPort(v) ?? (get('management.host') === undefined ? 'TAS_MANAGEMENT_HOST must be set too' : undefined),
  },
  {
    path: 'management.client_ca_file', env: ['TAS_MANAGEMENT_CLIENT_CA_FILE'], type: 'path', reload: true, section: LISTEN,
    doc: 'CA bundle for client certificates: turns on mutual TLS on the management listener (needs the TLS certificate and key).',
    check: (_v, get) =>
      get('management.host') === undefined ? 'needs TAS_MANAGEMENT_HOST/TAS_MANAGEMENT_PORT (mTLS is for the separate management listener)'
        : get('server.tls.cert_file') === undefined ? 'needs TAS_TLS_CERT_FILE and TAS_TLS_KEY_FILE' : undefined,
  },
  {
    path: 'server.trusted_proxies', env: ['TAS_TRUSTED_PROXIES'], type: 'list', default: [], section: LIMITS,
    doc: 'CIDRs (or addresses) of reverse proxies whose X-Forwarded-For is believed.',
    check: (v) => {
      const bad = (v as string[]).filter((c) => { try { parseCidr(c); return false; } catch { return true; } });
      return bad.length ? `not an address or CIDR: ${bad.join(', ')}` : undefined;
    },
  },
  {
    path: 'server.rate_limit', env: ['TAS_CLIENT_RATE_LIMIT'], type: 'string', default: '200/minute', section: LIMITS,
    doc: 'Requests per client address (IPv6: per /64), as N/second, N/minute or N/hour.',
    check: (v) => { try { parseRate(v as string); return undefined; } catch (e) { return (e as Error).message; } },
  },
  {
    path: 'server.max_inflight', env: ['TAS_MAX_INFLIGHT'], type: 'integer', default: 256, min: 1, max: 100000, section: LIMITS,
    doc: 'Requests in verification or at the key backend at once; beyond it 503 + Retry-After.',
  },
]);
