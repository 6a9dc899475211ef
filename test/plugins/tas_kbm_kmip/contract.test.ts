/**
 * The KBM contract suite against a real PyKMIP server, once per protocol version (1.2, 1.4, 2.0).
 * One server for the whole file; keys are created through PyKMIP's own client under the identity
 * tas uses.
 */
import assert from 'node:assert/strict';
import pino from 'pino';
import { kbmContract } from '../../kbm/contract';
import { PyKmipServer } from '../../support/pykmip';
import { plugin } from '../../../plugins/tas_kbm_kmip';
import type { KmipBroker } from '../../../plugins/tas_kbm_kmip';

const log = pino({ level: 'silent' });
let server: PyKmipServer | undefined;
let secrets: Record<string, Buffer> = {};

/** ready starts the shared server and creates the keys (once for the file). */
async function ready(): Promise<PyKmipServer> {
  if (server) return server;
  const s = await PyKmipServer.create();
  await s.start();
  const [aes, data] = s.admin([
    { op: 'create_aes', name: 'contract-aes' },
    { op: 'register_secret', name: 'contract-secret', hex: Buffer.from('a secret-data passphrase').toString('hex') },
    // A pre-active key of another name must never be released (State=Active filter).
    { op: 'create_aes', name: 'contract-preactive', activate: false },
  ]);
  secrets = { 'contract-aes': Buffer.from(aes!.hex!, 'hex'), 'contract-secret': Buffer.from(data!.hex!, 'hex') };
  server = s;
  return s;
}

// One describe around the three runs, so that the server stops when this file is done (a
// top-level after() would run only at the end of the whole test run).
describe('tas_kbm_kmip against PyKMIP', () => {
  after(async () => {
    await server?.destroy();
    server = undefined;
  });

  // `auto` (DiscoverVersions) is the default config and runs through failures.test.ts.
  for (const version of ['1.2', '1.4', '2.0'] as const) {
    kbmContract(`tas_kbm_kmip (PyKMIP, KMIP ${version})`, async () => {
      const s = await ready();
      const conf = s.writeClientConfig(`tas-${version}.conf`, undefined, { kmip_version: version, request_timeout_ms: 20_000 });
      const broker = await plugin.open(conf, { log });
      const kb = broker as KmipBroker;
      assert.equal(`${kb.client.version!.major}.${kb.client.version!.minor}`, version);
      return { broker, secrets: { ...secrets }, form: 'aes-gcm', unknownKeyId: 'contract-preactive' };
    });
  }
});
