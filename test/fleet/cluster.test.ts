/** The fleet contract on a three-master Redis Cluster (multi-key operations are hash-tagged). */
import { startCluster } from '../support/redis';
import { fleetSuite } from '../support/fleet-suite';

fleetSuite('a three-master Redis Cluster', async () => {
  const c = await startCluster();
  return { env: { TAS_REDIS_CLUSTER_NODES: c.nodeList }, stop: () => c.stop() };
});
