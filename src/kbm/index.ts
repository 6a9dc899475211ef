/**
 * Public surface of the key broker module: plugin discovery and loading (PROTOCOL.md §4), the
 * wrapping helpers, and KbmService, the facade src/attest calls.
 *
 * Discovery: plugins are directories (or single `.js` files) named `<prefix>*` in the shipped
 * `plugins/` directory (resolved from this file, so it works from src/ under tsx and from dist/
 * after tsc, where plugins compile to dist/plugins) and in TAS_EXTRA_PLUGIN_DIR. Only the plugin
 * named by TAS_KBM_PLUGIN is loaded; a name found in both places is refused (an extra directory
 * must not silently shadow a shipped broker). The manifest name and API version are checked at
 * load; any mismatch stops startup.
 */
import { existsSync, lstatSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Config } from '../config';
import type { AppContext } from '../daemon/context';
import type { TasError } from '../errors';
import {
  checkKeyId, isKbmError, KBM_API_VERSION, KbmError, toTasError,
  type KbmHealth, type KbmHelpers, type KbmManifest, type KbmPlugin, type KeyBroker, type SecretKeyReply,
} from './types';
import { checkWrappingKey, wrapAesGcm, wrapKwp, type WrappingKey } from './wrap';

export * from './types';
export {
  parseWrappingKey, parseWrappingKeyWithFormat, checkWrappingKey, wrapAesGcm, wrapKwp, kwpWrap, kwpReply, oaepWrap,
  AES_KWP_ALGORITHM, MIN_RSA_BITS, MAX_RSA_BITS, MAX_WRAPPING_KEY_SIZE,
} from './wrap';
export type { WrappingKeyFormat } from './wrap';

/** KBM_HELPERS is handed to every plugin at open (deps.helpers). */
export const KBM_HELPERS: KbmHelpers = Object.freeze({ KbmError, checkKeyId, checkWrappingKey, wrapAesGcm, wrapKwp });

/** SHIPPED_PLUGIN_DIR is `plugins/` next to `src/` (or dist/plugins next to dist/src). */
export const SHIPPED_PLUGIN_DIR = resolve(__dirname, '..', '..', 'plugins');

/** PluginCandidate is one discovered plugin (not loaded). */
export interface PluginCandidate {
  readonly name: string;
  /** File that is required to load it. */
  readonly entry: string;
  readonly dir: string;
}

/** entryOf finds the loadable file of a plugin directory entry (compiled .js first, .ts under tsx). */
function entryOf(dir: string, name: string): string | undefined {
  const p = join(dir, name);
  let st;
  try {
    st = statSync(p);
  } catch {
    return undefined;
  }
  if (st.isDirectory()) {
    for (const f of ['index.js', 'index.ts']) if (existsSync(join(p, f))) return join(p, f);
    return undefined;
  }
  return undefined;
}

/**
 * discoverPlugins lists the plugins whose names start with prefix in the given directories. A
 * directory `<name>/` with index.js (or index.ts under tsx) or a file `<name>.js` is a plugin.
 */
