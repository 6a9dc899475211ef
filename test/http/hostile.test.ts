/**
 * Hostile input of every kind: every case must get a 4xx with a catalogue body, never a 5xx,
 * never a crash; the server must still answer /healthz afterwards.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import type { InjectOptions } from 'fastify';
import { CATALOGUE } from '../../src/errors';
import { bodyLimit } from '../../src/http';
import { startTestDaemon, type TestDaemon } from '../support/daemon';
import { CLIENT_KEY, MGMT_KEY, NONCE, RecordingAttester, clientHeaders, makeApp, validBody, type TestEdge } from './helpers';

const WIRE_TEXTS = new Set<string>(Object.values(CATALOGUE).map((s) => s.text));
const json = { ...clientHeaders, 'content-type': 'application/json' };
/** A little over get_secret's body limit (src/http/limits.ts), so that these cases follow it. */
const OVER = bodyLimit.getSecret + 6_000;

function assertClientError(status: number, body: string, label: string): void {
  assert.ok(status >= 400 && status < 500, `${label}: status ${status} ${body}`);
  const parsed = JSON.parse(body) as { error: string };
  assert.equal(typeof parsed.error, 'string', label);
  // texts with a placeholder ('{field}') are checked by shape
  assert.ok(WIRE_TEXTS.has(parsed.error) || /^Invalid or missing field '[a-z-]+'$/.test(parsed.error), `${label}: ${parsed.error}`);
}

/** rawRequest writes bytes on a fresh connection and returns whatever the server sent before closing. */
function rawRequest(port: number, data: string | Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let got = '';
    s.on('data', (d) => (got += d.toString('latin1')));
    s.on('error', reject);
    s.on('close', () => resolve(got));
    s.write(data);
    setTimeout(() => s.end(), 300);
  });
}

