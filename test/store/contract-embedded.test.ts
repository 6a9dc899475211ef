import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddedStore } from '../../src/store';
import { storeContract, type ContractHarness } from './contract';

/** FakeClock is a monotonic clock the test moves by hand: expiry without sleeping. */
class FakeClock {
  t = 1_000;
  now = (): number => this.t;
}

describe('embedded store', () => {
  let dir: string;
  let clock: FakeClock;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tas-store-'));
    clock = new FakeClock();
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  let instance: EmbeddedStore | undefined;
  const harness = (): ContractHarness => ({
    async open() {
      // Every instance in one test shares the directory and the clock; nonces are per process.
      instance = new EmbeddedStore({ stateDir: join(dir, 'state'), cacheDir: join(dir, 'cache'), now: clock.now });
      return instance;
    },
    async pass(ms) {
      clock.t += ms;
    },
    sharedNonces: false,
    async snapshot() {
      const files = readdirSync(join(dir, 'state', 'policies')).sort();
      return JSON.stringify({ files, count: await instance!.count(), policies: await instance!.listPolicies() });
    },
  });
  storeContract('embedded', harness);
});
