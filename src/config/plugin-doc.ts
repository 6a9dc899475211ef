/**
 * The first steps every plugin config file takes (key brokers and certificate signers alike):
 * parse strictly (duplicate keys are an error, so a second `pin_file` cannot quietly win), insist on
 * a mapping, refuse unknown members (a typo must not silently fall back to a default), and read
 * string members. Each plugin keeps its own error class and message prefix through `fail`.
 */
import { parse as parseYaml } from 'yaml';

export interface PluginDocument {
  readonly doc: Record<string, unknown>;
  /** A non-empty string member, or undefined when absent. */
  str(key: string): string | undefined;
  /** A required non-empty string member. */
  need(key: string, what?: string): string;
}

export interface PluginDocumentOptions {
  /** `.json` files are parsed as JSON (the key-broker plugins accept both). */
  readonly jsonByExtension?: boolean;
  /** How a string member is described when it is not one ("must be <stringKind>"). */
  readonly stringKind?: string;
}

/**
 * parsePluginDocument parses `text` (read from `file`) and checks its shape; `fail(message)` builds
 * the plugin's own error for a message that does not name the file (the plugin adds it).
 */
export function parsePluginDocument(text: string, file: string, members: ReadonlySet<string>, fail: (msg: string) => Error, o: PluginDocumentOptions = {}): PluginDocument {
  let doc: unknown;
  const json = o.jsonByExtension === true && file.endsWith('.json');
  try {
    doc = json ? JSON.parse(text) : parseYaml(text, { strict: true, uniqueKeys: true });
  } catch (e) {
    throw fail(`not valid ${o.jsonByExtension ? 'YAML/JSON' : 'YAML'}: ${(e as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw fail('top level must be a mapping');
  const d = doc as Record<string, unknown>;
  for (const k of Object.keys(d)) if (!members.has(k)) throw fail(`unknown member '${k}' (allowed: ${[...members].join(', ')})`);
  const stringKind = o.stringKind ?? 'a non-empty string';
  const str = (k: string): string | undefined => {
    const v = d[k];
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || v === '') throw fail(`${k} must be ${stringKind}`);
    return v;
  };
  const need = (k: string, what?: string): string => {
    const v = str(k);
    if (v === undefined) throw fail(`${what ?? k} is required`);
    return v;
  };
  return { doc: d, str, need };
}
