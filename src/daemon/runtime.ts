/**
 * Readiness registry and life-cycle hooks: the small runtime pieces of AppContext.
 */
import type { Config } from '../config';
import type { Lifecycle, Readiness, ReadinessCheck } from './context';

/** A readiness check slower than this counts as failed: /readyz must answer probes promptly. */
export const READINESS_TIMEOUT_MS = 2_000;

/** createReadiness runs every registered check concurrently; a throw or timeout is a failure with its reason. */
export function createReadiness(timeoutMs = READINESS_TIMEOUT_MS): Readiness {
  const checks = new Map<string, ReadinessCheck>();
  return {
    register(name, check) {
      if (checks.has(name)) throw new Error(`readiness check ${name} registered twice`);
      checks.set(name, check);
    },
    async check() {
      const failed: Record<string, string> = {};
      await Promise.all([...checks].map(async ([name, fn]) => {
        let timer: NodeJS.Timeout | undefined;
        try {
          const reason = await Promise.race([
            Promise.resolve().then(fn),
            new Promise<string>((resolve) => { timer = setTimeout(() => resolve(`no answer within ${timeoutMs} ms`), timeoutMs); }),
          ]);
          if (reason !== undefined) failed[name] = reason;
        } catch (e) {
          failed[name] = e instanceof Error ? e.message : String(e);
        } finally {
          clearTimeout(timer);
        }
      }));
      return { ready: Object.keys(failed).length === 0, failed };
    },
  };
}

/** LifecycleRunner is a Lifecycle that the daemon can run. */
export interface LifecycleRunner extends Lifecycle {
  runReload(cfg: Config): Promise<Error[]>;
  runClose(): Promise<Error[]>;
}

/** createLifecycle keeps hooks in order; close hooks run in reverse, and every hook runs even if one fails. */
export function createLifecycle(): LifecycleRunner {
  const reloads: Array<(cfg: Config) => void | Promise<void>> = [];
  const closes: Array<() => void | Promise<void>> = [];
  const runAll = async (fns: Array<() => void | Promise<void>>): Promise<Error[]> => {
    const errors: Error[] = [];
    for (const fn of fns) {
      try {
        await fn();
      } catch (e) {
        errors.push(e instanceof Error ? e : new Error(String(e)));
      }
    }
    return errors;
  };
  return {
    onReload: (fn) => void reloads.push(fn),
    onClose: (fn) => void closes.push(fn),
    runReload: (cfg) => runAll(reloads.map((fn) => () => fn(cfg))),
    runClose: () => runAll(closes.splice(0).reverse()),
  };
}
