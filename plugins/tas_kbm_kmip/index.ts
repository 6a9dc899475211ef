/**
 * tas_kbm_kmip: releases keys held by a KMIP server (KMIP 1.2 baseline, 1.4 and 2.0), over mutual
 * TLS with tas's own TTLV codec. Config: a pykmip.conf-style `[client]` file (see config.ts).
 */
import { KBM_API_VERSION, type KbmDeps, type KbmManifest, type KbmPlugin, type KeyBroker } from '../../src/kbm/types';
import { KbmError } from '../../src/kbm/types';
import { openKmipBroker } from './broker';
import { KmipConfigError, loadKmipConfig } from './config';

export { KmipBroker, openKmipBroker, toKbmError, type KmipBrokerHooks } from './broker';
export { KmipClient, KmipClientError } from './client';
export { loadKmipConfig, type KmipConfig } from './config';

const manifest: KbmManifest = Object.freeze({
  name: 'tas_kbm_kmip',
  apiVersion: KBM_API_VERSION,
  description: 'KMIP 1.2/1.4/2.0 key broker (mutual TLS; Locate by Name, Get; wrapped by tas)',
});

/** plugin is the KbmPlugin the daemon loads. */
export const plugin: KbmPlugin = {
  manifest,
  async open(configFile: string | undefined, deps: KbmDeps): Promise<KeyBroker> {
    const broker = openKmipBroker(manifest, configFile, deps.log);
    // One probe at open so that the log says at once whether the server is reachable and accepts
    // our certificate; a failure does not stop startup (the daemon stays not-ready instead).
    const h = await broker.health();
    if (h.ok) deps.log.info({ kbm: manifest.name }, h.detail ?? 'KMIP server reachable');
    else deps.log.warn({ kbm: manifest.name, authFailed: h.authFailed === true }, `KMIP server not ready: ${h.detail ?? ''}`);
    return broker;
  },
  check(configFile: string | undefined): void {
    // The config and the certificate/key files it names; the server is not contacted.
    try {
      loadKmipConfig(configFile);
    } catch (e) {
      if (e instanceof KmipConfigError) throw new KbmError('config', e.message, { cause: e });
      throw e;
    }
  },
};

export default plugin;
