/**
 * Environment names of the original (Python) TAS that tas does not support, each with a migration
 * hint. Setting one stops startup: silently ignoring it would run a different service than the
 * operator configured.
 */
export const UNSUPPORTED_ORIGINAL: Readonly<Record<string, string>> = {
  TAS_REDIS_DB: 'tas keeps all its keys under TAS_REDIS_KEY_PREFIX; put the database number in TAS_REDIS_URL (redis://host:port/<db>)',
  TAS_DEBUG: 'use TAS_OVERRIDE__logging__level=debug',
  TAS_LOG_LEVEL: 'use TAS_OVERRIDE__logging__level',
  TAS_KBM_SECRET_KEY: 'secrets live in the key broker only (TAS_KBM_PLUGIN + TAS_KBM_CONFIG_FILE)',
  TAS_VERIFY_SIGNATURE: 'report signatures are always verified',
  TAS_SKIP_CERT_VERIFY: 'certificate chains are always verified against the pinned AMD roots; labs add roots with TAS_SNP_EXTRA_TRUST_DIR',
};
