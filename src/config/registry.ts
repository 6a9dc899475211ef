/**
 * The settings registry. Every module registers the settings it owns (PROTOCOL.md §5 names) from
 * its own `settings.ts`; `src/config/all-settings.ts` imports all of them so that the registry is
 * complete before the first load. The loader (./load.ts) validates against it, the README
 * configuration reference is generated from it, and `tas config check` prints it.
 */

/** SettingType is how a value is coerced and validated. */
export type SettingType =
  | 'string' // verbatim text
  | 'secret' // verbatim text, masked everywhere, has _FILE and credential forms
  | 'secret-list' // list of secrets (key rotation)
  | 'integer'
  | 'boolean'
  | 'enum'
  | 'list' // list of strings (comma separated in the environment)
  | 'path'; // verbatim text naming a file or directory

/** SettingSpec describes one setting. */
export interface SettingSpec {
  /** YAML path, dot separated, lower case (e.g. `auth.client_keys`). */
  readonly path: string;
  /** Environment names; the first is the primary name (e.g. `TAS_API_KEY`). Empty: YAML/override only. */
  readonly env: readonly string[];
  readonly type: SettingType;
  /** Default value, or a function of the environment and of the already resolved values. */
  readonly default?: unknown | ((ctx: DefaultContext) => unknown);
  /** Text shown in the README for the default when it is computed. */
  readonly defaultDoc?: string;
  readonly required?: boolean;
  /** Allowed values for `enum`. */
  readonly values?: readonly string[];
  /** Other accepted spellings of `enum` values (lower case) -> the canonical value. */
  readonly aliases?: Readonly<Record<string, string>>;
  readonly min?: number;
  readonly max?: number;
  /** Extra semantic check; returns a message when the value is wrong. */
  readonly check?: (value: unknown, get: (path: string) => unknown) => string | undefined;
  /** Re-read on SIGHUP (keys, TLS certificates, log level, policy trust). */
  readonly reload?: boolean;
  /** README section that explains it (used in error messages). */
  readonly section: string;
  /** One line of documentation. */
  readonly doc: string;
}

/** DefaultContext is given to computed defaults. */
export interface DefaultContext {
  readonly env: NodeJS.ProcessEnv;
  /** Value of another setting (resolved in registration order; register dependencies first). */
  get(path: string): unknown;
}

const specs = new Map<string, SettingSpec & { owner: string }>();
const byEnv = new Map<string, string>();

/**
 * registerSettings adds the settings of one module. Registering a path or environment name twice
 * is a programming error and throws.
 */
export function registerSettings(owner: string, list: readonly SettingSpec[]): void {
  for (const s of list) {
    if (specs.has(s.path)) throw new Error(`setting ${s.path} registered twice`);
    for (const e of s.env) {
      if (byEnv.has(e)) throw new Error(`environment name ${e} registered twice`);
      if (!/^TAS_[A-Z0-9_]+$/.test(e)) throw new Error(`bad environment name ${e}`);
    }
    if (!/^[a-z0-9_]+(\.[a-z0-9_]+)*$/.test(s.path)) throw new Error(`bad setting path ${s.path}`);
    if (s.type === 'enum' && !s.values?.length) throw new Error(`enum setting ${s.path} has no values`);
    for (const [a, v] of Object.entries(s.aliases ?? {})) {
      if (!s.values?.includes(v)) throw new Error(`setting ${s.path}: alias ${a} names unknown value ${v}`);
    }
    specs.set(s.path, { ...s, owner });
    for (const e of s.env) byEnv.set(e, s.path);
  }
}

/** allSettings lists every registered setting in registration order. */
export function allSettings(): ReadonlyArray<SettingSpec & { owner: string }> {
  return [...specs.values()];
}

/** settingByPath returns the spec of a path. */
export function settingByPath(path: string): (SettingSpec & { owner: string }) | undefined {
  return specs.get(path);
}

/** settingByEnv returns the spec of an environment name. */
export function settingByEnv(name: string): (SettingSpec & { owner: string }) | undefined {
  const p = byEnv.get(name);
  return p === undefined ? undefined : specs.get(p);
}

/** isSecret tells whether a setting's values are masked. */
export function isSecret(s: SettingSpec): boolean {
  return s.type === 'secret' || s.type === 'secret-list';
}