describe('http: hostile input (inject)', () => {
  let t: TestEdge;
  const att = new RecordingAttester();
  before(async () => { t = await makeApp({}, { attester: att }); });
  after(() => t.app.close());

  const cases: Array<[string, InjectOptions, number?]> = [
    ['bad JSON', { method: 'POST', url: '/kb/v0/get_secret', headers: json, payload: '{"tee-type": ' }, 400],
    ['two JSON documents', { method: 'POST', url: '/kb/v0/get_secret', headers: json, payload: '{}{}' }, 400],
    ['empty JSON body', { method: 'POST', url: '/kb/v0/get_secret', headers: json, payload: '' }, 400],
    ['JSON array body', { method: 'POST', url: '/kb/v0/get_secret', headers: json, payload: '[1,2]' }, 400],
    ['JSON string body', { method: 'POST', url: '/kb/v0/get_secret', headers: json, payload: '"x"' }, 400],
    ['JSON null body', { method: 'POST', url: '/kb/v0/get_secret', headers: json, payload: 'null' }, 400],
    ['JSON number body', { method: 'POST', url: '/kb/v0/get_secret', headers: json, payload: '1e999' }, 400],
    ['no body at all', { method: 'POST', url: '/kb/v0/get_secret', headers: clientHeaders }, 400],
    ['text/plain', { method: 'POST', url: '/kb/v0/get_secret', headers: { ...clientHeaders, 'content-type': 'text/plain' }, payload: JSON.stringify(validBody()) }, 415],
    ['form encoded', { method: 'POST', url: '/kb/v0/get_secret', headers: { ...clientHeaders, 'content-type': 'application/x-www-form-urlencoded' }, payload: 'a=b' }, 415],
    ['application/jsonx', { method: 'POST', url: '/kb/v0/get_secret', headers: { ...clientHeaders, 'content-type': 'application/jsonx' }, payload: '{}' }, 415],
    ['garbage content type', { method: 'POST', url: '/kb/v0/get_secret', headers: { ...clientHeaders, 'content-type': ';;;=' }, payload: '{}' }, 415],
    ['__proto__ pollution', { method: 'POST', url: '/kb/v0/get_secret', headers: json, payload: `{"__proto__": {"isAdmin": true}, "tee-type": "amd-sev-snp", "nonce": "${NONCE}"}` }, 400],
    ['nested __proto__', { method: 'POST', url: '/kb/v0/get_secret', headers: json, payload: '{"a": {"__proto__": {"x": 1}}}' }, 400],
    ['constructor.prototype pollution', { method: 'POST', url: '/kb/v0/get_secret', headers: json, payload: '{"constructor": {"prototype": {"x": 1}}}' }, 400],
    ['huge field (413 before parsing)', { method: 'POST', url: '/kb/v0/get_secret', headers: json, payload: JSON.stringify(validBody({ 'tee-evidence': 'A'.repeat(OVER) })) }, 413],
    ['huge unknown field', { method: 'POST', url: '/kb/v0/get_secret', headers: json, payload: JSON.stringify(validBody({ junk: 'x'.repeat(OVER) })) }, 413],
    ['NUL in nonce', { method: 'POST', url: '/kb/v0/get_secret', headers: json, payload: JSON.stringify(validBody({ nonce: `${NONCE.slice(0, 63)}\u0000` })) }, 400],
    ['unicode in nonce', { method: 'POST', url: '/kb/v0/get_secret', headers: json, payload: JSON.stringify(validBody({ nonce: `${NONCE.slice(0, 62)}\u00e9\u00e9` })) }, 400],
    ['fullwidth digits in nonce', { method: 'POST', url: '/kb/v0/get_secret', headers: json, payload: JSON.stringify(validBody({ nonce: '\uff10'.repeat(64) })) }, 400],
    ['lone surrogate in policy-id', { method: 'POST', url: '/kb/v0/get_secret', headers: json, payload: '{"tee-type":"amd-sev-snp","policy-id":"\\ud800"}' }, 400],
    ['overlong UTF-8 bytes', { method: 'POST', url: '/kb/v0/get_secret', headers: json, payload: Buffer.concat([Buffer.from('{"tee-type":"amd-sev-snp","nonce":"'), Buffer.from([0xc0, 0xaf, 0xe0, 0x80, 0xaf]), Buffer.from('"}')]) }, 400],
    ['invalid UTF-8 bytes', { method: 'POST', url: '/kb/v0/get_secret', headers: json, payload: Buffer.from([0x7b, 0xff, 0xfe, 0x7d]) }, 400],
    ['deeply nested JSON', { method: 'POST', url: '/kb/v0/get_secret', headers: json, payload: `${'['.repeat(20_000)}${']'.repeat(20_000)}` }, 400],
    ['NUL in base64', { method: 'POST', url: '/kb/v0/get_secret', headers: json, payload: JSON.stringify(validBody({ 'wrapping-key': 'AAAA\u0000AAA' })) }, 400],
    ['policy-id path traversal', { method: 'POST', url: '/kb/v0/get_secret', headers: json, payload: JSON.stringify(validBody({ 'policy-id': '../../etc/passwd' })) }, 400],
    ['wrong method GET', { method: 'GET', url: '/kb/v0/get_secret', headers: clientHeaders }, 405],
    ['wrong method DELETE', { method: 'DELETE', url: '/kb/v0/get_secret', headers: clientHeaders }, 405],
    ['wrong method POST /version', { method: 'POST', url: '/version', headers: json, payload: '{}' }, 405],
    ['path trick /..', { method: 'POST', url: '/kb/v0/get_secret/..', headers: json, payload: '{}' }, 404],
    ['path trick encoded slash', { method: 'POST', url: '/kb/v0%2Fget_secret', headers: json, payload: '{}' }, 404],
    ['path trick double slash', { method: 'POST', url: '//kb/v0/get_secret', headers: json, payload: '{}' }, 404],
    ['path trick trailing slash', { method: 'POST', url: '/kb/v0/get_secret/', headers: json, payload: '{}' }, 404],
    ['bad percent-encoding', { method: 'GET', url: '/version%zz', headers: clientHeaders }, 400],
    ['case variant', { method: 'GET', url: '/VERSION', headers: clientHeaders }, 404],
    ['unknown route', { method: 'GET', url: '/admin', headers: clientHeaders }, 404],
    ['very long URL', { method: 'GET', url: `/${'a'.repeat(8000)}`, headers: clientHeaders }, 404],
    ['huge API key header', { method: 'GET', url: '/version', headers: { 'x-api-key': 'k'.repeat(12_000) } }, 401],
    ['unicode API key header', { method: 'GET', url: '/version', headers: { 'x-api-key': `${CLIENT_KEY.slice(0, -1)}\u00e9` } }, 401],
    ['management key header with comma', { method: 'GET', url: '/management/status', headers: { 'x-management-api-key': `${MGMT_KEY},${MGMT_KEY}` } }, 400],
    ['many headers', { method: 'GET', url: '/version', headers: Object.fromEntries([...Array(500).keys()].map((i) => [`x-h-${i}`, 'v'])) }, 401],
  ];

  for (const [label, req, status] of cases) {
    it(`${label} -> ${status ?? '4xx'}`, async () => {
      const r = await t.app.inject(req);
      if (status !== undefined) assert.equal(r.statusCode, status, `${label}: ${r.body}`);
      assertClientError(r.statusCode, r.body, label);
    });
  }

  it('never polluted Object.prototype, never reached the attester, still healthy', async () => {
    assert.equal(({} as Record<string, unknown>).isAdmin, undefined);
    assert.equal(({} as Record<string, unknown>).x, undefined);
    assert.equal(att.calls.length, 0);
    assert.equal((await t.app.inject({ url: '/healthz' })).statusCode, 200);
    // the full reason of each refusal went to the log
    assert.ok(t.logLines.some((l) => l.msg === 'request refused' && l.code === 'HTTP_BAD_JSON'));
    assert.ok(t.logLines.every((l) => l.level !== 50), 'no error-level log line (no 500s)');
  });
});

