/** The fleet contract on one plain Redis server. */
import { startPlain } from '../support/redis';
import { fleetSuite } from '../support/fleet-suite';

fleetSuite('a single Redis server', async () => {
  const r = await startPlain();
  return { env: { TAS_REDIS_URL: r.url }, stop: () => r.stop() };
});
