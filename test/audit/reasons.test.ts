/**
 * docs/audit.md lists every audit reason the code can emit, and only those (issue 14, finding 12).
 *
 * Reasons are extracted from the source, not from a hand-kept list, so that a reason added anywhere
 * is caught:
 *  - every catalogue code (src/errors/index.ts): a TasError without an explicit reason audits its code;
 *  - the keys of every documented reason table in the code (`export const NATIVE_CODES` and every
 *    `export const *_REASONS = {...}`): native addon codes, SNP, TDX, GPU, ... reasons;
 *  - string literals given to anything named `reason` / `*Reason` (`{ reason: 'X' }` in a TasError or
 *    an audit record, `allowReason: 'X'`, `reason = cond ? 'A' : 'B'`), up to the end of that expression;
 *  - literal first arguments of helpers whose first parameter is `reason` (`refuse('X', ...)`,
 *    `new TcbError('X', ...)`);
 *  - template reasons: `KBM_${kind}` expands over KbmErrorKind; any other template fails this test
 *    until it is taught here (a reason must be greppable).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { CATALOGUE } from '../../src/errors';

const ROOT = join(__dirname, '..', '..');
const DOC = join(ROOT, 'docs', 'audit.md');
const REASON_RE = /^[A-Z][A-Z0-9_]{2,}$/;

function sources(dir: string, out: string[] = []): string[] {
  for (const n of readdirSync(dir)) {
    const p = join(dir, n);
    if (n === 'node_modules' || n.startsWith('.')) continue;
    if (statSync(p).isDirectory()) sources(p, out);
    else if (/\.ts$/.test(n) && !n.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/**
 * expressionAt returns the source text of the expression that starts at `i`: up to the first `,`,
 * `;`, `}` or `)` outside brackets and quotes, or the end of the line at depth 0.
 */
function expressionAt(text: string, i: number): string {
  let depth = 0;
  let quote: string | undefined;
  const start = i;
  for (; i < text.length && i - start < 20_000; i++) {
    const c = text[i]!;
    if (quote) {
      if (c === '\\') i++;
      else if (c === quote) quote = undefined;
      continue;
    }
    if (c === '/' && text[i + 1] === '/') {
      // A comment (it may hold an apostrophe): skip to the end of its line.
      const nl = text.indexOf('\n', i);
      i = (nl < 0 ? text.length : nl) - 1;
      continue;
    }
    if (c === "'" || c === '"' || c === '`') quote = c;
    else if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') {
      if (depth === 0) break;
      depth--;
    } else if ((c === ',' || c === ';' || c === '\n') && depth === 0) break;
  }
  return text.slice(start, i);
}

const literals = (expr: string): string[] => [...expr.matchAll(/'([^'\\]*)'|"([^"\\]*)"/g)].map((m) => m[1] ?? m[2]!).filter((s) => REASON_RE.test(s));

