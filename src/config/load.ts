/**
 * Configuration loading exactly as PROTOCOL.md §5 says. Sources, later wins:
 *   built-in defaults < config file (TAS_CONFIG_FILE or --config; YAML or JSON)
 *   < environment (incl. `_FILE` forms and `$CREDENTIALS_DIRECTORY/<NAME>`)
 *   < `TAS_OVERRIDE__a__b=value`.
 * Environment values are coerced (JSON, then true/false, then integer, else string) except for
 * secrets, strings and paths, which are taken verbatim. Lists are comma separated. Unknown settings,
 * wrong types and names of the original TAS that tas does not support stop startup with a message
 * naming the setting. The result is deep-frozen.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { maskUrlsDeep } from './mask';
import { allSettings, isSecret, settingByEnv, settingByPath, type SettingSpec } from './registry';
import { FLASK_HINT, hintForFileKey, UNSUPPORTED_NESTED, UNSUPPORTED_ORIGINAL } from './unsupported';

/** Where a value came from (shown by `tas config check`). */
export type Source = 'default' | 'file' | 'env' | 'env-file' | 'credential' | 'cli' | 'override';

/** ConfigError lists every problem found; startup prints them and exits 2. */
export class ConfigError extends Error {
  readonly problems: readonly string[];
  /** Paths of required settings that have no value (`tas serve --dev` fills in development keys). */
  readonly missing: readonly string[];
  constructor(problems: readonly string[], missing: readonly string[] = []) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
    this.missing = missing;
  }
}

/** Config is the frozen, validated configuration. */
export class Config {
  readonly values: Readonly<Record<string, unknown>>;
  readonly sources: Readonly<Record<string, Source>>;
  readonly file: string | undefined;

  constructor(values: Record<string, unknown>, sources: Record<string, Source>, file: string | undefined) {
    this.values = deepFreeze(values);
    this.sources = Object.freeze(sources);
    this.file = file;
    Object.freeze(this);
  }

  /** get returns the value of a registered setting (undefined when unset and without default). */
  get<T>(path: string): T {
    if (!settingByPath(path)) throw new Error(`unregistered setting ${path}`);
    return this.values[path] as T;
  }

  /** effective lists every setting with its value (secrets masked) and source. */
  effective(): Array<{ path: string; env: string | undefined; value: unknown; source: Source; secret: boolean }> {
    return allSettings().map((s) => ({
      path: s.path,
      env: s.env[0],
      value: mask(s, this.values[s.path]),
      source: this.sources[s.path] ?? 'default',
      secret: isSecret(s),
    }));
  }
}

/**
 * mask hides secret values (keeps the count of list entries) and the userinfo of URLs in every
 * other text value (TAS_REDIS_URL, TAS_KDS_PROXY, ...: see ./mask.ts).
 */
export function mask(s: SettingSpec, v: unknown): unknown {
  if (v === undefined) return v;
  if (!isSecret(s)) return maskUrlsDeep(v);
  if (Array.isArray(v)) return v.map(() => '***');
  return '***';
}

/** The configuration file of the installed product (PROTOCOL.md §5 fixed paths). */
export const INSTALLED_CONFIG_FILE = '/etc/tas/tas.yaml';

/** The repository or package root: the nearest directory above this file with a package.json. */
function productRoot(): string {
  let d = __dirname;
  while (!existsSync(join(d, 'package.json')) && dirname(d) !== d) d = dirname(d);
  return d;
}

/**
 * installedConfigFile is the file every `tas` command reads when neither --config nor
 * TAS_CONFIG_FILE names one and it exists: /etc/tas/tas.yaml for the installed product; none in
 * a source checkout (a `.git` at the root), which keeps its development defaults (./.tas/state)
 * even on a host where the package is installed too. Tests inject a path with
 * setInstalledConfigFile.
 */
let installedConfigFile: string | undefined = existsSync(join(productRoot(), '.git')) ? undefined : INSTALLED_CONFIG_FILE;

/** setInstalledConfigFile replaces the installed-host default (tests); returns the previous one. */
export function setInstalledConfigFile(path: string | undefined): string | undefined {
  const prev = installedConfigFile;
  installedConfigFile = path;
  return prev;
}

/** The installed-host default config file in effect (undefined in a source checkout). */
export function getInstalledConfigFile(): string | undefined {
  return installedConfigFile;
}

/**
 * The files the unit's LoadCredential= lines name, next to the installed configuration:
 * `tas config check` reads the keys from them as the service would get them.
 */
