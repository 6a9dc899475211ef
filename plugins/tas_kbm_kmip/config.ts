/**
 * The plugin's own config file (TAS_KBM_CONFIG_FILE), in the spirit of PyKMIP's pykmip.conf so
 * that operators can reuse the file they tested with PyKMIP's client:
 *
 *   [client]
 *   host=kmip.example.net
 *   port=5696
 *   certfile=/etc/tas/kmip-client.crt
 *   keyfile=/etc/tas/kmip-client.key
 *   ca_certs=/etc/tas/kmip-ca.crt
 *   # tas options (all optional)
 *   kmip_version=auto            ; auto (DiscoverVersions) | 1.2 | 1.4 | 2.0
 *   server_name=kmip.example.net ; name checked in the server certificate (default: host)
 *   object_types=SymmetricKey,SecretData
 *   connect_timeout_ms=5000
 *   request_timeout_ms=10000
 *   reconnect_initial_ms=200
 *   reconnect_max_ms=30000
 *
 * PyKMIP-only keys that do not change what tas does are accepted; keys that would weaken TLS
 * (cert_reqs other than CERT_REQUIRED, ssl_version below TLS 1.2) and unknown keys are errors,
 * so that a typo never silently falls back to a default.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { ObjectType } from './tags';
import { KMIP_1_2, KMIP_1_4, KMIP_2_0, type KmipVersion } from './messages';

/** KmipConfig is the parsed, checked configuration. */
export interface KmipConfig {
  readonly host: string;
  readonly port: number;
  readonly serverName: string;
  readonly ca: Buffer;
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly version: 'auto' | KmipVersion;
  readonly objectTypes: readonly number[];
  readonly connectTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly reconnectInitialMs: number;
  readonly reconnectMaxMs: number;
}

/** KmipConfigError names the file and the offending setting. */
export class KmipConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KmipConfigError';
  }
}

const TAS_KEYS = new Set([
  'host',
  'port',
  'certfile',
  'keyfile',
  'ca_certs',
  'kmip_version',
  'server_name',
  'object_types',
  'connect_timeout_ms',
  'request_timeout_ms',
  'reconnect_initial_ms',
  'reconnect_max_ms',
]);
/** PyKMIP client keys that are accepted for compatibility (checked where they matter). */
const PYKMIP_KEYS = new Set(['cert_reqs', 'ssl_version', 'do_handshake_on_connect', 'suppress_ragged_eofs', 'timeout']);

/** parseIni reads `[section]` and `key=value` / `key: value` lines; `#` and `;` start comments. */
export function parseIni(text: string): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  let section: Map<string, string> | undefined;
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) return;
    const sec = /^\[([^\]]+)\]$/.exec(line);
    if (sec) {
      const name = sec[1]!.trim();
      if (out.has(name)) throw new KmipConfigError(`line ${i + 1}: section [${name}] appears twice`);
      section = new Map();
      out.set(name, section);
      return;
    }
    const kv = /^([A-Za-z0-9_.-]+)\s*[=:]\s*(.*)$/.exec(line);
    if (!kv) throw new KmipConfigError(`line ${i + 1}: expected key=value`);
    if (!section) throw new KmipConfigError(`line ${i + 1}: key outside of a [section]`);
    const key = kv[1]!.toLowerCase();
    if (section.has(key)) throw new KmipConfigError(`line ${i + 1}: key '${key}' appears twice`);
    // Inline comments after whitespace, as configparser users write them.
    section.set(key, kv[2]!.replace(/\s+[;#].*$/, '').trim());
  });
  return out;
}

function intSetting(s: Map<string, string>, key: string, def: number, min: number, max: number): number {
  const v = s.get(key);
  if (v === undefined) return def;
  if (!/^\d+$/.test(v)) throw new KmipConfigError(`${key}: '${v}' is not an integer`);
  const n = Number(v);
  if (n < min || n > max) throw new KmipConfigError(`${key}: ${n} is outside ${min}..${max}`);
  return n;
}