/** reasonsInCode maps every reason the code can emit to where it comes from. */
function reasonsInCode(): { reasons: Map<string, string>; untaught: string[] } {
  const reasons = new Map<string, string>();
  const untaught: string[] = [];
  const add = (r: string, where: string): void => {
    if (!reasons.has(r)) reasons.set(r, where);
  };
  for (const code of Object.keys(CATALOGUE)) add(code, 'src/errors/index.ts (a catalogue code is the reason when none is given)');
  const files = [...sources(join(ROOT, 'src')), ...sources(join(ROOT, 'plugins'))];
  const texts = new Map(files.map((f) => [relative(ROOT, f), readFileSync(f, 'utf8')]));
  const kbmKinds = [...(/export type KbmErrorKind = ([^;]+);/.exec(texts.get('src/kbm/types.ts') ?? '')?.[1] ?? '').matchAll(/'([a-z_]+)'/g)].map((m) => m[1]!);
  assert.ok(kbmKinds.length >= 3, 'KbmErrorKind not found in src/kbm/types.ts: teach this test where it went');
  // Upstream services of src/kds/fetcher.ts (KDS, PCS, ...): their reasons are `${svc.name}_OFFLINE` and the like.
  const upstreams = new Set<string>();
  for (const text of texts.values()) for (const m of text.matchAll(/\{\s*name:\s*'([A-Z]+)',\s*code:\s*'[A-Z_]+'/g)) upstreams.add(m[1]!);
  assert.ok(upstreams.has('KDS'), 'the KDS upstream (src/kds/fetcher.ts) not found: teach this test where it went');
  // Helpers and classes whose first parameter is the reason.
  // name (or `new Class`) -> index of its parameter called `reason`
  const helpers = new Map<string, number>();
  for (const text of texts.values()) {
    for (const m of text.matchAll(/function (\w+)\(([^)]*)\)/g)) {
      const idx = m[2]!.split(',').findIndex((p) => /^\s*reason\s*[:=?]/.test(p));
      if (idx >= 0) helpers.set(m[1]!, idx);
    }
    for (const m of text.matchAll(/class (\w+)[^{]*\{[^}]*?constructor\(\s*(?:readonly\s+)?reason\s*:/g)) helpers.set(`new ${m[1]!}`, 0);
  }
  for (const [file, text] of texts) {
    const line = (i: number): string => `${file}:${text.slice(0, i).split('\n').length}`;
    // Documented reason tables in the code.
    for (const m of text.matchAll(/export const (NATIVE_CODES|\w*_REASONS)\b[^=]*=\s*(?=\{)/g)) {
      const body = expressionAt(text, m.index + m[0].length);
      for (const k of body.matchAll(/^\s*([A-Z][A-Z0-9_]{2,})\s*:/gm)) add(k[1]!, `${line(m.index)} (${m[1]})`);
      // Tables keyed by check name (`signature: 'GPU_SIGNATURE_INVALID'`): the values are the reasons.
      if (m[1] !== 'NATIVE_CODES') for (const r of literals(body)) add(r, `${line(m.index)} (${m[1]})`);
    }
    // Anything named reason / *Reason given a value.
    for (const m of text.matchAll(/\b(\w*[Rr]eason)\s*(?::(?!:)|=(?!=)|\?\?=)\s*/g)) {
      const expr = expressionAt(text, m.index + m[0].length);
      for (const r of literals(expr)) add(r, line(m.index));
      const tpl = /`([^`]*)`/.exec(expr);
      // Only a template shaped like a code (capitals, digits, _ and substitutions); prose is a detail.
      if (tpl && /^(?:[A-Z0-9_]|\$\{[^}]*\})+$/.test(tpl[1]!)) {
        const t = tpl[1]!;
        const upstream = /^\$\{(?:svc|service)\.name\}(_[A-Z_]+)$/.exec(t);
        if (/^KBM_\$\{/.test(t)) for (const k of kbmKinds) add(`KBM_${k.toUpperCase()}`, `${line(m.index)} (KBM_\${kind})`);
        else if (upstream) for (const u of upstreams) add(`${u}${upstream[1]}`, `${line(m.index)} (\${svc.name}${upstream[1]})`);
        else untaught.push(`${line(m.index)}: template reason \`${t}\``);
      }
    }
    for (const [h, idx] of helpers) {
      for (const m of text.matchAll(new RegExp(`(?<![\\w.])${h.replace(' ', '\\s+')}\\(`, 'g'))) {
        // Walk to the argument at the reason's position.
        let i = m.index + m[0].length;
        let arg = '';
        for (let k = 0; k <= idx; k++) {
          arg = expressionAt(text, i);
          i += arg.length + 1;
          if (text[i - 1] !== ',' && k < idx) {
            arg = '';
            break;
          }
        }
        for (const r of literals(arg)) add(r, line(m.index));
      }
    }
  }
  return { reasons, untaught };
}

/** documented returns every `REASON` in the first cell of a table row of docs/audit.md (reason tables; other tables have lower-case first cells). */
function documented(): { mentioned: Set<string>; listed: Map<string, number> } {
  const text = readFileSync(DOC, 'utf8');
  const mentioned = new Set([...text.matchAll(/`([A-Z][A-Z0-9_]{2,})`/g)].map((m) => m[1]!));
  const listed = new Map<string, number>();
  for (const [i, l] of text.split('\n').entries()) {
    if (!l.startsWith('| `')) continue;
    // Settings tables (TAS_*) are not reason tables.
    for (const m of (l.split('|')[1] ?? '').matchAll(/`([A-Z][A-Z0-9_]{2,})`/g)) if (!m[1]!.startsWith('TAS_')) listed.set(m[1]!, i + 1);
  }
  return { mentioned, listed };
}

describe('audit reasons: docs/audit.md and the code agree', () => {
  it('every reason the code can emit is listed in docs/audit.md', () => {
    const { reasons, untaught } = reasonsInCode();
    assert.deepEqual(untaught, [], 'a reason built from a template: teach test/audit/reasons.test.ts its values (reasons must be greppable)');
    assert.ok(reasons.size > 100, `only ${reasons.size} reasons extracted: the extraction is broken`);
    for (const known of ['KBM_NOT_FOUND', 'KEY_NOT_BOUND', 'VLEK_NOT_SUPPLIED', 'SNP_ERR_TCB_ABOVE_CURRENT', 'NONCE_CLAIM_LOST', 'SNP_ERR_CHAIN', 'RELEASED', 'POLICY_NUMBER_NOT_FINITE', 'CSR_KEY_WEAK']) {
      assert.ok(reasons.has(known), `the extraction misses ${known}`);
    }
    const { listed } = documented();
    const missing = [...reasons].filter(([r]) => !listed.has(r)).sort(([a], [b]) => a.localeCompare(b));
    assert.deepEqual(
      missing.map(([r]) => r), [],
      `docs/audit.md does not list ${missing.length} audit reason(s) the code can emit. Add a row for each to a reason table (under "## Reasons", ` +
      `first cell the reason in backticks, then outcome and meaning), e.g.\n${missing.map(([r, where]) => `| \`${r}\` | deny | <what it means> |   <- emitted at ${where}`).join('\n')}`,
    );
  });

  it('every reason docs/audit.md lists in a reason table is one the code can emit', () => {
    const { reasons } = reasonsInCode();
    const { listed } = documented();
    const stale = [...listed].filter(([r]) => !reasons.has(r));
    assert.deepEqual(stale.map(([r, l]) => `docs/audit.md:${l} ${r}`), [], 'listed but never emitted: remove the row, or fix the name (or teach this test how the code builds it)');
  });
});
