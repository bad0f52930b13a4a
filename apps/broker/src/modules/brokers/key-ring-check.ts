import type { ResolvedKeys } from '../../crypto/key-file.ts';
import type { LiveBrokers } from './brokers.types.ts';
import { type MissingKey, missingKeys, ringsOf } from './rings.ts';

export interface KeyRingStatus {
  /** `behind`: another live process writes with a key this one lacks. */
  readonly status: 'ok' | 'behind';
  /** What is missing and who writes with it (for logs and `doctor`; never for a public answer). */
  readonly missing: readonly MissingKey[];
}

export interface KeyRingCheck {
  check(): Promise<KeyRingStatus>;
}

/**
 * /ready's `key_ring` check: is every key that another live process writes with in this process's
 * rings? A process following a key file re-reads it first when the answer is no (the watcher may
 * not have fired yet); with keys from the environment only a restart with the new key helps, and
 * until then this process reports itself not ready, so that load balancers send it nothing.
 */
export function createKeyRingCheck(deps: {
  store: LiveBrokers;
  keys: Pick<ResolvedKeys, 'ring' | 'userSecretsRing' | 'follows' | 'reload'>;
  now?: () => number;
}): KeyRingCheck {
  const now = deps.now ?? Date.now;
  return {
    async check() {
      const live = await deps.store.live(now());
      let missing = missingKeys(ringsOf(deps.keys), live);
      if (missing.length > 0 && deps.keys.follows !== undefined) {
        if (deps.keys.reload({ force: true, reason: 'readiness check' }) === 'changed')
          missing = missingKeys(ringsOf(deps.keys), live);
      }
      return { status: missing.length === 0 ? 'ok' : 'behind', missing };
    },
  };
}
