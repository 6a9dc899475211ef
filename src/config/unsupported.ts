/**
 * Names of the original (Python/Flask) TAS, github.com/TEE-Attestation/tas: `tas/config.py`
 * (BaseConfig), `tas/config_loader.py` (KNOWN_TAS_KEYS, FLASK_* and TAS_OVERRIDE__ handling),
 * `config/tas_config.yaml` and `docs/CONFIG.md`, read across the repository's history.
 *
 * Every name is either carried over (the same environment name, now a registered tas setting) or
 * refused with a migration hint. Refusing instead of ignoring matters: silently dropping a setting
 * would run a different service than the operator configured (e.g. a trust or rate-limit setting).
 */

/**
 * ORIGINAL_SUPPORTED: environment names of the original that tas reads with the same meaning
 * (each is registered by the module that owns it; test/config/unsupported.test.ts checks that).
 */
export const ORIGINAL_SUPPORTED: readonly string[] = [
  'TAS_API_KEY',
  'TAS_MANAGEMENT_API_KEY',
  'TAS_API_KEY_MIN_LENGTH',
  'TAS_NONCE_EXPIRATION_SECONDS',
  'TAS_REDIS_HOST',
  'TAS_REDIS_PORT',
  'TAS_REDIS_PASSWORD',
  'TAS_PLUGIN_PREFIX',
  'TAS_KBM_PLUGIN',
  'TAS_KBM_CONFIG_FILE',
  'TAS_EXTRA_PLUGIN_DIR',
  'TAS_POLICY_TRUST',
  'TAS_ENFORCE_SIGNED_POLICIES',
  'TAS_CLIENT_RATE_LIMIT',
  'TAS_CONFIG_FILE', // read by the loader itself
];

/** UNSUPPORTED_ORIGINAL: environment names that stop startup, each with its migration hint. */
export const UNSUPPORTED_ORIGINAL: Readonly<Record<string, string>> = {
  // tas/config.py BaseConfig and config_loader.py
  TAS_VERSION: 'the version is that of the installed tas package and cannot be configured; remove it',
  TAS_CONFIG_CLASS: 'there are no configuration classes; use TAS_CONFIG_FILE and the settings of the README "Configuration reference"',
  TAS_MANAGEMENT_API_KEY_MIN_LENGTH: 'TAS_API_KEY_MIN_LENGTH applies to client and management keys alike',
  TAS_REDIS_PERSISTENCE: 'tas never reconfigures Redis (CONFIG SET); enable AOF/RDB in redis.conf, /management/status reports the persistence in use',
  TAS_EPHEMERAL_REDIS_URI: 'tas keeps nonces and policies in one store: set TAS_STORE=redis and TAS_REDIS_URL',
  TAS_EPHEMERAL_REDIS_PASSWORD: 'tas keeps nonces and policies in one store: use TAS_REDIS_PASSWORD',
  TAS_EXPERIMENTAL_FEATURES: 'the experimental incremental policy routes are not served; store complete signed policies instead',
  TAS_TRUSTED_KEYS: 'internal name of the original; set TAS_POLICY_TRUST to a file or directory of PEM keys',
  TAS_POLICY_REQUIRE_SIGNED: 'renamed: use TAS_ENFORCE_SIGNED_POLICIES',
  TAS_TRUST_X_FORWARDED_FOR: 'use TAS_TRUSTED_PROXIES=<CIDR,...>: X-Forwarded-For is believed only from those addresses',
  TAS_CERTIFY_MAX_POLICIES: 'certify evaluates exactly one signed policy, policy:<policy-domain>; remove the setting',
  // Names operators commonly guess from other Python services; refused rather than ignored.
  TAS_REDIS_DB: 'tas keeps all its keys under TAS_REDIS_KEY_PREFIX; put the database number in TAS_REDIS_URL (redis://host:port/<db>)',
  TAS_DEBUG: 'use TAS_OVERRIDE__logging__level=debug',
  TAS_LOG_LEVEL: 'use TAS_OVERRIDE__logging__level',
  TAS_LOG_FILE: 'use TAS_OVERRIDE__logging__file',
  TAS_KBM_SECRET_KEY: 'secrets live in the key broker only (TAS_KBM_PLUGIN + TAS_KBM_CONFIG_FILE)',
  TAS_VERIFY_SIGNATURE: 'report signatures are always verified',
  TAS_SKIP_CERT_VERIFY: 'certificate chains are always verified against the pinned AMD roots; labs add roots with TAS_SNP_EXTRA_TRUST_DIR',
};

