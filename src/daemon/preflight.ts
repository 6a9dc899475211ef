/**
 * preflight: every check `tas serve` makes on a loaded configuration before it binds a port, as
 * one function that both `tas serve` (first thing after loading) and `tas config check` call, so
 * that a configuration check says exactly what the service would refuse, with the same words:
 *   - listeners: TLS files readable, plain HTTP off loopback refused, mTLS consistent;
 *   - store: Redis settings (TLS files) resolvable, or the embedded state and cache dirs writable;
 *   - key broker: the plugin found and loadable, its own config valid (plugin.check; with
 *     `connect`, opened and asked for health, which contacts the backend);
 *   - trust: TAS_SNP_EXTRA_TRUST_DIR and TAS_POLICY_TRUST load completely;
 *   - files the service appends to (audit, log) can be opened;
 *   - checks other modules register (registerPreflight: TDX, NVIDIA trust, ...).
 * Each problem is one line naming the setting and what to do. Problems are configuration errors
 * (exit 2). Warnings (no key broker configured, test roots trusted) do not stop the service.
 */
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import pino from 'pino';
import type { Config } from '../config';
import { isLoopbackHost, type TlsOptions } from '../http';
import { checkManifest, isKbmError, KBM_HELPERS, resolvePlugin } from '../kbm';
import { PolicyTrust } from '../policy/trust';
import { loadSnpTrust, testRootsWarning } from '../snp';
import { missingIntermediates } from '../snp/trust';
import { checkStoreConfig } from '../store';

/** StartupError stops the daemon before it serves anything; the message says which setting to change. */
export class StartupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StartupError';
  }
}

/** PreflightResult: problems stop `tas serve` (exit 2); warnings are printed and logged only. */
export interface PreflightResult {
  problems: string[];
  warnings: string[];
}

export interface PreflightOptions {
  /** Open the key broker and ask its backend for health (`tas config check --connect`). */
  connect?: boolean;
  /** Inherited sockets (socket activation): their address is checked at listen time, not here. */
  inheritedMain?: boolean;
  inheritedManagement?: boolean;
}

/** A check another module adds (e.g. TDX or NVIDIA trust directories); returns problem lines. */
export type PreflightCheck = (cfg: Config) => string[] | Promise<string[]>;
const extraChecks: Array<{ name: string; check: PreflightCheck }> = [];

/** registerPreflight adds a check to both `tas serve` and `tas config check` (idempotent by name). */
export function registerPreflight(name: string, check: PreflightCheck): void {
  if (!extraChecks.some((c) => c.name === name)) extraChecks.push({ name, check });
}

// --- listeners ---------------------------------------------------------------------------------------

/** readTls reads the listener's TLS files; StartupError naming the settings when one cannot be read. */
export function readTls(cfg: Config, withCa: boolean): TlsOptions | undefined {
  const cert = cfg.get<string | undefined>('server.tls.cert_file');
  const key = cfg.get<string | undefined>('server.tls.key_file');
  // Both or neither: the settings' own checks refuse one without the other.
  if (cert === undefined || key === undefined) return undefined;
  const ca = withCa ? cfg.get<string | undefined>('management.client_ca_file') : undefined;
  const read = (env: string, path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (e) {
      throw new StartupError(`${env}: cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): fix the path, or the file's owner and mode (the service user must be able to read it)`);
    }
  };
  return {
    cert: read('TAS_TLS_CERT_FILE (server.tls.cert_file)', cert),
    key: read('TAS_TLS_KEY_FILE (server.tls.key_file)', key),
    ...(ca !== undefined ? { ca: read('TAS_MANAGEMENT_CLIENT_CA_FILE (management.client_ca_file)', ca) } : {}),
  };
}

/** plaintextRefusal says why plain HTTP on `host` is refused (undefined when allowed). */
export function plaintextRefusal(cfg: Config, what: string, host: string): string | undefined {
  if (isLoopbackHost(host) || cfg.get<boolean>('server.allow_plaintext')) return undefined;
  return `${what}: plain HTTP on non-loopback address ${host} is refused: set TAS_TLS_CERT_FILE and TAS_TLS_KEY_FILE, or TAS_ALLOW_PLAINTEXT=true`;
}

