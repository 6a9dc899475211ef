/**
 * Hostile input against the whole product: a `tas serve` child on a real Redis store, the SNP
 * verifier, the fake KDS and the mock broker. A GENERATED corpus (every get_secret field wrong in
 * every way, nonces shaped like other store keys, policy ids with path tricks, header abuse, body
 * abuse, replay floods, 100 parallel redemptions of one nonce, slow-loris) — each request with a
 * fresh, valid nonce and a nonce-bound report, so only the mutated field can be the reason for a
 * refusal. Expected: 0 crashes, 0 5xx, every answer a 4xx with a catalogue text (the exact status
 * where one is determined), and no secret, nonce, wrapping key or evidence in any log line or audit
 * record, in hex or base64. (test/http/hostile.test.ts covers the edge alone.)
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { CATALOGUE } from '../../src/errors';
import { CLIENT_KEY, MGMT_KEY } from '../support/daemon';
import { createLab, policyDoc, reportData, SECRET, storePolicy, type Lab } from '../support/lab';
import { startPlain, type RedisNode } from '../support/redis';
import { nonceAt, pooledKeys, spawnServe, type ServeChild } from '../support/fleet';

const WIRE = new Set<string>(Object.values(CATALOGUE).map((s) => s.text));
const wireOk = (t: string): boolean => WIRE.has(t) || /^Invalid or missing field '[a-z-]+'$/.test(t) || /^Policy 'policy:.*' not found$/.test(t);

interface Raw {
  status: number;
  body: string;
}

/** raw writes one HTTP/1.1 request (connection: close) and reads the answer until the server closes. */
function raw(port: number, head: string, body: Buffer | string = ''): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    s.on('data', (d: Buffer) => chunks.push(d));
    // The server may answer (413, 400) and close before a large body is fully written: the write
    // then fails with EPIPE or ECONNRESET, and the answer already read is what counts.
    s.on('error', (e) => (['ECONNRESET', 'EPIPE'].includes((e as NodeJS.ErrnoException).code ?? '') ? undefined : reject(e)));
    s.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      resolve({ status: m ? Number(m[1]) : 0, body: text.slice(text.indexOf('\r\n\r\n') + 4) });
    });
    // No half-close: a client that ends its side is treated as gone; `connection: close` makes the
    // server close after answering. The timer only guards against a server that never answers.
    const payload = Buffer.isBuffer(body) ? body : Buffer.from(body, 'latin1');
    if (payload.length < 64 * 1024) s.write(Buffer.concat([Buffer.from(head, 'latin1'), payload]));
    else {
      // An oversized body: the server answers 413 from the headers and closes. Had we pushed megabytes
      // already, closing with them unread makes the kernel send RST, and an RST drops the 413 from our
      // receive queue. So do what a careful client does: send the headers, and the body only if no
      // answer came first.
      s.write(head, 'latin1');
      const early = setTimeout(() => s.write(payload), 2000);
      s.once('data', () => clearTimeout(early));
      s.on('close', () => clearTimeout(early));
    }
    const guard = setTimeout(() => s.destroy(), 40_000);
    s.on('close', () => clearTimeout(guard));
  });
}

function post(path: string, body: string | Buffer, headers: Record<string, string> = {}): [string, Buffer] {
  const b = Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
  const h = { 'x-api-key': CLIENT_KEY, 'content-type': 'application/json', 'content-length': String(b.length), connection: 'close', ...headers };
  return [`POST ${path} HTTP/1.1\r\nhost: tas\r\n${Object.entries(h).filter(([, v]) => v !== '').map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n`, b];
}

type Expect = number | number[];
interface Case {
  label: string;
  /** Builds the request; `valid` is a fresh valid body (object) for this case. */
  build(valid: Record<string, unknown>): [string, Buffer] | Promise<[string, Buffer]>;
  expect: Expect;
  /** Needs a fresh nonce and report (get_secret cases). */
  fresh?: boolean;
}

