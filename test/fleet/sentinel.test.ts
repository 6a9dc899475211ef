/** The fleet contract on Redis Sentinel (master, replica, three sentinels). */
import { SENTINEL_NAME, startSentinel } from '../support/redis';
import { fleetSuite } from '../support/fleet-suite';

fleetSuite('Redis Sentinel (master, replica, three sentinels)', async () => {
  const s = await startSentinel();
  return { env: { TAS_REDIS_SENTINELS: s.sentinelList, TAS_REDIS_SENTINEL_NAME: SENTINEL_NAME }, stop: () => s.stop() };
});
