/**
 * registerTrustMetrics exports `tas_test_roots_enabled` (1 while TAS_SNP_EXTRA_TRUST_DIR adds
 * non-AMD roots or TAS_TDX_EXTRA_TRUST_DIR non-Intel roots, else 0), read at scrape time so a SIGHUP reload is reflected. Call it once per
 * registry with a getter of the trust currently in force.
 * registerVekTableMetric exports `tas_snp_vek_tables`: the VCEK/VLEK tables of precomputed
 * multiples the addon holds (a VEK's reports verify with one from its second report on; past the
 * cap, keys verify the generic way, at ~2.5x the CPU).
 */
import { Gauge, type Registry } from 'prom-client';
import { vekTables } from '../native';

const done = new WeakSet<Registry>();

export function registerTrustMetrics(registry: Registry, trust: () => { readonly testRoots: boolean }): void {
  if (done.has(registry)) return;
  done.add(registry);
  new Gauge({
    name: 'tas_test_roots_enabled',
    help: 'Whether TAS_SNP_EXTRA_TRUST_DIR or TAS_TDX_EXTRA_TRUST_DIR adds test/lab roots to the pinned AMD/Intel roots (1) or not (0).',
    registers: [registry],
    collect() {
      this.set(trust().testRoots ? 1 : 0);
    },
  });
}

export function registerVekTableMetric(registry: Registry): void {
  if (registry.getSingleMetric('tas_snp_vek_tables')) return;
  const cap = vekTables().limit;
  new Gauge({
    name: 'tas_snp_vek_tables',
    help: `VCEK/VLEK tables of precomputed multiples held for report signatures (at most ${cap}; ~140 KiB each).`,
    registers: [registry],
    collect() {
      this.set(vekTables().count);
    },
  });
}