const BAD_VALUES: Array<[string, unknown]> = [
  ['null', null], ['zero', 0], ['negative', -1], ['huge number', 1e308], ['true', true], ['false', false],
  ['empty array', []], ['array', ['x']], ['object', {}], ['nested object', { a: { b: 1 } }], ['empty string', ''],
  ['space', ' '], ['NUL', '\u0000'], ['unicode', 'ä€𝄞'], ['RTL override', '\u202e'], ['newline', '\n'],
  ['long 4 KiB', 'A'.repeat(4096)], ['base64 garbage', '!!!!'], ['truncated base64', 'QUJD='], ['hex', 'deadbeef'],
  ['__proto__', '__proto__'], ['SQL', "' OR 1=1 --"], ['template', '${jndi:ldap://x}'], ['path', '../../../../etc/passwd'],
  ['NaN string', 'NaN'], ['Infinity string', 'Infinity'], ['float', 1.5], ['max int + 1', 2 ** 53 + 1], ['numeric string', '12345'],
  ['boolean string', 'true'], ['null string', 'null'], ['JSON in string', '{"a":1}'], ['emoji', '🔑🔑🔑'], ['tab', '\t'],
  ['CRLF', 'a\r\nx-injected: 1'], ['percent-encoded', '%2e%2e%2f'], ['backslashes', '..\\..\\windows'], ['URL', 'http://169.254.169.254/'],
  ['base64 of zeros', Buffer.alloc(64).toString('base64')], ['PEM header only', '-----BEGIN CERTIFICATE-----'], ['array of nulls', [null, null]],
  ['object with __proto__', JSON.parse('{"__proto__": {"x": 1}}')], ['long 60 KiB', 'B'.repeat(60_000)], ['lone surrogate', '\ud800'],
];

const FIELDS = ['nonce', 'policy-id', 'key-id', 'report-data-binding', 'tee-evidence', 'tee-type', 'wrapping-key', 'tee-certificates'];