describe('http: hostile input (real sockets)', () => {
  let d: TestDaemon;
  let port: number;
  before(async () => {
    d = await startTestDaemon({}, { limits: { maxHeaderSize: 8192 } });
    port = Number(new URL(d.urls.main).port);
  });
  after(() => d.close());

  const body = JSON.stringify(validBody());
  const req = (lines: string[], b = ''): string => `${lines.join('\r\n')}\r\n\r\n${b}`;

  const socketCases: Array<[string, string, RegExp]> = [
    ['huge header', req(['GET /version HTTP/1.1', 'Host: x', `X-Big: ${'a'.repeat(20_000)}`]), /^HTTP\/1\.1 4\d\d /],
    ['duplicate X-API-KEY', req(['GET /version HTTP/1.1', 'Host: x', `X-API-KEY: ${CLIENT_KEY}`, `X-API-KEY: ${CLIENT_KEY}`]), /^HTTP\/1\.1 400 /],
    ['duplicate Content-Length', req(['POST /kb/v0/get_secret HTTP/1.1', 'Host: x', `X-API-KEY: ${CLIENT_KEY}`, 'Content-Type: application/json', `Content-Length: ${body.length}`, 'Content-Length: 5'], body), /^HTTP\/1\.1 400 /],
    ['Content-Length and chunked', req(['POST /kb/v0/get_secret HTTP/1.1', 'Host: x', `X-API-KEY: ${CLIENT_KEY}`, 'Content-Type: application/json', 'Content-Length: 4', 'Transfer-Encoding: chunked'], '0\r\n\r\n'), /^HTTP\/1\.1 400 /],
    ['garbage request line', 'GARBAGE\r\n\r\n', /^HTTP\/1\.1 400 /],
    ['HTTP/2 preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', /^HTTP\/1\.1 4\d\d /],
    ['NUL in header', req(['GET /version HTTP/1.1', 'Host: x', `X-API-KEY: ${CLIENT_KEY}\u0000`]), /^HTTP\/1\.1 4\d\d /],
    // inject() normalises dot segments client-side, so these go over a real socket
    ['path trick dot segments', req(['GET /kb/v0/../../version HTTP/1.1', 'Host: x', `X-API-KEY: ${CLIENT_KEY}`]), /^HTTP\/1\.1 404 /],
    ['path trick encoded dots', req(['GET /kb/%2e%2e/version HTTP/1.1', 'Host: x', `X-API-KEY: ${CLIENT_KEY}`]), /^HTTP\/1\.1 404 /],
    ['path trick get_secret/..', req(['POST /kb/v0/get_secret/.. HTTP/1.1', 'Host: x', `X-API-KEY: ${CLIENT_KEY}`, 'Content-Type: application/json', 'Content-Length: 2'], '{}'), /^HTTP\/1\.1 404 /],
    ['chunked body over the limit', req(['POST /kb/v0/get_secret HTTP/1.1', 'Host: x', `X-API-KEY: ${CLIENT_KEY}`, 'Content-Type: application/json', 'Transfer-Encoding: chunked'], `${OVER.toString(16)}\r\n${'a'.repeat(OVER)}\r\n0\r\n\r\n`), /^HTTP\/1\.1 413 /],
    ['Content-Length larger than the limit', req(['POST /kb/v0/get_secret HTTP/1.1', 'Host: x', `X-API-KEY: ${CLIENT_KEY}`, 'Content-Type: application/json', 'Content-Length: 99999999']), /^HTTP\/1\.1 413 /],
    ['unknown method', req(['BREW /version HTTP/1.1', 'Host: x']), /^HTTP\/1\.1 4\d\d /],
  ];

  for (const [label, raw, expect] of socketCases) {
    it(`${label}`, async () => {
      const got = await rawRequest(port, raw);
      assert.match(got, expect, `${label}: ${got.slice(0, 200)}`);
      const bodyStart = got.indexOf('\r\n\r\n');
      if (bodyStart > 0 && got.length > bodyStart + 4) {
        const text = got.slice(bodyStart + 4);
        if (text.startsWith('{')) assert.ok(WIRE_TEXTS.has((JSON.parse(text) as { error: string }).error), text);
      }
    });
  }

  it('still serves after all of it', async () => {
    const r = await fetch(`${d.urls.main}/healthz`);
    assert.equal(r.status, 200);
    const v = await fetch(`${d.urls.main}/version`, { headers: clientHeaders });
    assert.equal(v.status, 200);
  });
});