export function serviceCredentialFiles(): Record<string, string> {
  if (installedConfigFile === undefined) return {};
  const dir = dirname(installedConfigFile);
  return { TAS_API_KEY: join(dir, 'api-key'), TAS_MANAGEMENT_API_KEY: join(dir, 'management-api-key') };
}

/** configFileIn says which file a load reads: --config, else TAS_CONFIG_FILE, else the installed one when it exists. */
export function configFileIn(opts: Pick<LoadOptions, 'configFile' | 'env'>): string | undefined {
  const env = opts.env ?? process.env;
  const explicit = opts.configFile ?? env.TAS_CONFIG_FILE;
  if (explicit !== undefined && explicit !== '') return explicit;
  return installedConfigFile !== undefined && existsSync(installedConfigFile) ? installedConfigFile : undefined;
}

export interface LoadOptions {
  env?: NodeJS.ProcessEnv;
  /** Explicit config file (--config); overrides TAS_CONFIG_FILE and the installed default. */
  configFile?: string;
  /**
   * Commands that do not serve (kds, policy, audit, verify) do not need the API keys: their
   * absence is no problem then (PROTOCOL.md §5 "CLI on an installed host").
   */
  keysOptional?: boolean;
  /**
   * Secrets read from these files (env name -> path) when no other source sets them and the file
   * is readable: the LoadCredential= files of the unit, for `tas config check` outside systemd.
   */
  credentialFiles?: Record<string, string>;
  /** Values given on the command line (e.g. --host, --port); they rank with the environment. */
  cli?: Record<string, unknown>;
}

/** The API keys: required by `tas serve` and `tas config check` only. */
const KEY_PATHS: readonly string[] = ['auth.client_keys', 'auth.management_keys'];

/** Environment names that are not settings but are read by the loader. */
const LOADER_ENV = new Set(['TAS_CONFIG_FILE']);