describe('hostile input against the whole product (tas serve, Redis, SNP, KDS, mock broker)', function () {
  this.timeout(300_000);
  let redis: RedisNode & { url: string };
  let lab: Lab;
  let tas: ServeChild;
  let port: number;
  const issued: string[] = [];
  const keysSeen = new Set<Buffer>();
  const evidenceSeen: Buffer[] = [];
  const tally = new Map<number, number>();
  const failures: string[] = [];
  let total = 0;

  /** valid makes a fresh valid get_secret body (new nonce, report bound to it and to a wrapping key). */
  async function valid(): Promise<Record<string, unknown>> {
    const n = await nonceAt(tas.url);
    assert.equal(n.status, 200);
    issued.push(n.nonce!);
    const keys = pooledKeys();
    keysSeen.add(keys.wire);
    const report = lab.kits.Genoa.signReport({ reportData: reportData(n.nonce!, keys.wire, true) });
    evidenceSeen.push(report);
    return { nonce: JSON.stringify(n.nonce), 'policy-id': 'h-p', 'report-data-binding': true, 'tee-evidence': report.toString('base64'), 'tee-type': 'amd-sev-snp', 'wrapping-key': keys.wire.toString('base64') };
  }

  async function run(c: Case): Promise<void> {
    const v = c.fresh === false ? {} : await valid();
    const [head, body] = await c.build(v);
    const r = await raw(port, head, body);
    total++;
    tally.set(r.status, (tally.get(r.status) ?? 0) + 1);
    const want = Array.isArray(c.expect) ? c.expect : [c.expect];
    let text: string;
    try {
      text = (JSON.parse(r.body) as { error: string }).error;
    } catch {
      text = r.status === 431 || r.status === 400 ? '(node http parser)' : `(unparsable: ${r.body.slice(0, 80)})`;
    }
    if (!want.includes(r.status)) failures.push(`${c.label}: ${r.status} ${text}, expected ${want.join('|')}`);
    else if (r.status !== 200 && text !== '(node http parser)' && !wireOk(text)) failures.push(`${c.label}: ${r.status} text not in the catalogue: ${text}`);
  }

  const cases: Case[] = [];
  // 1. Every field wrong in every way, and missing.
  for (const f of FIELDS) {
    cases.push({ label: `${f} missing`, build: (v) => { const b = { ...v }; delete b[f]; return post('/kb/v0/get_secret', JSON.stringify(b)); }, expect: f === 'tee-certificates' || f === 'policy-id' || f === 'key-id' ? [200, 400] : 400 });
    for (const [name, bad] of BAD_VALUES) {
      // null for an optional member means "absent" (then the valid rest is served); `true` is the
      // valid binding value.
      const absentOk = bad === null && (f === 'key-id' || f === 'tee-certificates');
      const validValue = f === 'report-data-binding' && bad === true;
      const expect: Expect = absentOk || validValue ? [200, 400] : f === 'policy-id' || f === 'key-id' ? [400, 404] : 400;
      cases.push({ label: `${f} = ${name}`, build: (v) => post('/kb/v0/get_secret', JSON.stringify({ ...v, [f]: bad })), expect });
    }
  }
  // 1b. Evidence: one bit flipped at offsets all over the report (header, REPORT_DATA, CHIP_ID,
  // REPORTED_TCB, signature): the verifier must refuse each with 400, never 5xx.
  // A flipped CHIP_ID (0x1A0-0x1DF) is well-formed and names a VCEK the KDS does not have: src/kds
  // treats a KDS 404 for a genuine-looking chip id as transient (503 + Retry-After, nonce untouched),
  // so exactly 503 there; a masked or malformed CHIP_ID is a 400 (1c).
  for (let off = 0; off < 0x4a0; off += 19) {
    cases.push({
      label: `tee-evidence bit flip at 0x${off.toString(16)}`, expect: off >= 0x1a0 && off < 0x1e0 ? 503 : 400,
      build: (v) => { const r = Buffer.from(String(v['tee-evidence']), 'base64'); r[off]! ^= 0x01; return post('/kb/v0/get_secret', JSON.stringify({ ...v, 'tee-evidence': r.toString('base64') })); },
    });
  }
  // 1c. Masked CHIP_ID (MASK_CHIP_ID, all zero): without its VCEK it can never verify (a definitive
  // 400, not 503); with its VCEK, a chip on a chip_id deny list is refused masked as unmasked.
  const resign = (v: Record<string, unknown>, f: { masked: boolean }): Buffer => {
    const nonce = JSON.parse(String(v.nonce)) as string;
    const wire = Buffer.from(String(v['wrapping-key']), 'base64');
    return lab.kits.Genoa.signReport({ reportData: reportData(nonce, wire, true), ...(f.masked ? { chipId: Buffer.alloc(64), maskChipKey: true } : {}) });
  };
  const withVcek = (): string => Buffer.from(`${lab.kits.Genoa.vcekPem()}${lab.kits.Genoa.askPem}`).toString('base64');
  cases.push({ label: 'masked CHIP_ID without tee-certificates', expect: 400, build: (v) => post('/kb/v0/get_secret', JSON.stringify({ ...v, 'tee-evidence': resign(v, { masked: true }).toString('base64') })) });
  for (const masked of [false, true]) {
    cases.push({
      label: `chip_id deny list, listed chip ${masked ? 'masked' : 'unmasked'} (VCEK in tee-certificates)`, expect: 400,
      build: (v) => post('/kb/v0/get_secret', JSON.stringify({ ...v, 'policy-id': 'h-deny', 'tee-evidence': resign(v, { masked }).toString('base64'), 'tee-certificates': withVcek() })),
    });
  }
  for (const len of [0, 1, 0x2a0, 0x4a0 - 1, 0x4a0 + 1, 4096]) {
    cases.push({ label: `tee-evidence of ${len} bytes`, expect: 400, build: (v) => post('/kb/v0/get_secret', JSON.stringify({ ...v, 'tee-evidence': Buffer.concat([Buffer.from(String(v['tee-evidence']), 'base64'), Buffer.alloc(4096)]).subarray(0, len).toString('base64') })) });
  }
  // 2. Nonces shaped like other store keys or almost right.
  const nonceShapes: Array<[string, (n: string) => unknown, Expect]> = [
    ['policy:x', () => 'policy:x', 400], ['{nonce}:outstanding', () => '{nonce}:outstanding', 400], ['tas:{policy}:docs', () => '"tas:{policy}:docs"', 400],
    ['{rl}:key', () => '{rl}:0000', 400], ['glob *', () => '*', 400], ['63 hex', (n) => JSON.stringify(n.slice(1)), 400], ['65 hex', (n) => JSON.stringify(`${n}0`), 400],
    ['upper-case hex', (n) => JSON.stringify(n.toUpperCase()), [400, 401]], ['double quoted', (n) => JSON.stringify(JSON.stringify(n)), 400], ['unbalanced quote', (n) => `"${n}`, 400],
    ['trailing newline', (n) => JSON.stringify(`${n}\n`), 400], ['prefix-space', (n) => JSON.stringify(` ${n}`), 400], ['unknown 64 hex (REPORT_DATA binds the real one: refused before the store)', () => JSON.stringify('ab'.repeat(32)), 400],
    ['nonce with key prefix', (n) => JSON.stringify(`tas:{nonce}:${n}`), 400], ['CRLF injection', (n) => `${n}\r\nSET x y`, 400], ['Lua', () => "')redis.call('FLUSHALL')--", 400],
  ];
  for (const [name, make, expect] of nonceShapes) cases.push({ label: `nonce ${name}`, build: (v) => post('/kb/v0/get_secret', JSON.stringify({ ...v, nonce: make(JSON.parse(String(v.nonce)) as string) })), expect });
  // 3. Policy ids with path tricks (get_secret and the management routes).
  const ids = ['../h-p', '..%2fh-p', 'a/b', 'policy:h-p', '%00', 'x'.repeat(129), '{policy}:docs', 'tas:{policy}:gen', 'h-p/..', '.', '..', 'h-p\u0000', 'h p', 'h-p;rm -rf', 'constructor', 'hasOwnProperty', '__proto__', 'h-P'];
  for (const id of ids) {
    cases.push({ label: `get_secret policy-id ${JSON.stringify(id)}`, build: (v) => post('/kb/v0/get_secret', JSON.stringify({ ...v, 'policy-id': id })), expect: [400, 404] });
    for (const route of ['get', 'delete']) {
      cases.push({
        label: `management ${route} ${JSON.stringify(id)}`, fresh: false, expect: [400, 404],
        build: () => [`${route === 'get' ? 'GET' : 'DELETE'} /management/policy/v0/${route}/${encodeURIComponent(id)} HTTP/1.1\r\nhost: tas\r\nx-management-api-key: ${MGMT_KEY}\r\nconnection: close\r\n\r\n`, Buffer.alloc(0)],
      });
    }
  }
  // 4. Header abuse.
  const headerCases: Array<[string, Record<string, string>, Expect]> = [
    ['no api key', { 'x-api-key': '' }, 401], ['wrong api key', { 'x-api-key': 'x'.repeat(64) }, 401], ['management key as client key', { 'x-api-key': MGMT_KEY }, 401],
    ['api key with NUL-like byte', { 'x-api-key': `${CLIENT_KEY.slice(0, -1)}\u007f` }, [400, 401]], ['text/plain', { 'content-type': 'text/plain' }, 415], ['no content type', { 'content-type': '' }, [400, 415]],
    ['form', { 'content-type': 'application/x-www-form-urlencoded' }, 415], ['json with charset latin1', { 'content-type': 'application/json; charset=latin1' }, [200, 400, 415]],
    ['huge header 20 KiB', { 'x-junk': 'a'.repeat(20_000) }, [400, 431]], ['many headers', Object.fromEntries(Array.from({ length: 150 }, (_, i) => [`x-h${i}`, 'v'])), [200, 400, 431]],
    ['x-forwarded-for spoof', { 'x-forwarded-for': '10.0.0.1, 1.2.3.4' }, 200], ['host garbage', { host: '\u00ff\u00fe' }, [200, 400]],
    ['content-length lies (short)', { 'content-length': '10' }, 400], ['transfer-encoding + content-length', { 'transfer-encoding': 'chunked' }, 400],
  ];
  for (const [name, h, expect] of headerCases) cases.push({ label: `header: ${name}`, build: (v) => post('/kb/v0/get_secret', JSON.stringify(v), h), expect });
  cases.push({ label: 'duplicate x-api-key', expect: [400, 401], build: (v) => { const [head, b] = post('/kb/v0/get_secret', JSON.stringify(v)); return [head.replace('\r\n\r\n', `\r\nx-api-key: ${CLIENT_KEY}\r\n\r\n`), b]; } });
  cases.push({ label: 'duplicate content-length', expect: 400, build: (v) => { const [head, b] = post('/kb/v0/get_secret', JSON.stringify(v)); return [head.replace('\r\n\r\n', `\r\ncontent-length: ${b.length + 1}\r\n\r\n`), b]; } });
  // 5. Body abuse.
  const bodies: Array<[string, (v: Record<string, unknown>) => string | Buffer, Expect]> = [
    ['520 KiB', (v) => JSON.stringify({ ...v, pad: 'x'.repeat(530_000) }), 413], ['2 MiB', () => Buffer.alloc(2 << 20, 0x20), 413], ['truncated', (v) => JSON.stringify(v).slice(0, 50), 400],
    ['trailing garbage', (v) => `${JSON.stringify(v)}x`, 400], ['two documents', (v) => JSON.stringify(v).repeat(2), 400], ['array', (v) => JSON.stringify([v]), 400], ['string', () => '"x"', 400],
    ['deep nesting', () => `${'['.repeat(5000)}${']'.repeat(5000)}`, 400], ['NaN', () => '{"nonce": NaN}', 400], ['BOM', (v) => `\ufeff${JSON.stringify(v)}`, [200, 400]],
    ['latin1 bytes', () => Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), 400], ['duplicate keys', (v) => JSON.stringify(v).replace('{', `{"nonce":"${'0'.repeat(64)}",`), [200, 400, 401]],
    ['__proto__ member', (v) => JSON.stringify(v).replace('{', '{"__proto__":{"admin":true},'), [200, 400]], ['empty', () => '', 400], ['whitespace', () => '   ', 400],
  ];
  for (const [name, make, expect] of bodies) cases.push({ label: `body: ${name}`, build: (v) => post('/kb/v0/get_secret', make(v)), expect });
  // 6. Wrong methods and routes.
  for (const m of ['GET', 'PUT', 'DELETE', 'PATCH']) cases.push({ label: `${m} get_secret`, fresh: false, expect: [404, 405], build: () => [`${m} /kb/v0/get_secret HTTP/1.1\r\nhost: tas\r\nx-api-key: ${CLIENT_KEY}\r\nconnection: close\r\n\r\n`, Buffer.alloc(0)] });
  for (const p of ['/kb/v0/get_secret/..', '/kb/v0/../v0/get_nonce', '/kb/v0/get_nonce%00', '/KB/V0/GET_NONCE', '/management/policy/v0/list?x=../../', '//kb/v0/get_nonce']) {
    cases.push({ label: `GET ${p}`, fresh: false, expect: [200, 400, 401, 404, 405], build: () => [`GET ${p} HTTP/1.1\r\nhost: tas\r\nx-api-key: ${CLIENT_KEY}\r\nconnection: close\r\n\r\n`, Buffer.alloc(0)] });
  }

  before(async () => {
    redis = await startPlain();
    lab = await createLab({ env: { TAS_STORE: 'redis', TAS_REDIS_URL: redis.url }, products: ['Genoa'] });
    assert.equal((await storePolicy(lab, policyDoc('h-p'))).status, 201);
    const deny = { chip_id: { deny_list: [lab.kits.Genoa.chipId.toString('hex')] }, chip_id_masked: { allow_list: [true, false] } };
    assert.equal((await storePolicy(lab, policyDoc('h-deny', deny))).status, 201);
    tas = await spawnServe(lab.env);
    port = Number(new URL(tas.url).port);
    // A warm daemon (VCEK and CRL cached), as in service: the corpus is about input, not cold caches.
    const warm = await raw(port, ...post('/kb/v0/get_secret', JSON.stringify(await valid())));
    assert.equal(warm.status, 200, warm.body);
  });
  after(async () => {
    await tas?.stop();
    await lab?.close();
    await redis?.stop();
  });

  it(`the generated corpus (${cases.length} cases, 4 connections at a time): 0 crashes, the right 4xx with catalogue texts (5xx: only 503 for a CHIP_ID KDS does not know)`, async () => {
    // Slow-loris sockets run alongside: the server must cut them, not wait forever.
    const loris = Array.from({ length: 5 }, () => new Promise<string>((resolve) => {
      const s = connect(port, '127.0.0.1');
      let got = '';
      s.on('data', (d) => (got += d.toString()));
      s.on('error', () => undefined);
      s.on('close', () => resolve(got));
      s.write('POST /kb/v0/get_secret HTTP/1.1\r\nhost: tas\r\n');
      const drip = setInterval(() => s.write('x-a: b\r\n'), 500);
      s.on('close', () => clearInterval(drip));
    }));
    const queue = [...cases];
    await Promise.all(Array.from({ length: 4 }, async () => {
      for (let c = queue.shift(); c; c = queue.shift()) await run(c);
    }));
    const cut = await Promise.all(loris);
    for (const g of cut) assert.ok(g === '' || /^HTTP\/1\.1 408/.test(g), `slow-loris got ${g.slice(0, 40)}`);
    console.log(`      corpus: ${total} requests, statuses ${JSON.stringify(Object.fromEntries(tally))}; slow-loris sockets cut: ${cut.length}`);
    if (failures.length) for (const l of tas.lines()) if (/"outcome":"error"|"level":50/.test(l)) console.log(l.slice(0, 600));
    assert.deepEqual(failures, []);
    assert.ok(total >= 500);
    // A flipped CHIP_ID is well-formed and genuine-looking: KDS's 404 for it may be a glitch, so it
    // is the one 503 (+ Retry-After) allowed, for exactly those cases; a masked or malformed one is 400.
    const chipFlips = cases.filter((c) => (Array.isArray(c.expect) ? c.expect : [c.expect]).includes(503)).length;
    assert.equal(tally.get(503) ?? 0, chipFlips, 'a 503 for each CHIP_ID the KDS does not know, and for nothing else');
    assert.equal([...tally.keys()].filter((s) => (s >= 500 && s !== 503) || s === 0).length, 0);
    assert.equal(tas.child.exitCode, null, 'the daemon is alive');
  });

  it('a replay flood (60 replays of a redeemed request) and 100 parallel redemptions of one nonce', async () => {
    const v = await valid();
    const first = await raw(port, ...post('/kb/v0/get_secret', JSON.stringify(v)));
    assert.equal(first.status, 200, first.body);
    const replays = await Promise.all(Array.from({ length: 60 }, () => raw(port, ...post('/kb/v0/get_secret', JSON.stringify(v)))));
    assert.deepEqual([...new Set(replays.map((r) => r.status))], [401]);
    const w = await valid();
    const par = await Promise.all(Array.from({ length: 100 }, () => raw(port, ...post('/kb/v0/get_secret', JSON.stringify(w)))));
    const by = new Map<number, number>();
    for (const r of par) by.set(r.status, (by.get(r.status) ?? 0) + 1);
    assert.equal(by.get(200), 1, JSON.stringify(Object.fromEntries(by)));
    assert.equal(by.get(401), 99, JSON.stringify(Object.fromEntries(by)));
    total += 162;
  });

  it('a slow key backend and replays racing the claim, on two daemons of one Redis: one release per nonce', async () => {
    // A second daemon on the same Redis whose key backend answers only after 1.5 s: while the first
    // request of a nonce waits inside it, replays of that request hit both daemons. The lease is
    // derived from every timeout inside the claim, and only the holder of the claim at consume time
    // may answer 200 (the store's owner-checked consume): 0 double releases.
    const { writeFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const slowCfg = join(lab.dir, 'kbm-slow.yaml');
    writeFileSync(slowCfg, `delay_ms: 1500\nsecrets:\n  disk-key-1:\n    value_utf8: "${SECRET}"\n`);
    const slow = await spawnServe({ ...lab.env, TAS_KBM_CONFIG_FILE: slowCfg });
    const slowPort = Number(new URL(slow.url).port);
    try {
      const perNonce: Array<Record<number, number>> = [];
      for (let round = 0; round < 3; round++) {
        const v = JSON.stringify(await valid());
        const first = raw(slowPort, ...post('/kb/v0/get_secret', v));
        await new Promise((r) => setTimeout(r, 300)); // the first request is inside the slow backend now
        const replays = Array.from({ length: 12 }, (_, i) => raw(i % 2 ? port : slowPort, ...post('/kb/v0/get_secret', v)));
        const all = await Promise.all([first, ...replays]);
        const late = await Promise.all(Array.from({ length: 4 }, (_, i) => raw(i % 2 ? port : slowPort, ...post('/kb/v0/get_secret', v))));
        const by: Record<number, number> = {};
        for (const r of [...all, ...late]) by[r.status] = (by[r.status] ?? 0) + 1;
        perNonce.push(by);
        assert.equal((await first).status, 200, (await first).body);
        total += all.length + late.length;
      }
      console.log(`      slow key backend (1.5 s) + 16 replays per nonce on 2 daemons: ${JSON.stringify(perNonce)}`);
      for (const by of perNonce) {
        assert.equal(by[200], 1, `exactly one release per nonce: ${JSON.stringify(by)}`);
        assert.equal(by[401], 16, `every replay refused as a used/claimed nonce: ${JSON.stringify(by)}`);
      }
      assert.equal(slow.child.exitCode, null);
    } finally {
      await slow.stop();
    }
  });

  it('no secret, nonce, wrapping key or evidence in any log line or audit record (hex and base64)', async () => {
    const lines = [...tas.lines(), ...lab.daemon.logLines.map((l) => JSON.stringify(l)), ...lab.daemon.audit.records.map((r) => JSON.stringify(r))];
    const audit = tas.lines().filter((l) => l.includes('"audit":true'));
    assert.ok(audit.length >= 100, `audit records seen: ${audit.length}`);
    const needles: Array<[string, string]> = [];
    const forms = (what: string, b: Buffer): void => {
      needles.push([`${what} hex`, b.toString('hex')], [`${what} HEX`, b.toString('hex').toUpperCase()], [`${what} base64`, b.toString('base64').replace(/=+$/, '')], [`${what} base64url`, b.toString('base64url')]);
    };
    forms('secret', Buffer.from(SECRET));
    needles.push(['secret text', SECRET]);
    for (const n of issued) {
      needles.push(['nonce', n]);
      forms('nonce ascii', Buffer.from(n, 'ascii'));
      forms('nonce bytes', Buffer.from(n, 'hex'));
    }
    for (const k of keysSeen) forms('wrapping key', k.subarray(30, 30 + 48));
    // 0x2A0: the report's signature (unique per report), 48 bytes, base64-aligned from the start.
    for (const e of evidenceSeen) forms('evidence', e.subarray(0x2a0, 0x2a0 + 48));
    const leaks: string[] = [];
    for (const l of lines) for (const [what, n] of needles) if (l.includes(n)) leaks.push(`${what} in: ${l.slice(0, 200)}`);
    console.log(`      leak scan: ${lines.length} lines and records x ${needles.length} needles (${issued.length} nonces, ${keysSeen.size} keys, ${evidenceSeen.length} reports)`);
    assert.deepEqual(leaks.slice(0, 5), []);
  });
});
