/**
 * Regenerates test/fixtures/kmip/pykmip-<version>.json: starts a throw-away PyKMIP server, creates
 * one AES-256 key named `fixture-kek` with PyKMIP's client, and records PyKMIP's own client traffic
 * (capture.py) for DiscoverVersions, Locate, GetAttributes and Get in KMIP 1.2 and 2.0.
 * Usage: node --import tsx test/support/pykmip/capture-fixtures.ts
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PyKmipServer, SYSTEM_PYTHON } from '../pykmip';

const OUT = join(__dirname, '..', '..', 'fixtures', 'kmip');

async function main(): Promise<void> {
  const s = await PyKmipServer.create();
  await s.start();
  try {
    const [key] = s.admin([{ op: 'create_aes', name: 'fixture-kek' }]);
    for (const version of ['1.2', '2.0']) {
      const r = spawnSync(SYSTEM_PYTHON, ['-W', 'ignore', join(__dirname, 'capture.py'), s.clientConfig, version, 'fixture-kek', key!.uid], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`capture.py ${version}: ${r.stderr}`);
      const frames = JSON.parse(r.stdout) as Record<string, { request: string; response: string }>;
      const doc = {
        comment: 'Captured from PyKMIP 0.10 (python3-pykmip) client and server; see README.md. Throw-away test key.',
        version,
        name: 'fixture-kek',
        uid: key!.uid,
        keyMaterial: key!.hex,
        frames,
      };
      writeFileSync(join(OUT, `pykmip-${version}.json`), `${JSON.stringify(doc, null, 2)}\n`);
      console.log(`wrote pykmip-${version}.json`);
    }
  } finally {
    await s.destroy();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