/** FLASK_* (config_loader.apply_flask_env_overrides mapped every FLASK_<KEY> onto Flask's config). */
export const FLASK_HINT =
  'tas is not a Flask application: FLASK_* settings have no effect on it; remove them (debug logging: TAS_OVERRIDE__logging__level=debug, body limits are built in)';

/** UNSUPPORTED_NESTED: nested paths of the original's `TAS:` section / `TAS_OVERRIDE__` -> hint. */
export const UNSUPPORTED_NESTED: Readonly<Record<string, string>> = {
  'limits.max_nonce_per_minute': 'use TAS_CLIENT_RATE_LIMIT (e.g. 120/minute), a limit per client address',
  'logging.verbose': 'use TAS_OVERRIDE__logging__level=debug',
  'logging.quiet': 'use TAS_OVERRIDE__logging__level=warning',
  'logging.cli': 'tas always logs JSON lines (journald keeps them); pipe through `pino-pretty` to read them by eye',
};

/** ORIGINAL_FILE_KEYS: upper-case top-level keys of the original's config file -> hint. */
export const ORIGINAL_FILE_KEYS: Readonly<Record<string, string>> = {
  SERVER_BIND_HOST: 'use server.host (the default is 127.0.0.1; `::` for dual stack)',
  SERVER_PORT: 'use server.port',
  DEBUG: 'a Flask setting; use logging.level: debug',
  TESTING: 'a Flask setting; remove it',
  SECRET_KEY: 'a Flask setting (sessions); tas has no sessions: remove it',
  JSON_SORT_KEYS: 'a Flask setting; remove it',
  JSONIFY_PRETTYPRINT_REGULAR: 'a Flask setting; remove it',
  PROPAGATE_EXCEPTIONS: 'a Flask setting; remove it',
  TRAP_HTTP_EXCEPTIONS: 'a Flask setting; remove it',
  TRAP_BAD_REQUEST_ERRORS: 'a Flask setting; remove it',
  SESSION_COOKIE_NAME: 'a Flask setting; remove it',
  MAX_CONTENT_LENGTH: 'a Flask setting; tas bounds every body itself (get_secret 64 KiB, management 1 MiB)',
  TAS: 'the original\'s nested `TAS:` section: move its members to the top level (e.g. TAS.logging.level -> logging.level)',
};

/**
 * hintForFileKey explains an unknown path of a config file when it is a name of the original:
 * `TAS_API_KEY: ...` (its flat style), `SERVER_PORT`, Flask keys, `RATELIMIT_*`, `TAS.logging.*`.
 */
export function hintForFileKey(path: string, envToPath: (env: string) => string | undefined): string | undefined {
  const top = path.split('.')[0]!;
  if (top !== top.toUpperCase()) return UNSUPPORTED_NESTED[path];
  const mapped = envToPath(top);
  if (mapped !== undefined) return `the original's flat name; in a tas config file write ${mapped.split('.').join(': ')}: ... (or set ${top} in the environment)`;
  if (UNSUPPORTED_ORIGINAL[top] !== undefined) return UNSUPPORTED_ORIGINAL[top];
  if (top === 'TAS') {
    const rest = path.split('.').slice(1).join('.');
    return UNSUPPORTED_NESTED[rest] ?? ORIGINAL_FILE_KEYS.TAS;
  }
  if (top.startsWith('RATELIMIT_')) return 'Flask-Limiter settings; use TAS_CLIENT_RATE_LIMIT (server.rate_limit)';
  return ORIGINAL_FILE_KEYS[top];
}