/** MTLS_WITHOUT_LISTENER: TAS_MANAGEMENT_CLIENT_CA_FILE without TLS and a separate management listener. */
export const MTLS_WITHOUT_LISTENER = 'TAS_MANAGEMENT_CLIENT_CA_FILE needs TAS_TLS_CERT_FILE/TAS_TLS_KEY_FILE and a separate management listener';

/** listenerProblems: the checks startDaemon makes before listening, as lines. */
export function listenerProblems(cfg: Config, opts: PreflightOptions = {}): string[] {
  const out: string[] = [];
  const mgmtHost = cfg.get<string | undefined>('management.host');
  const separate = mgmtHost !== undefined || opts.inheritedManagement === true;
  const attempt = <T>(f: () => T): T | undefined => {
    try {
      return f();
    } catch (e) {
      if (!out.includes((e as Error).message)) out.push((e as Error).message);
      return undefined;
    }
  };
  const tlsMain = attempt(() => readTls(cfg, false));
  const tlsMgmt = separate ? attempt(() => readTls(cfg, true)) : undefined;
  const tlsSet = cfg.get<string | undefined>('server.tls.cert_file') !== undefined;
  if (cfg.get<string | undefined>('management.client_ca_file') !== undefined && !(tlsSet && separate)) out.push(MTLS_WITHOUT_LISTENER);
  if (!tlsSet && !tlsMain && opts.inheritedMain !== true) {
    const r = plaintextRefusal(cfg, 'main listener', cfg.get<string>('server.host'));
    if (r) out.push(r);
  }
  if (!tlsSet && !tlsMgmt && mgmtHost !== undefined && opts.inheritedManagement !== true) {
    const r = plaintextRefusal(cfg, 'management listener', mgmtHost);
    if (r) out.push(r);
  }
  return out;
}

// --- key broker --------------------------------------------------------------------------------------

/**
 * kbmUnconfigured: no key broker was chosen (kbm.plugin and kbm.config_file both unset, as in the
 * shipped /etc/tas/tas.yaml). The service then runs not ready and says so; nothing is released.
 */
export function kbmUnconfigured(cfg: Config): boolean {
  return (cfg.sources['kbm.plugin'] ?? 'default') === 'default' && cfg.get<string | undefined>('kbm.config_file') === undefined;
}

/** NO_KBM_REASON: the not-ready reason (readiness, `systemctl status`) when no key broker is configured. */
export const NO_KBM_REASON = 'no key broker configured: set kbm.plugin and kbm.config_file (TAS_KBM_PLUGIN, TAS_KBM_CONFIG_FILE) in /etc/tas/tas.yaml, then systemctl restart tas';

/** kbmProblem is the one line for a key broker that cannot be opened (serve and config check). */
export function kbmProblem(e: unknown, name: string): string {
  return `key broker (TAS_KBM_PLUGIN ${name}, TAS_KBM_CONFIG_FILE): ${isKbmError(e) ? e.message : `plugin ${name} failed to open: ${(e as Error).message}`}`;
}

async function kbmProblems(cfg: Config, connect: boolean, warnings: string[]): Promise<string[]> {
  if (kbmUnconfigured(cfg)) {
    warnings.push(NO_KBM_REASON);
    return [];
  }
  const name = cfg.get<string>('kbm.plugin');
  try {
    const { plugin, candidate } = resolvePlugin(cfg);
    const configFile = cfg.get<string | undefined>('kbm.config_file');
    const log = pino({ level: 'silent' });
    if (connect) {
      const broker = await plugin.open(configFile, { log, helpers: KBM_HELPERS });
      try {
        checkManifest(broker.manifest, name, `${candidate.entry} (opened broker)`);
        const h = await broker.health();
        if (!h.ok) return [`key broker ${name}: backend not ready: ${h.detail ?? 'no detail'}`];
      } finally {
        await broker.close();
      }
    } else if (plugin.check) {
      await plugin.check(configFile, { log, helpers: KBM_HELPERS });
    } else {
      warnings.push(`key broker ${name}: the plugin has no offline check; its config is checked at start (or now with --connect)`);
    }
    return [];
  } catch (e) {
    return [kbmProblem(e, name)];
  }
}

