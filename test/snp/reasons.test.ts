/**
 * Every SNP_ERR_* reason the snp layer can put in an audit record is documented, either in
 * SNP_REASONS (src/snp/reasons.ts) or in the native addon's NATIVE_CODES, and the two never overlap.
 */
import { strict as assert } from 'node:assert';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SNP_REASONS } from '../../src/snp';
import { NATIVE_CODES } from '../../src/native';

describe('snp: audit reasons', () => {
  it('SNP_REASONS and NATIVE_CODES are disjoint', () => {
    assert.deepEqual(Object.keys(SNP_REASONS).filter((k) => k in NATIVE_CODES), []);
  });

  it('every SNP_ERR_* literal in src/snp is documented', () => {
    const dir = join(__dirname, '../../src/snp');
    const used = new Set<string>();
    for (const f of readdirSync(dir).filter((n) => n.endsWith('.ts'))) {
      for (const m of readFileSync(join(dir, f), 'utf8').matchAll(/'(SNP_ERR_[A-Z0-9_]+)'/g)) used.add(m[1]!);
    }
    assert.ok(used.size >= 9);
    assert.deepEqual([...used].filter((r) => !(r in SNP_REASONS) && !(r in NATIVE_CODES)), []);
  });
});