export function discoverPlugins(prefix: string, dirs: readonly string[]): PluginCandidate[] {
  const out: PluginCandidate[] = [];
  for (const dir of dirs) {
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch (e) {
      throw new KbmError('config', `plugin directory ${dir} cannot be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    for (const n of names) {
      if (!n.startsWith(prefix)) continue;
      if (n.endsWith('.js') && !n.endsWith('.d.js')) {
        const name = n.slice(0, -3);
        if (/^[A-Za-z0-9_]+$/.test(name)) out.push({ name, entry: join(dir, n), dir });
        continue;
      }
      if (!/^[A-Za-z0-9_]+$/.test(n)) continue;
      const entry = entryOf(dir, n);
      if (entry) out.push({ name: n, entry, dir });
    }
  }
  return out;
}

/** pluginDirs are the directories searched for a configuration. */
export function pluginDirs(cfg: Config): string[] {
  const extra = cfg.get<string | undefined>('kbm.extra_dir');
  return extra === undefined ? [SHIPPED_PLUGIN_DIR] : [SHIPPED_PLUGIN_DIR, resolve(extra)];
}

function isPlugin(x: unknown): x is KbmPlugin {
  if (typeof x !== 'object' || x === null) return false;
  const p = x as { manifest?: unknown; open?: unknown };
  return typeof p.open === 'function' && typeof p.manifest === 'object' && p.manifest !== null;
}

/** checkManifest refuses a manifest that is not the expected plugin or API version. */
export function checkManifest(m: KbmManifest | undefined, name: string, where: string): void {
  if (!m || typeof m.name !== 'string' || typeof m.apiVersion !== 'number') throw new KbmError('config', `${where}: plugin ${name} has no valid manifest {name, apiVersion}`);
  if (m.name !== name) throw new KbmError('config', `${where}: plugin ${name} declares the name '${m.name}'`);
  if (m.apiVersion !== KBM_API_VERSION) {
    throw new KbmError('config', `${where}: plugin ${name} implements KBM API version ${m.apiVersion}, tas needs ${KBM_API_VERSION}`);
  }
}

/** The most files looked at in one plugin directory (a plugin is a handful of modules). */
const MAX_PLUGIN_FILES = 2000;

/**
 * checkPluginPermissions refuses to run plugin code that anyone but root or the daemon's own user
 * could have replaced: the plugin runs with the daemon's access to the key backend. Every path is
 * checked for write access by its group or by every user (the sticky bit, as on /tmp, does not
 * stop others from adding files: refused as well) and for an owner other than root or the daemon's
 * effective user: the extra directory (TAS_EXTRA_PLUGIN_DIR), the plugin's own directory, its entry
 * file and, for a plugin that is a directory, every file and directory inside it (the entry may
 * require any of them). The shipped directory belongs to the package and is protected by its
 * installation.
 */
export function checkPluginPermissions(c: PluginCandidate): void {
  const paths = new Set([c.dir, dirname(c.entry), c.entry]);
  if (dirname(c.entry) !== c.dir) {
    const stack = [dirname(c.entry)];
    while (stack.length) {
      const d = stack.pop()!;
      let names: string[];
      try {
        names = readdirSync(d);
      } catch (e) {
        throw new KbmError('config', `plugin ${c.name}: cannot list ${d}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
      }
      for (const n of names) {
        const p = join(d, n);
        paths.add(p);
        if (paths.size > MAX_PLUGIN_FILES) throw new KbmError('config', `plugin ${c.name}: more than ${MAX_PLUGIN_FILES} files under ${dirname(c.entry)}`);
        if (lstatSync(p).isDirectory()) stack.push(p);
      }
    }
  }
  const me = process.geteuid?.() ?? 0;
  for (const p of paths) {
    // stat follows a symbolic link: the file that would be loaded is the one that counts, and the
    // link itself is covered by its directory's check.
    let st: ReturnType<typeof statSync>;
    try {
      st = statSync(p);
    } catch (e) {
      throw new KbmError('config', `plugin ${c.name}: cannot stat ${p}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    if (st.mode & 0o002) throw new KbmError('config', `plugin ${c.name}: ${p} is writable by every user: refusing to load it (chmod o-w)`);
    if (st.mode & 0o020) throw new KbmError('config', `plugin ${c.name}: ${p} is writable by its group: refusing to load it (chmod g-w)`);
    if (st.uid !== 0 && st.uid !== me) {
      throw new KbmError('config', `plugin ${c.name}: ${p} is owned by uid ${st.uid}, not root or the daemon's user (uid ${me}): refusing to load it`);
    }
  }
}

/** checkNotWorldWritable is the former name of checkPluginPermissions (which now checks more). */
export const checkNotWorldWritable = checkPluginPermissions;

/** loadPlugin requires a discovered plugin and checks its manifest. */
export function loadPlugin(c: PluginCandidate): KbmPlugin {
  let mod: unknown;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    mod = require(c.entry);
  } catch (e) {
    throw new KbmError('config', `plugin ${c.name} (${c.entry}) failed to load: ${(e as Error).message}`, { cause: e });
  }
  const m = mod as { default?: unknown; plugin?: unknown };
  const p = [m?.default, m?.plugin, (m?.default as { default?: unknown } | undefined)?.default, mod].find(isPlugin);
  if (!p) throw new KbmError('config', `plugin ${c.name} (${c.entry}) exports no KbmPlugin (default or \`plugin\` export with manifest and open)`);
  checkManifest(p.manifest, c.name, c.entry);
  return p;
}

