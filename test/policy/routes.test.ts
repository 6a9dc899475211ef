import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryPolicyRepo, repoFromStore } from '../../src/policy';
import { EmbeddedStore } from '../../src/store';
import { policyRoutesContract } from './routes-contract';

policyRoutesContract('in-memory repo', async () => ({ repo: new MemoryPolicyRepo(), close: async () => {} }));

policyRoutesContract('embedded store', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tas-policy-routes-'));
  const store = new EmbeddedStore({ stateDir: join(dir, 'state'), cacheDir: join(dir, 'cache') });
  return {
    repo: repoFromStore(store),
    close: async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});