/** loadConfig reads, merges, coerces and validates every source. */
export function loadConfig(opts: LoadOptions = {}): Config {
  const env = opts.env ?? process.env;
  const problems: string[] = [];
  const raw = new Map<string, { value: unknown; source: Source; fromEnv: boolean }>();

  // 1. config file
  const file = configFileIn(opts);
  if (file !== undefined && file !== '') {
    let doc: unknown;
    try {
      const buf = readFileSync(file);
      // Bounded: a configuration is a few KiB; a wrong path to a large file stops here.
      if (buf.length > 1024 * 1024) throw new Error('larger than 1 MiB; not a configuration file');
      const text = buf.toString('utf8');
      doc = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text, { strict: true, uniqueKeys: true });
    } catch (e) {
      problems.push(`config file ${file}: ${(e as Error).message}`);
    }
    if (doc !== undefined && doc !== null) {
      if (typeof doc !== 'object' || Array.isArray(doc)) problems.push(`config file ${file}: top level must be a mapping`);
      else flatten(doc as Record<string, unknown>, '', (path, value) => {
        if (!settingByPath(path)) {
          const hint = hintForFileKey(path, (e) => settingByEnv(e)?.path);
          if (hint !== undefined) problems.push(`config file ${file}: '${path}' is a setting of the original TAS: ${hint}`);
          else problems.push(`config file ${file}: unknown setting '${path}'${suggest(path)}`);
        } else if (value !== null) {
          // `key:` with no value (YAML null) leaves the setting at its default.
          raw.set(path, { value, source: 'file', fromEnv: false });
        }
      });
    }
  }

  // 2. environment (direct, _FILE, credentials)
  const credDir = env.CREDENTIALS_DIRECTORY;
  const seen = new Set<string>();
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined) continue;
    if (name.startsWith('FLASK_')) {
      problems.push(`${name} is a setting of the original TAS that tas does not support: ${FLASK_HINT}`);
      continue;
    }
    if (!name.startsWith('TAS_') || LOADER_ENV.has(name) || name.startsWith('TAS_OVERRIDE__')) continue;
    // An empty value means unset (systemd EnvironmentFile= and shells produce them routinely).
    if (value === '') continue;
    let spec = settingByEnv(name);
    const unsupported = UNSUPPORTED_ORIGINAL[name];
    if (!spec && unsupported !== undefined) {
      problems.push(`${name} is a setting of the original TAS that tas does not support: ${unsupported}`);
      continue;
    }
    let viaFile = false;
    if (!spec && name.endsWith('_FILE')) {
      spec = settingByEnv(name.slice(0, -5));
      viaFile = spec !== undefined;
      if (spec && !isSecret(spec)) {
        problems.push(`${name}: only secrets have a _FILE form; set ${name.slice(0, -5)} instead`);
        continue;
      }
    }
    if (!spec) {
      problems.push(`unknown setting ${name}${suggest(name)}`);
      continue;
    }
    if (seen.has(spec.path)) {
      problems.push(`${spec.path} is set by more than one environment name (${spec.env.join(', ')} and their _FILE forms): keep one`);
      continue;
    }
    seen.add(spec.path);
    if (viaFile) {
      try {
        raw.set(spec.path, { value: readSecretFile(value), source: 'env-file', fromEnv: true });
      } catch (e) {
        problems.push(`${name}: cannot read ${value}: ${(e as Error).message}`);
      }
    } else {
      raw.set(spec.path, { value, source: 'env', fromEnv: true });
    }
  }
  if (credDir) {
    for (const s of allSettings()) {
      if (!isSecret(s) || seen.has(s.path)) continue;
      for (const name of [...s.env, s.path]) {
        let text: string;
        try {
          text = readSecretFile(join(credDir, name));
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT') problems.push(`credential ${name}: ${(e as Error).message}`);
          continue;
        }
        raw.set(s.path, { value: text, source: 'credential', fromEnv: true });
        seen.add(s.path);
        break;
      }
    }
  }
  const unreadableCredentials = new Map<string, string>();
  for (const [name, path] of Object.entries(opts.credentialFiles ?? {})) {
    const s = settingByEnv(name);
    if (!s || seen.has(s.path) || raw.has(s.path)) continue;
    try {
      raw.set(s.path, { value: readSecretFile(path), source: 'credential', fromEnv: true });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') unreadableCredentials.set(s.path, `${path} is not readable by this user (${code ?? (e as Error).message}): run as root, as the service's credentials are`);
    }
  }

  // 3. command line values (--host, --port) rank above the environment, below TAS_OVERRIDE__
  for (const [path, value] of Object.entries(opts.cli ?? {})) {
    if (value === undefined) continue;
    if (!settingByPath(path)) problems.push(`command line: unknown setting '${path}'`);
    else raw.set(path, { value, source: 'cli', fromEnv: false });
  }

  // 4. TAS_OVERRIDE__a__b
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined || !name.startsWith('TAS_OVERRIDE__')) continue;
    const parts = name.slice('TAS_OVERRIDE__'.length).split('__');
    const path = parts.map((p) => p.toLowerCase()).join('.');
    if (parts.some((p) => p === '') || !settingByPath(path)) {
      const hint = UNSUPPORTED_NESTED[path];
      if (hint !== undefined) problems.push(`${name} is a setting of the original TAS that tas does not support: ${hint}`);
      else problems.push(`${name}: unknown setting '${path}'${suggest(path)}`);
      continue;
    }
    raw.set(path, { value, source: 'override', fromEnv: true });
  }

  // 5. coerce, default, validate
  const values: Record<string, unknown> = {};
  const sources: Record<string, Source> = {};
  const missing: string[] = [];
  const get = (p: string): unknown => values[p];
  for (const s of allSettings()) {
    const r = raw.get(s.path);
    let v: unknown;
    if (r !== undefined) {
      try {
        v = coerce(s, r.value, r.fromEnv);
        sources[s.path] = r.source;
      } catch (e) {
        problems.push(`${label(s)}: ${(e as Error).message} (see README "${s.section}")`);
        continue;
      }
    } else if (s.default !== undefined) {
      v = typeof s.default === 'function' ? (s.default as (c: { env: NodeJS.ProcessEnv; get: typeof get }) => unknown)({ env, get }) : s.default;
      sources[s.path] = 'default';
    }
    if (v === undefined) {
      if (s.required && !(opts.keysOptional && KEY_PATHS.includes(s.path))) {
        const why = unreadableCredentials.get(s.path);
        problems.push(why ? `${label(s)} is required: ${why}` : `${label(s)} is required (see README "${s.section}")`);
        missing.push(s.path);
      }
      continue;
    }
    values[s.path] = v;
  }
  for (const s of allSettings()) {
    const v = values[s.path];
    if (v === undefined || !s.check) continue;
    const msg = s.check(v, get);
    if (msg) problems.push(`${label(s)}: ${msg} (see README "${s.section}")`);
  }
  if (problems.length) throw new ConfigError(problems, missing);
  return new Config(values, sources, file || undefined);
}

function label(s: SettingSpec): string {
  return s.env.length ? `${s.env[0]} (${s.path})` : s.path;
}

/** readSecretFile reads a secret from a file, dropping one trailing newline. */
function readSecretFile(path: string): string {
  const buf = readFileSync(path);
  // Bounded: a secret file is a few keys, never megabytes (a wrong path to a large file stops here).
  if (buf.length > 64 * 1024) throw new Error(`${path} is larger than 64 KiB; not a secret file`);
  return buf.toString('utf8').replace(/\r?\n$/, '');
}

/** coerce turns a raw value (string from the environment, or a YAML value) into the setting's type. */
export function coerce(s: SettingSpec, value: unknown, fromEnv: boolean): unknown {
  const verbatim = s.type === 'string' || s.type === 'secret' || s.type === 'path';
  let v = value;
  if (fromEnv && typeof v === 'string' && !verbatim) {
    if (s.type === 'list' || s.type === 'secret-list') v = splitList(v, s.type === 'secret-list');
    else v = coerceScalar(v);
  }
  switch (s.type) {
    case 'string':
    case 'path':
    case 'secret':
      if (typeof v !== 'string') throw new Error(`must be a string, got ${typeName(v)}`);
      if ((s.type === 'path' || s.type === 'secret') && v === '') throw new Error('must not be empty');
      if (v.includes('\0')) throw new Error('must not contain NUL bytes');
      return v;
    case 'secret-list':
    case 'list': {
      const list = typeof v === 'string' ? splitList(v, s.type === 'secret-list') : v;
      if (!Array.isArray(list) || list.some((x) => typeof x !== 'string')) throw new Error(`must be a list of strings, got ${typeName(v)}`);
      return list.map((x: string) => (s.type === 'list' ? x.trim() : x)).filter((x: string) => x !== '');
    }
    case 'integer':
      if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new Error(`must be an integer, got ${typeName(v)}`);
      if (s.min !== undefined && v < s.min) throw new Error(`must be >= ${s.min}, got ${v}`);
      if (s.max !== undefined && v > s.max) throw new Error(`must be <= ${s.max}, got ${v}`);
      return v;
    case 'boolean':
      if (typeof v !== 'boolean') throw new Error(`must be true or false, got ${typeName(v)}`);
      return v;
    case 'enum': {
      const text = typeof v === 'string' ? v : String(v);
      const alias = s.aliases?.[text.toLowerCase()];
      const hit = s.values?.find((x) => x.toLowerCase() === (alias ?? text).toLowerCase());
      if (hit === undefined) throw new Error(`must be one of ${s.values?.join(', ')}, got '${text}'`);
      return hit;
    }
  }
}

/** coerceScalar: JSON, then true/false, then integer, else the string itself. */
function coerceScalar(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    /* not JSON */
  }
  if (/^(true|false)$/i.test(text)) return text.toLowerCase() === 'true';
  if (/^-?\d+$/.test(text)) return Number(text);
  return text;
}

/** splitList: a JSON array, or comma separated (secrets: also newline separated, for files). */
function splitList(text: string, secret: boolean): string[] {
  const t = text.trim();
  if (t.startsWith('[')) {
    try {
      const a: unknown = JSON.parse(t);
      if (Array.isArray(a)) return a.map(String);
    } catch {
      /* fall through */
    }
  }
  return text.split(secret ? /[,\n]/ : /,/).map((x) => x.trim()).filter((x) => x !== '');
}

function typeName(v: unknown): string {
  if (Array.isArray(v)) return 'a list';
  if (v === null) return 'null';
  if (typeof v === 'object') return 'a mapping';
  return `${typeof v} ${JSON.stringify(v)}`;
}

/** flatten walks a YAML document: a mapping whose path is a registered leaf is a value, else recurse. */
function flatten(obj: Record<string, unknown>, prefix: string, out: (path: string, value: unknown) => void): void {
  for (const [k, v] of Object.entries(obj)) {
    const path = prefix ? `${prefix}.${k}` : k;
    if (settingByPath(path) || v === null || typeof v !== 'object' || Array.isArray(v)) out(path, v);
    else flatten(v as Record<string, unknown>, path, out);
  }
}

/** suggest proposes the closest known name. */
function suggest(name: string): string {
  const candidates = allSettings().flatMap((s) => [s.path, ...s.env]);
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = distance(name.toLowerCase(), c.toLowerCase());
    if (d < bestD) [best, bestD] = [c, d];
  }
  return best !== undefined && bestD <= Math.max(2, name.length / 4) ? ` (did you mean ${best}?)` : '';
}

function distance(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0]!;
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j]!;
      dp[j] = Math.min(dp[j]! + 1, dp[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length]!;
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o as object)) deepFreeze(v);
  }
  return o;
}