/** loadKmipConfig reads and checks the config file; relative paths resolve against its directory. */
export function loadKmipConfig(file: string | undefined, section = 'client'): KmipConfig {
  if (!file) throw new KmipConfigError('TAS_KBM_CONFIG_FILE is not set (tas_kbm_kmip needs a [client] config file)');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new KmipConfigError(`cannot read ${file}: ${(e as Error).message}`);
  }
  let s: Map<string, string> | undefined;
  try {
    s = parseIni(text).get(section);
  } catch (e) {
    throw new KmipConfigError(`${file}: ${(e as Error).message}`);
  }
  if (!s) throw new KmipConfigError(`${file}: no [${section}] section`);
  const fail = (msg: string): never => {
    throw new KmipConfigError(`${file} [${section}]: ${msg}`);
  };
  try {
    for (const k of s.keys()) {
      if (k === 'username' || k === 'password') fail(`'${k}': KMIP username/password credentials are not supported; tas authenticates with its client certificate`);
      if (!TAS_KEYS.has(k) && !PYKMIP_KEYS.has(k)) fail(`unknown setting '${k}'`);
    }
    const certReqs = s.get('cert_reqs');
    if (certReqs !== undefined && certReqs !== 'CERT_REQUIRED') fail(`cert_reqs=${certReqs}: tas always verifies the server (CERT_REQUIRED)`);
    const sslVersion = s.get('ssl_version');
    if (sslVersion !== undefined && !/^PROTOCOL_(TLSv1_2|TLS_CLIENT|TLS)$/.test(sslVersion)) {
      fail(`ssl_version=${sslVersion}: tas speaks TLS 1.2 or later only`);
    }
    const host = s.get('host') || fail("'host' is required");
    const read = (key: string): Buffer => {
      const v = s.get(key) || fail(`'${key}' is required`);
      const p = isAbsolute(v) ? v : resolve(dirname(file), v);
      try {
        return readFileSync(p);
      } catch (e) {
        return fail(`${key}: cannot read ${p}: ${(e as Error).message}`);
      }
    };
    const versionText = s.get('kmip_version') ?? 'auto';
    const versions: Record<string, 'auto' | KmipVersion> = { auto: 'auto', '1.2': KMIP_1_2, '1.4': KMIP_1_4, '2.0': KMIP_2_0 };
    const version = versions[versionText] ?? fail(`kmip_version=${versionText}: use auto, 1.2, 1.4 or 2.0`);
    const typeNames: Record<string, number> = { SymmetricKey: ObjectType.SymmetricKey, SecretData: ObjectType.SecretData };
    const objectTypes = (s.get('object_types') ?? 'SymmetricKey,SecretData')
      .split(',')
      .map((t) => t.trim())
      .filter((t) => t !== '')
      .map((t) => typeNames[t] ?? fail(`object_types: '${t}' is not SymmetricKey or SecretData`));
    if (objectTypes.length === 0 || new Set(objectTypes).size !== objectTypes.length) fail('object_types: list SymmetricKey and/or SecretData once each');
    const reconnectInitialMs = intSetting(s, 'reconnect_initial_ms', 200, 10, 60_000);
    const cfg: KmipConfig = {
      host,
      port: intSetting(s, 'port', 5696, 1, 65535),
      serverName: s.get('server_name') || host,
      ca: read('ca_certs'),
      cert: read('certfile'),
      key: read('keyfile'),
      version,
      objectTypes,
      connectTimeoutMs: intSetting(s, 'connect_timeout_ms', 5000, 100, 120_000),
      requestTimeoutMs: intSetting(s, 'request_timeout_ms', 10_000, 100, 300_000),
      reconnectInitialMs,
      reconnectMaxMs: intSetting(s, 'reconnect_max_ms', 30_000, reconnectInitialMs, 3_600_000),
    };
    return cfg;
  } catch (e) {
    if (e instanceof KmipConfigError) throw e;
    throw new KmipConfigError(`${file} [${section}]: ${(e as Error).message}`);
  }
}
