/**
 * docs/metrics.md lists every metric tas exports: the tas_* names registered by an assembled
 * daemon equal the documented list (metrics documented as conditional may be absent), cumulative
 * metrics are counters named `_total`, and one attestation moves tas_attestations_total and the
 * verification and key-release histograms.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { agentKeys, createLab, getNonce, getSecret, policyDoc, reportData, storePolicy, type Lab } from '../support/lab';

const DOC = join(__dirname, '..', '..', 'docs', 'metrics.md');

interface Documented {
  name: string;
  type: string;
  conditional: boolean;
}

/** documented reads the table rows `| \`name\` | type | labels | when | meaning |`. */
function documented(): Documented[] {
  const out: Documented[] = [];
  for (const m of readFileSync(DOC, 'utf8').matchAll(/^\| `(tas_[a-z0-9_]+)` \| (counter|gauge|histogram) \|[^|]*\|([^|]*)\|/gm)) {
    out.push({ name: m[1]!, type: m[2]!, conditional: m[3]!.trim() !== 'always' });
  }
  return out;
}

describe('metrics: docs/metrics.md equals the registry', function () {
  this.timeout(120_000);
  let lab: Lab;
  before(async () => {
    lab = await createLab({ products: ['Genoa'] });
  });
  after(async () => lab?.close());

  it('every registered tas_* metric is documented with its type, and every unconditional one is registered', async () => {
    const doc = documented();
    assert.ok(doc.length >= 10, 'the table parses');
    const registered = (await lab.daemon.ctx.metrics.getMetricsAsJSON()).filter((m) => m.name.startsWith('tas_'));
    const names = new Set(registered.map((m) => m.name));
    const byName = new Map(doc.map((d) => [d.name, d]));
    assert.deepEqual(registered.map((m) => m.name).filter((n) => !byName.has(n)).sort(), [], 'registered but not documented');
    assert.deepEqual(doc.filter((d) => !d.conditional && !names.has(d.name)).map((d) => d.name), [], 'documented but not registered');
    for (const m of registered) assert.equal(byName.get(m.name)!.type, String(m.type), `${m.name}: documented type`);
    for (const d of doc) if (d.type === 'counter') assert.match(d.name, /_total$/, `${d.name}: counters are named _total`);
  });

  it('one attestation: tas_attestations_total{tee,outcome,reason} and both latency histograms move; build info is 1', async () => {
    const kit = lab.kits.Genoa;
    assert.equal((await storePolicy(lab, policyDoc('m'))).status, 201);
    const keys = agentKeys();
    const nonce = await getNonce(lab);
    const res = await getSecret(lab, { nonce, report: kit.signReport({ reportData: reportData(nonce, keys.wire, true) }), keys, policyId: 'm' });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const text = await lab.daemon.ctx.metrics.metrics();
    assert.match(text, /^tas_attestations_total\{tee="amd-sev-snp",outcome="allow",reason="RELEASED"\} 1$/m);
    assert.match(text, /^tas_verification_duration_seconds_count\{tee="amd-sev-snp",outcome="ok"\} 1$/m);
    assert.match(text, /^tas_key_release_duration_seconds_count\{outcome="ok"\} 1$/m);
    assert.match(text, new RegExp(`^tas_build_info\\{version="[0-9.]+",node="${process.versions.node.replace(/\./g, '\\.')}",openssl="[^"]+"\\} 1$`, 'm'));
  });
});
