/**
 * Input checks every backend runs before a value becomes part of a key or a file name. The nonce
 * check is the store's own line of defence: the original TAS deleted any key a client named as
 * its nonce, so nothing but 64 lowercase hex characters may ever address the nonce namespace.
 */
import { TasError } from '../errors';
import { BLOB_KEY_RE, NONCE_RE, POLICY_ID_RE } from './types';

/** isNonce: n is 64 lowercase hex characters. */
export function isNonce(n: unknown): n is string {
  return typeof n === 'string' && n.length === 64 && NONCE_RE.test(n);
}

/** assertNonce throws NONCE_FORMAT unless n is 64 lowercase hex characters. */
export function assertNonce(n: unknown): asserts n is string {
  if (!isNonce(n)) {
    throw new TasError('NONCE_FORMAT', `nonce is not 64 lowercase hex characters (${describe(n)})`, { reason: 'NONCE_FORMAT' });
  }
}

/** assertPolicyId throws POLICY_ID_INVALID unless id matches the policy id shape. */
export function assertPolicyId(id: unknown): asserts id is string {
  if (typeof id !== 'string' || !POLICY_ID_RE.test(id) || id === '.' || id === '..') {
    throw new TasError('POLICY_ID_INVALID', `policy id does not match ^[A-Za-z0-9_.-]{1,128}$ (${describe(id)})`);
  }
}

/** assertBlobKey: blob keys come from code, not clients; a bad one is a bug. */
export function assertBlobKey(key: unknown): asserts key is string {
  if (typeof key !== 'string' || !BLOB_KEY_RE.test(key)) throw new TasError('INTERNAL', `bad blob key (${describe(key)})`);
}

/** assertOwner: owners are generated ids; bound them so no caller can grow a record. */
export function assertOwner(owner: unknown): asserts owner is string {
  if (typeof owner !== 'string' || !/^[A-Za-z0-9_.:-]{1,128}$/.test(owner)) throw new TasError('INTERNAL', 'bad nonce owner id');
}

/** assertPositive checks durations and caps passed by code. */
export function assertPositive(name: string, v: unknown): asserts v is number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) throw new TasError('INTERNAL', `${name} must be a positive integer`);
}

/** describe says what kind of bad value arrived without echoing it (it may be long or hostile). */
function describe(v: unknown): string {
  if (typeof v !== 'string') return typeof v;
  return `${v.length} characters`;
}
