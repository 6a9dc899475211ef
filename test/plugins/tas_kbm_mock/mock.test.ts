/**
 * tas_kbm_mock: the contract in both reply forms, plus its strict configuration.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import plugin, { parseMockConfig } from '../../../plugins/tas_kbm_mock';
import { isKbmError, KBM_API_VERSION } from '../../../src/kbm/types';
import { parseWrappingKey } from '../../../src/kbm';
import { kbmContract } from '../../kbm/contract';

const log = pino({ level: 'silent' });
const dir = mkdtempSync(join(tmpdir(), 'tas-kbm-mock-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const SECRETS = {
  'my-key-1': Buffer.from('correct horse battery staple', 'utf8'),
  'my-key-2': Buffer.from('00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff', 'hex'),
  'tenant/a:dek.3': Buffer.from([0, 1, 2, 255]),
};

function writeConfig(name: string, form: string | undefined): string {
  const f = join(dir, name);
  const lines = [
    ...(form ? [`form: ${form}`] : []),
    'secrets:',
    `  my-key-1: { value_utf8: "${SECRETS['my-key-1'].toString('utf8')}" }`,
    `  my-key-2: { value_hex: "${SECRETS['my-key-2'].toString('hex')}" }`,
    `  "tenant/a:dek.3": { value_base64: "${SECRETS['tenant/a:dek.3'].toString('base64')}" }`,
  ];
  writeFileSync(f, lines.join('\n') + '\n');
  return f;
}

// Copies: the broker zeroes its own buffers at close, the expectations must survive.
const expected = (): Record<string, Buffer> => Object.fromEntries(Object.entries(SECRETS).map(([k, v]) => [k, Buffer.from(v)]));

kbmContract('tas_kbm_mock (AES-GCM, default form)', async () => ({
  broker: await plugin.open(writeConfig('gcm.yaml', undefined), { log }),
  secrets: expected(),
  form: 'aes-gcm',
}));

kbmContract('tas_kbm_mock (AES-KWP form)', async () => ({
  broker: await plugin.open(writeConfig('kwp.yaml', 'aes-kwp'), { log }),
  secrets: expected(),
  form: 'aes-kwp',
}));

describe('tas_kbm_mock configuration', () => {
  it('has a manifest of the current API version', () => {
    assert.equal(plugin.manifest.name, 'tas_kbm_mock');
    assert.equal(plugin.manifest.apiVersion, KBM_API_VERSION);
  });

  it('refuses to open without a config file, or with a missing one (never invents secrets)', async () => {
    for (const f of [undefined, '', join(dir, 'absent.yaml')]) {
      await assert.rejects(plugin.open(f, { log }), (e: unknown) => isKbmError(e) && e.kind === 'config');
    }
  });

  it('delay_ms makes a slow key backend (answers no sooner than the delay)', async () => {
    const f = join(dir, 'slow.yaml');
    writeFileSync(f, 'delay_ms: 300\nsecrets: {k: {value_utf8: v}}\n');
    assert.equal(parseMockConfig('secrets: {k: {value_utf8: v}}\n', 'x.yaml').delayMs, 0);
    const b = await plugin.open(f, { log });
    const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const t0 = process.hrtime.bigint();
    await b.getSecret('k', parseWrappingKey(publicKey.export({ type: 'pkcs1', format: 'der' })));
    assert.ok(Number(process.hrtime.bigint() - t0) / 1e6 >= 290);
    await b.close();
  });

  it('reads JSON as well as YAML', async () => {
    const f = join(dir, 'c.json');
    writeFileSync(f, JSON.stringify({ secrets: { k: { value_utf8: 'v' } } }));
    const b = await plugin.open(f, { log });
    assert.equal((await b.health()).ok, true);
    await b.close();
  });

  const bad: Array<[string, string, RegExp]> = [
    ['unknown top-level member', 'secret: {}\n', /unknown member 'secret'/],
    ['no secrets', 'form: aes-gcm\n', /'secrets' must be a mapping/],
    ['empty secrets', 'secrets: {}\n', /'secrets' is empty/],
    ['bad form', 'form: rsa\nsecrets: {k: {value_utf8: v}}\n', /form must be aes-gcm or aes-kwp/],
    ['two values', 'secrets: {k: {value_utf8: v, value_hex: "00"}}\n', /exactly one of/],
    ['odd hex', 'secrets: {k: {value_hex: "abc"}}\n', /hex digits/],
    ['bad base64', 'secrets: {k: {value_base64: "a*b="}}\n', /not standard base64/],
    ['unknown value kind', 'secrets: {k: {value: "x"}}\n', /unknown member 'value'/],
    ['empty value', 'secrets: {k: {value_utf8: ""}}\n', /is empty/],
    ['non-string value', 'secrets: {k: {value_utf8: 12}}\n', /must be a string/],
    ['duplicate key', 'secrets:\n  k: {value_utf8: a}\n  k: {value_utf8: b}\n', /not valid YAML/],
    ['top level list', '- a\n', /top level must be a mapping/],
    ['negative delay', 'delay_ms: -1\nsecrets: {k: {value_utf8: v}}\n', /delay_ms must be an integer/],
    ['delay as text', 'delay_ms: "5"\nsecrets: {k: {value_utf8: v}}\n', /delay_ms must be an integer/],
    ['delay beyond 120 s', 'delay_ms: 120001\nsecrets: {k: {value_utf8: v}}\n', /delay_ms must be an integer/],
  ];
  for (const [what, text, re] of bad) {
    it(`refuses a config with ${what}`, () => {
      assert.throws(() => parseMockConfig(text, 'x.yaml'), (e: unknown) => isKbmError(e) && e.kind === 'config' && re.test(e.message));
    });
  }
});
