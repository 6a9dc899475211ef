/**
 * certify settings (PROTOCOL.md §2.2): defaults, the TAS_CERTIFY_ENABLED alias (not both), list
 * and OID validation, and the original's certify names no longer refused.
 */
import assert from 'node:assert/strict';
import { certSettings } from '../../src/cert';
import { testConfig } from '../support/daemon';

function problem(env: Record<string, string>): string {
  try {
    testConfig(env);
  } catch (e) {
    return (e as Error).message;
  }
  return 'accepted';
}

describe('cert settings', () => {
  it('defaults are the original\'s', () => {
    const c = testConfig();
    assert.equal(c.get('cert.enabled'), false);
    assert.equal(c.get('cert.plugin'), 'tas_cert_local');
    assert.deepEqual(certSettings(c), {
      trustDomain: 'example.org', validitySeconds: 300, skewSeconds: 90, maxCsrBytes: 10000, allowedKeyTypes: ['RSA', 'EC'],
      digestMaxEntries: 17, digestMaxBytes: 4096, oidRoot: '1.3.6.1.4.1.65993',
    });
  });

  it('TAS_CERTIFY_ENABLED is the same setting as TAS_CERT_ENABLED; both at once is refused', () => {
    assert.equal(testConfig({ TAS_CERTIFY_ENABLED: 'true' }).get('cert.enabled'), true);
    assert.equal(testConfig({ TAS_CERT_ENABLED: 'true' }).get('cert.enabled'), true);
    assert.match(problem({ TAS_CERT_ENABLED: 'true', TAS_CERTIFY_ENABLED: 'false' }), /more than one environment name/);
  });

  it('validates key types (JSON or comma list), the OID arc, the trust domain and the plugin prefix', () => {
    assert.deepEqual(testConfig({ TAS_CERT_ALLOWED_KEY_TYPES: '["EC"]' }).get('cert.allowed_key_types'), ['EC']);
    assert.deepEqual(testConfig({ TAS_CERT_ALLOWED_KEY_TYPES: 'RSA,EC' }).get('cert.allowed_key_types'), ['RSA', 'EC']);
    assert.match(problem({ TAS_CERT_ALLOWED_KEY_TYPES: 'DSA' }), /unknown key type/);
    assert.match(problem({ TAS_OID_ROOT: '1.3.6.x' }), /dotted OID/);
    assert.match(problem({ TAS_CERT_TRUST_DOMAIN: 'Bad/Domain' }), /trust domain/);
    assert.match(problem({ TAS_CERT_PLUGIN: 'tas_kbm_mock' }), /TAS_CERT_PLUGIN_PREFIX/);
    assert.match(problem({ TAS_CERT_VALIDITY_SECONDS: '10' }), />= 60/);
    assert.match(problem({ TAS_CERTIFY_MAX_POLICIES: '3' }), /exactly one signed policy/);
  });
});
