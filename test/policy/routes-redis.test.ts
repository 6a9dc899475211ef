/** The policy routes contract on a real redis-server (plain topology), one key prefix per test. */
import { startPlain } from '../support/redis';
import { repoFromStore } from '../../src/policy';
import { openRedisStore } from '../store/redis-helpers';
import { policyRoutesContract } from './routes-contract';

describe('policy routes on redis', function () {
  this.timeout(30_000);
  let srv: Awaited<ReturnType<typeof startPlain>>;
  let n = 0;
  before(async () => {
    srv = await startPlain();
  });
  after(async () => {
    await srv.stop();
  });
  policyRoutesContract('redis', async () => {
    const store = openRedisStore({ url: srv.url, keyPrefix: `tas-policy-${++n}:` });
    return { repo: repoFromStore(store), close: () => store.close() };
  });
});
