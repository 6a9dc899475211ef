/** Shared helpers of the policy tests: test keys (generated once per process) and documents. */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseTrustPem, type TrustedKey } from '../../src/policy/trust';

export const FIXTURES = join(__dirname, '..', 'fixtures', 'policies');

export interface TestSigner {
  readonly privateKey: KeyObject;
  readonly publicPem: string;
  readonly trusted: TrustedKey;
}

const cache = new Map<string, TestSigner>();

/** signer returns a named RSA-2048 test key pair (cached per process). */
export function signer(name: string): TestSigner {
  let s = cache.get(name);
  if (s === undefined) {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    s = { privateKey, publicPem, trusted: parseTrustPem(publicPem, name)[0]! };
    cache.set(name, s);
  }
  return s;
}

/** AGENT_FIXTURES is the verbatim copy of shared/agent-fixtures (policy.json, policy-trust/, chains). */
export const AGENT_FIXTURES = join(__dirname, '..', 'fixtures', 'agent-fixtures');

/** Policy fixture names map to files; the agent ones live in the agent-fixtures copy. */
function fixturePath(name: string): string {
  if (name === 'agent-policy.json') return join(AGENT_FIXTURES, 'policy.json');
  if (name === 'agent-policy-signer.pem') return join(AGENT_FIXTURES, 'policy-trust', 'policy-signer.pem');
  return join(FIXTURES, name);
}

export function fixture<T = Record<string, unknown>>(name: string): T {
  return JSON.parse(readFileSync(fixturePath(name), 'utf8')) as T;
}

export function fixtureKey(name: string): TrustedKey {
  return parseTrustPem(readFileSync(fixturePath(name), 'utf8'), name)[0]!;
}

export const MEAS = '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff';

/** doc builds a valid management-dialect document. */
export function doc(id: string, over: { key_id?: string; rules?: Record<string, unknown>; policy_type?: string } = {}): Record<string, unknown> {
  return {
    metadata: {
      name: `policy ${id}`,
      version: '1.0',
      description: 'test policy',
      policy_type: over.policy_type ?? 'SEV',
      policy_id: id,
      key_id: over.key_id ?? 'my-key-1',
    },
    validation_rules: over.rules ?? { measurement: { exact_match: MEAS }, vmpl: { exact_match: 0 }, policy: { debug_allowed: false } },
  };
}
