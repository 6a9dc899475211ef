/**
 * Architecture guard: certificate and signature cryptography of the SEV-SNP path happens in the
 * native addon only (DESIGN.md; SNP.md §6). TypeScript under src/snp, src/native and src/kds must
 * not import node:crypto at all nor touch X509Certificate; elsewhere in src/ node:crypto may be
 * used only for hashing, HMAC, randomness and constant-time compares — except in the documented
 * exceptions below, which do non-SNP cryptography by design.
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

const ROOT = join(__dirname, '..');

/** Directories where no node:crypto import and no X509Certificate may appear. */
const STRICT = ['src/snp/', 'src/native/', 'src/kds/'];

/** node:crypto names any module may use (no certificate parsing, no signature verification). */
const SAFE = new Set(['randomBytes', 'randomFillSync', 'randomUUID', 'randomInt', 'getRandomValues', 'createHash', 'createHmac', 'timingSafeEqual', 'hash']);

/** Documented exceptions: path prefix → why it may use more of node:crypto. */
const EXCEPTIONS: Record<string, string> = {
  'src/kbm/': 'key wrapping for the VM (RSA-OAEP of the AES key, AES-GCM / AES-KWP), PROTOCOL.md §2',
  'src/policy/': 'policy document signatures (RSA PSS/PKCS#1 v1.5) and policy trust keys/certificates, PROTOCOL.md §3.2',
  'src/cert/': 'workload certificates: CSR proof of possession, renewal and CA chain checks, probe signatures of the signer self-test, lab/offline-root CA keys, PROTOCOL.md §2.2',
};

function walk(dir: string, out: string[]): void {
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (p.endsWith('.ts')) out.push(p);
  }
}

interface Use { file: string; names: string[]; namespace: boolean; x509: boolean; dynamic: boolean }

/** scan finds every way a file reaches node:crypto. */
function scan(file: string): Use {
  const src = readFileSync(file, 'utf8')
    // drop comments so that prose mentioning crypto does not count
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/(^|[^:])\/\/.*$/gm, '$1');
  const names: string[] = [];
  let namespace = false;
  for (const m of src.matchAll(/import\s+(type\s+)?\{([^}]*)\}\s+from\s+['"](node:)?crypto['"]/g)) {
    if (m[1]) continue; // type-only import: no runtime crypto
    for (const part of m[2]!.split(',')) {
      const n = part.trim().replace(/^type\s+.*$/, '').split(/\s+as\s+/)[0]!.trim();
      if (n) names.push(n);
    }
  }
  for (const m of src.matchAll(/import\s+\*\s+as\s+(\w+)\s+from\s+['"](node:)?crypto['"]/g)) {
    namespace = true;
    for (const u of src.matchAll(new RegExp(`\\b${m[1]}\\.(\\w+)`, 'g'))) names.push(u[1]!);
  }
  for (const m of src.matchAll(/import\s+(\w+)\s+from\s+['"](node:)?crypto['"]/g)) {
    namespace = true;
    for (const u of src.matchAll(new RegExp(`\\b${m[1]}\\.(\\w+)`, 'g'))) names.push(u[1]!);
  }
  const dynamic = /require\(\s*['"](node:)?crypto['"]\s*\)|import\(\s*['"](node:)?crypto['"]\s*\)/.test(src);
  return { file: relative(ROOT, file), names, namespace, x509: /\bX509Certificate\b/.test(src), dynamic };
}

describe('architecture: no SNP cryptography in TypeScript', () => {
  const files: string[] = [];
  walk(join(ROOT, 'src'), files);
  const uses = files.map(scan);

  it('scans the whole src tree (src/snp and src/native included)', () => {
    assert.ok(uses.some((u) => u.file.startsWith('src/snp/')));
    assert.ok(uses.some((u) => u.file.startsWith('src/native/')));
  });

  it('src/snp, src/native and src/kds import nothing from node:crypto and never use X509Certificate', () => {
    const bad = uses.filter((u) => STRICT.some((d) => u.file.startsWith(d)) && (u.names.length > 0 || u.namespace || u.x509 || u.dynamic));
    assert.deepEqual(bad.map((u) => u.file), [], 'certificate/signature work belongs in the native addon');
  });

  it('elsewhere, node:crypto is limited to hashing, HMAC, randomness and constant-time compares (documented exceptions aside)', () => {
    const problems: string[] = [];
    for (const u of uses) {
      if (STRICT.some((d) => u.file.startsWith(d))) continue;
      if (Object.keys(EXCEPTIONS).some((p) => u.file.startsWith(p))) continue;
      const extra = u.names.filter((n) => !SAFE.has(n));
      if (extra.length) problems.push(`${u.file}: ${[...new Set(extra)].join(', ')}`);
      if (u.x509) problems.push(`${u.file}: X509Certificate`);
      if (u.dynamic) problems.push(`${u.file}: dynamic require/import of crypto`);
    }
    assert.deepEqual(problems, [], 'add a documented exception in test/architecture.test.ts only for non-SNP cryptography');
  });

  it('the scanner itself catches each form of import (self-test on sample text)', () => {
    const samples: Array<[string, Partial<Use>]> = [
      ["import { X509Certificate, verify } from 'node:crypto';", { names: ['X509Certificate', 'verify'], x509: true }],
      ["import * as c from 'crypto'; c.createVerify('x');", { names: ['createVerify'], namespace: true }],
      ["const c = require('node:crypto');", { dynamic: true }],
      ["import type { KeyObject } from 'node:crypto';", { names: [] }],
      ["// import { verify } from 'node:crypto'", { names: [] }],
    ];
    const d = mkdtempSync(join(tmpdir(), 'arch-'));
    try {
      for (const [text, want] of samples) {
        const f = join(d, 's.ts');
        writeFileSync(f, text);
        const got = scan(f);
        for (const [k, v] of Object.entries(want)) assert.deepEqual(got[k as keyof Use], v, `${text} → ${k}`);
      }
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});