/** KBM_CALL_TIMEOUT_MS bounds one backend call (release or health) seen from a request. */
export const KBM_CALL_TIMEOUT_MS = 30_000;

/** KbmContext is the part of AppContext the broker needs. */
export type KbmContext = Pick<AppContext, 'log' | 'readiness'> & Partial<Pick<AppContext, 'lifecycle'>>;

/**
 * KbmService is what src/attest calls: errors come out as TasError (catalogue KBM_*), and an
 * authentication failure latches: the service stays not-ready and stops calling the backend until
 * restart, because HSMs lock tokens after a few wrong PINs.
 */
export class KbmService {
  readonly manifest: KbmManifest;
  readonly #broker: KeyBroker;
  readonly #log: AppContext['log'];
  #authFailure: string | undefined;
  #closed = false;

  readonly #timeoutMs: number;

  constructor(broker: KeyBroker, log: AppContext['log'], opts: { timeoutMs?: number } = {}) {
    this.#broker = broker;
    this.manifest = broker.manifest;
    this.#log = log;
    this.#timeoutMs = opts.timeoutMs ?? KBM_CALL_TIMEOUT_MS;
  }

  /** #bounded makes a hung backend a 503 instead of a request that never ends. */
  #bounded<T>(p: Promise<T>, what: string): Promise<T> {
    // One timer and one promise per call (no Promise.race, no async frame): this runs per release.
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new KbmError('unavailable', `${what}: no answer from the key backend within ${this.#timeoutMs} ms`)), this.#timeoutMs);
      p.then(
        (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        (e: unknown) => {
          clearTimeout(timer);
          reject(e);
        },
      );
    });
  }

  /** timeoutMs bounds one backend call as seen from a request (it feeds the nonce claim lease). */
  get timeoutMs(): number {
    return this.#timeoutMs;
  }

  /** authFailure is the latched reason when the backend refused our credentials. */
  get authFailure(): string | undefined {
    return this.#authFailure;
  }

  /** getSecret releases keyId wrapped for wrappingKey; throws TasError. */
  async getSecret(keyId: string, wrappingKey: WrappingKey): Promise<SecretKeyReply> {
    if (this.#authFailure !== undefined) {
      throw toTasError(new KbmError('auth_failed', `not retried after an authentication failure: ${this.#authFailure}`), keyId);
    }
    try {
      checkKeyId(keyId);
      checkWrappingKey(wrappingKey);
      return await this.#bounded(this.#broker.getSecret(keyId, wrappingKey), 'get_secret');
    } catch (e) {
      const err = this.#map(e, keyId);
      // #log is the broker's child logger: it already carries `kbm` (a second one duplicates the JSON key).
      this.#log.warn({ code: err.code, reason: err.reason, detail: err.detail }, 'key release failed');
      throw err;
    }
  }

  #map(e: unknown, keyId: string): TasError {
    if (isKbmError(e) && e.kind === 'auth_failed' && this.#authFailure === undefined) {
      this.#authFailure = e.message;
      this.#log.error({ detail: e.message }, 'key broker refused our credentials: not ready until restart (never retried)');
    }
    return toTasError(e, keyId);
  }

  /** health asks the backend (unless an authentication failure is latched). */
  async health(): Promise<KbmHealth> {
    if (this.#closed) return { ok: false, detail: 'closed' };
    if (this.#authFailure !== undefined) return { ok: false, authFailed: true, detail: this.#authFailure };
    let h: KbmHealth;
    try {
      h = await this.#bounded(this.#broker.health(), 'health');
    } catch (e) {
      h = { ok: false, detail: e instanceof Error ? e.message : String(e), authFailed: isKbmError(e) && e.kind === 'auth_failed' };
    }
    if (h.authFailed && this.#authFailure === undefined) {
      this.#authFailure = h.detail ?? 'authentication failed';
      this.#log.error({ detail: this.#authFailure }, 'key broker refused our credentials: not ready until restart (never retried)');
    }
    return h;
  }

  /** readiness is the check registered as `kbm`. */
  async readiness(): Promise<string | undefined> {
    const h = await this.health();
    if (h.ok) return undefined;
    return h.authFailed ? `authentication failed (not retried; fix the credentials and restart): ${h.detail ?? ''}` : (h.detail ?? 'unavailable');
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#broker.close();
  }
}

/**
 * openKeyBroker discovers, loads, checks and opens the configured plugin, registers its readiness
 * check (`kbm`) and its close hook. Any problem is thrown as KbmError('config') for startup to print.
 * An authentication failure at open does not stop startup: the daemon runs not-ready and says why.
 */
/**
 * resolvePlugin finds, checks and loads the configured plugin (discovery, uniqueness, ownership,
 * manifest) without opening it: openKeyBroker and the startup preflight (`tas config check`) share it.
 */
export function resolvePlugin(cfg: Config): { plugin: KbmPlugin; candidate: PluginCandidate } {
  const prefix = cfg.get<string>('kbm.prefix');
  const name = cfg.get<string>('kbm.plugin');
  if (!name.startsWith(prefix)) throw new KbmError('config', `TAS_KBM_PLUGIN '${name}' does not start with TAS_PLUGIN_PREFIX '${prefix}'`);
  const dirs = pluginDirs(cfg);
  const found = discoverPlugins(prefix, dirs);
  const hits = found.filter((c) => c.name === name);
  if (hits.length === 0) {
    const names = [...new Set(found.map((c) => c.name))].join(', ') || 'none';
    throw new KbmError('config', `key broker plugin '${name}' not found in ${dirs.join(', ')} (found: ${names})`);
  }
  if (hits.length > 1) throw new KbmError('config', `key broker plugin '${name}' exists more than once: ${hits.map((h) => h.entry).join(', ')}`);
  if (hits[0]!.dir !== SHIPPED_PLUGIN_DIR) checkPluginPermissions(hits[0]!);
  return { plugin: loadPlugin(hits[0]!), candidate: hits[0]! };
}

export async function openKeyBroker(cfg: Config, ctx: KbmContext): Promise<KbmService> {
  const name = cfg.get<string>('kbm.plugin');
  const { plugin, candidate } = resolvePlugin(cfg);
  const hits = [candidate];
  const log = ctx.log.child({ kbm: name });
  let broker: KeyBroker;
  try {
    broker = await plugin.open(cfg.get<string | undefined>('kbm.config_file'), { log, helpers: KBM_HELPERS });
  } catch (e) {
    if (isKbmError(e) && e.kind !== 'auth_failed') throw e;
    if (!isKbmError(e)) throw new KbmError('config', `plugin ${name} failed to open: ${(e as Error).message}`, { cause: e });
    // Credentials refused at open: run not-ready (never retry), say why.
    broker = failedBroker(plugin.manifest, e.message);
  }
  checkManifest(broker.manifest, name, `${hits[0]!.entry} (opened broker)`);
  const svc = new KbmService(broker, log);
  ctx.readiness.register('kbm', () => svc.readiness());
  ctx.lifecycle?.onClose(() => svc.close());
  log.info({ entry: hits[0]!.entry, apiVersion: broker.manifest.apiVersion }, 'key broker plugin opened');
  return svc;
}

/** failedBroker stands in for a plugin whose credentials were refused at open. */
function failedBroker(manifest: KbmManifest, reason: string): KeyBroker {
  return {
    manifest,
    getSecret: async () => { throw new KbmError('auth_failed', reason); },
    health: async () => ({ ok: false, authFailed: true, detail: reason }),
    close: async () => undefined,
  };
}
