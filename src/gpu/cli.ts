/**
 * `tas gpu import|status`: NVIDIA endorsements for hosts that cannot (or must not) reach NVIDIA
 * (TAS_NVIDIA_OFFLINE=true).
 *   import  RIMs (`NV_GPU_*.xml`, `<project>_<sku>_<chip>_<vbios>[_PROD].swidtag`, or any XML
 *           with --rim-id) — verified with xmlsec1 against the pinned RIM root before they are
 *           stored — and OCSP answers (`<serial hex>.der`, re-verified at every use)
 *   status  what is cached
 * Exit codes: 0 ok, 1 some items refused, 2 usage or configuration error, 3 internal error.
 */
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { defineCommand, EXIT, filesIn, group, toolConfig, withFormat } from '../cli-kit';
import { GpuCache } from './cache';
import { rimIdFromName } from './rim';
import { loadGpuTrust } from './trust';

function openCache(configFile: string | undefined): GpuCache {
  const cfg = toolConfig(configFile);
  const trust = loadGpuTrust(cfg.get<string | undefined>('nvidia.extra_trust_dir'));
  return new GpuCache({
    dir: join(cfg.get<string>('kds.cache_dir'), 'nvidia'),
    rimUrl: cfg.get<string>('nvidia.rim_url'),
    ocspUrl: cfg.get<string>('nvidia.ocsp_url'),
    offline: () => true,
    failMode: () => cfg.get<'closed' | 'open'>('kds.crl_fail_mode'),
    trust: () => trust,
  });
}

const importCmd = defineCommand<{ config?: string; paths: string[]; rimId?: string; format: string }>({
  command: 'import <paths..>',
  describe: 'Verify and store NVIDIA RIMs (xmlsec1) and OCSP answers obtained elsewhere',
  builder: (y) =>
    withFormat(y)
      .example('$0 gpu import /media/usb/nvidia', 'import every RIM (*.xml, *.swidtag) and OCSP answer (<serial>.der) in a directory')
      .positional('paths', { type: 'string', array: true })
      .option('rim-id', { type: 'string', describe: 'RIM id for a single RIM file whose name does not say it' })
      .option('config', { type: 'string', describe: 'Config file (default $TAS_CONFIG_FILE, else /etc/tas/tas.yaml when installed)' }) as never,
  async run(argv) {
    const cache = openCache(argv.config);
    const results: Array<{ file: string; ok: boolean; detail: string }> = [];
    for (const f of filesIn(argv.paths)) {
      const name = basename(f);
      try {
        if (/\.der$/i.test(name)) {
          const serial = name.slice(0, -4).toLowerCase();
          cache.importOcsp(serial, readFileSync(f));
          results.push({ file: f, ok: true, detail: `OCSP answer for certificate ${serial} (verified at use)` });
        } else if (/\.(xml|swidtag)$/i.test(name)) {
          const id = argv.rimId ?? rimIdFromName(name);
          if (!id) throw new Error('cannot tell the RIM id from the file name: use --rim-id');
          const v = await cache.importRim(id, readFileSync(f));
          if (!v.signatureVerified) throw new Error(`signature does not verify (${v.detail}); stored as refused`);
          results.push({ file: f, ok: true, detail: `RIM ${id} version ${v.version}, ${v.measurements.length} measurements, signature verified` });
        } else {
          continue;
        }
      } catch (e) {
        results.push({ file: f, ok: false, detail: (e as Error).message });
      }
    }
    const failed = results.filter((r) => !r.ok).length;
    if (argv.format === 'json') process.stdout.write(`${JSON.stringify({ ok: failed === 0, results }, null, 2)}\n`);
    else for (const r of results) process.stdout.write(`${r.ok ? 'ok  ' : 'FAIL'} ${r.file}: ${r.detail}\n`);
    return failed ? EXIT.CHECK_FAILED : EXIT.OK;
  },
});

const status = defineCommand<{ config?: string; format: string }>({
  command: 'status',
  describe: 'Show cached NVIDIA RIMs and OCSP answers',
  builder: (y) =>
    withFormat(y)
      .example('$0 gpu status --format json', 'cached NVIDIA RIMs and OCSP answers as JSON')
      .option('config', { type: 'string', describe: 'Config file (default $TAS_CONFIG_FILE, else /etc/tas/tas.yaml when installed)' }) as never,
  run(argv) {
    const s = openCache(argv.config).status();
    if (argv.format === 'json') process.stdout.write(`${JSON.stringify(s, null, 2)}\n`);
    else {
      process.stdout.write(`cache: ${String(s.dir)}\nRIMs (${(s.rims as string[]).length}):\n`);
      for (const r of s.rims as string[]) process.stdout.write(`  ${r}\n`);
      process.stdout.write(`OCSP answers (${(s.ocsp as unknown[]).length}):\n`);
      for (const o of s.ocsp as Array<{ serial: string }>) process.stdout.write(`  ${o.serial}\n`);
    }
  },
});

export const gpuCommand = group('gpu <command>', 'Import and inspect NVIDIA RIMs and OCSP answers (offline hosts)', [importCmd, status] as never);