// --- trust and files ---------------------------------------------------------------------------------

function trustProblems(cfg: Config, warnings: string[]): string[] {
  const out: string[] = [];
  try {
    const trust = loadSnpTrust({ extraTrustDir: cfg.get<string | undefined>('snp.extra_trust_dir') });
    const w = testRootsWarning(trust);
    if (w) warnings.push(w);
    // Extra roots given as ARKs only: their ASK/ASVK come from KDS cert_chain (verified to the ARK).
    // Say which, and that nothing can verify under them while KDS cannot be asked.
    const missing = missingIntermediates(trust);
    if (missing.length > 0) {
      const what = missing.map((m) => `${m.role} of ${m.product} (${m.kind} chains)`).join(', ');
      const base = cfg.get<string>('kds.base_url');
      warnings.push(cfg.get<boolean>('kds.offline')
        ? `TAS_SNP_EXTRA_TRUST_DIR has no ${what}, and TAS_KDS_OFFLINE=true keeps tas from taking them from ${base} cert_chain: reports under those roots cannot verify until the files are added (ask-<product>.pem, asvk-<product>.pem) or the cache holds the cert_chain`
        : `TAS_SNP_EXTRA_TRUST_DIR has no ${what}: taken from ${base} cert_chain at first use and verified to the directory's ARK`);
    }
  } catch (e) {
    const m = (e as Error).message;
    out.push(m.startsWith('TAS_SNP_EXTRA_TRUST_DIR') ? `${m}: fix or unset it` : `TAS_SNP_EXTRA_TRUST_DIR (snp.extra_trust_dir): ${m}: fix or unset it`);
  }
  const policyTrust = cfg.get<string | undefined>('policy.trust');
  try {
    PolicyTrust.fromPath(policyTrust);
  } catch (e) {
    out.push(`TAS_POLICY_TRUST (policy.trust): ${(e as Error).message}`);
  }
  if (policyTrust === undefined && cfg.get<boolean>('policy.enforce_signed')) {
    warnings.push('TAS_POLICY_TRUST (policy.trust) is unset: no signed policy can be stored until it names the policy signing keys');
  }
  return out;
}

/** appendable says why the service could not append to `file` (undefined when it can). */
function appendable(file: string): string | undefined {
  try {
    const st = statSync(file);
    if (!st.isFile()) return 'is not a regular file';
    accessSync(file, constants.W_OK);
    return undefined;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') return `is not writable (${code ?? (e as Error).message})`;
  }
  try {
    accessSync(dirname(resolve(file)), constants.W_OK | constants.X_OK);
    return undefined;
  } catch (e) {
    return `cannot be created (${(e as NodeJS.ErrnoException).code ?? (e as Error).message} on ${dirname(resolve(file))})`;
  }
}

function fileProblems(cfg: Config): string[] {
  const out: string[] = [];
  for (const [label, path] of [['TAS_AUDIT_FILE (audit.file)', 'audit.file'], ['TAS_OVERRIDE__logging__file (logging.file)', 'logging.file']] as const) {
    const f = cfg.get<string | undefined>(path);
    if (f === undefined) continue;
    const why = appendable(f);
    if (why) out.push(`${label}: ${f} ${why}: fix the path or its permissions, or unset it`);
  }
  return out;
}

// --- all --------------------------------------------------------------------------------------------

/** preflight runs every check; `tas serve` refuses to start when problems is not empty. */
export async function preflight(cfg: Config, opts: PreflightOptions = {}): Promise<PreflightResult> {
  const warnings: string[] = [];
  const problems = [
    ...listenerProblems(cfg, opts),
    ...checkStoreConfig(cfg),
    ...fileProblems(cfg),
    ...trustProblems(cfg, warnings),
    ...(await kbmProblems(cfg, opts.connect === true, warnings)),
  ];
  for (const c of extraChecks) {
    try {
      problems.push(...(await c.check(cfg)));
    } catch (e) {
      problems.push(`${c.name}: ${(e as Error).message}`);
    }
  }
  return { problems, warnings };
}
