/**
 * One loaded PKCS#11 library per path and process. C_Initialize may run once per library and
 * process, and the login state belongs to the token, not to a session, so brokers (and tests) that
 * use the same library share one PKCS11 object, reference counted: the last release finalizes.
 */
import * as pkcs11js from 'pkcs11js';
import { KbmError } from '../../src/kbm/types';

interface Loaded {
  p11: pkcs11js.PKCS11;
  refs: number;
}

const loaded = new Map<string, Loaded>();

/** acquireModule loads and initializes (with OS locking, for the thread-pool calls) a library. */
export function acquireModule(path: string): pkcs11js.PKCS11 {
  const hit = loaded.get(path);
  if (hit) {
    hit.refs++;
    return hit.p11;
  }
  const p11 = new pkcs11js.PKCS11();
  try {
    p11.load(path);
  } catch (e) {
    throw new KbmError('config', `tas_kbm_pkcs11: cannot load PKCS#11 module ${path}: ${(e as Error).message}`);
  }
  try {
    p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
  } catch (e) {
    if (!(e instanceof pkcs11js.Pkcs11Error && e.code === pkcs11js.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
      try {
        p11.close();
      } catch {
        /* already failing */
      }
      throw new KbmError('config', `tas_kbm_pkcs11: C_Initialize of ${path} failed: ${(e as Error).message}`);
    }
  }
  loaded.set(path, { p11, refs: 1 });
  return p11;
}

/** releaseModule drops one reference; the last one finalizes and unloads the library. */
export function releaseModule(path: string): void {
  const hit = loaded.get(path);
  if (!hit) return;
  if (--hit.refs > 0) return;
  loaded.delete(path);
  try {
    hit.p11.C_Finalize();
  } catch {
    /* nothing left to save */
  }
  try {
    hit.p11.close();
  } catch {
    /* idem */
  }
}
