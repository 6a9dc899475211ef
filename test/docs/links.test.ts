/**
 * The product's documentation stands alone: every relative link in README.md, docs/, the plugin
 * READMEs and the drop-in README names a file of the repository; none of them, nor the units,
 * the shipped tas.yaml and the man page source, send readers to documents outside the repository
 * (the team's design notes); the generated blocks of docs/configuration.md and docs/errors.md are
 * current (`npm run docs:config`).
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { render, TARGETS } from '../../src/config/docs';

const ROOT = join(__dirname, '..', '..');

function walk(dir: string, match: (f: string) => boolean, out: string[] = []): string[] {
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) walk(p, match, out);
    else if (match(p)) out.push(p);
  }
  return out;
}

/** The documents a reader of the repository or the package sees. */
function productDocs(): string[] {
  return [
    join(ROOT, 'README.md'),
    ...walk(join(ROOT, 'docs'), (f) => f.endsWith('.md')),
    ...walk(join(ROOT, 'plugins'), (f) => f.endsWith('README.md')),
    ...walk(join(ROOT, 'src'), (f) => f.endsWith('README.md')),
    join(ROOT, 'systemd', 'drop-ins', 'README.md'),
  ];
}

/** brokenLinks lists the relative markdown links of `text` (a file at `file`) whose target does not exist. */
export function brokenLinks(file: string, text: string): string[] {
  const out: string[] = [];
  const body = text.replace(/```[\s\S]*?```/g, '');
  for (const m of body.matchAll(/\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
    const target = m[1]!;
    if (/^(https?:|mailto:|#)/.test(target)) continue;
    const path = resolve(dirname(file), decodeURI(target.split('#')[0]!));
    if (!existsSync(path)) out.push(`${relative(ROOT, file)}: ${target}`);
    else if (!path.startsWith(ROOT)) out.push(`${relative(ROOT, file)}: ${target} (outside the repository)`);
  }
  return out;
}

/** Documents of the team that are not part of the repository or the package. */
const OUTSIDE = /\b(PROTOCOL|DESIGN|OPS|SNP|TDX|STYLE)\.md\b|\.\.\/shared\b|\/work\/shared/;

describe('docs: self-contained, no broken links', () => {
  it('every relative link in README, docs/, plugin and drop-in READMEs names an existing file', () => {
    const files = productDocs();
    assert.ok(files.length >= 10, files.join(', '));
    assert.deepEqual(files.flatMap((f) => brokenLinks(f, readFileSync(f, 'utf8'))), []);
  });

  it('the link check itself fails on a link to a missing file (and passes anchors and URLs)', () => {
    const f = join(ROOT, 'docs', 'x.md');
    assert.deepEqual(brokenLinks(f, '[a](missing.md) [b](policy.md#rules) [c](https://example.org) [d](#top)'), ['docs/x.md: missing.md']);
    assert.deepEqual(brokenLinks(f, '```\n[a](inside-code.md)\n```'), []);
  });

  it('no document, unit or shipped configuration refers to files outside the repository', () => {
    const files = [
      ...productDocs(),
      ...walk(join(ROOT, 'systemd'), () => true),
      join(ROOT, 'packaging', 'tas.yaml'),
      join(ROOT, 'packaging', 'manpage.ts'),
    ];
    const hits = files.flatMap((f) => readFileSync(f, 'utf8').split('\n').map((l, i) => [f, i + 1, l] as const)).filter(([, , l]) => OUTSIDE.test(l));
    assert.deepEqual(hits.map(([f, n, l]) => `${relative(ROOT, f)}:${n}: ${l.trim()}`), []);
  });

  it('the docs cover the wire protocol, policies, configuration, operations, plugins, fleet, audit, metrics and errors', () => {
    for (const d of ['protocol', 'policy', 'configuration', 'operations', 'plugins', 'fleet', 'audit', 'metrics', 'errors']) {
      assert.ok(existsSync(join(ROOT, 'docs', `${d}.md`)), `docs/${d}.md`);
    }
    assert.match(readFileSync(join(ROOT, 'docs', 'plugins.md'), 'utf8'), /\]\(\.\.\/plugins\/tas_kbm_kmip\/README\.md\)/, 'plugins.md links the KMIP plugin README');
  });

  it('the generated blocks of docs/configuration.md and docs/errors.md are current (npm run docs:config)', () => {
    for (const t of TARGETS) {
      const text = readFileSync(t.file, 'utf8');
      assert.equal(render(text, t.blocks), text, `${relative(ROOT, t.file)} is out of date: run npm run docs:config`);
    }
  });
});
