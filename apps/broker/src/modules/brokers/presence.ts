import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { ResolvedKeys } from '../../crypto/key-file.ts';
import type { BrokersStore } from './brokers.store.ts';
import type { BrokerProcess } from './brokers.types.ts';
import { ringsOf } from './rings.ts';

/** Well inside `LIVE_MS`: a process is taken as gone only after missing several. */
const HEARTBEAT_MS = 5_000;
/** Forgetting long-gone entries is not urgent: once a minute is plenty. */
const FORGET_EVERY = 12;

export interface Presence {
  /** This process's entry id. */
  readonly id: string;
  /** Stops the heartbeat and removes the entry (graceful shutdown). */
  stop(): Promise<void>;
}

/**
 * Records this process in the registry and keeps its entry fresh: a heartbeat, and an update as
 * soon as its key rings change (so that a waiting `nexus keys rewrap` sees the reload at once).
 * Heartbeats are written one at a time; the last one finishes before the entry is removed.
 */
export async function startPresence(deps: {
  store: Pick<BrokersStore, 'upsert' | 'remove' | 'forgetGone'>;
  keys: Pick<ResolvedKeys, 'ring' | 'userSecretsRing' | 'onReload' | 'follows'>;
  role: string;
  /** `transit` when the keys were unwrapped by Vault Transit. */
  keySource: 'env' | 'file' | 'transit';
  onError?: (error: unknown) => void;
  now?: () => number;
  heartbeatMs?: number;
}): Promise<Presence> {
  const now = deps.now ?? Date.now;
  const started = now();
  const id = randomUUID();
  const entry = (): BrokerProcess => ({
    id,
    host: hostname(),
    pid: process.pid,
    role: deps.role,
    startedAt: started,
    heartbeatAt: now(),
    rings: ringsOf(deps.keys),
    keySource: deps.keySource,
  });
  let stopped = false;
  let ticks = 0;
  let chain: Promise<void> = Promise.resolve();
  const beat = () => {
    chain = chain.then(async () => {
      if (stopped) return;
      try {
        await deps.store.upsert(entry());
        if (++ticks % FORGET_EVERY === 0) await deps.store.forgetGone(now());
      } catch (error) {
        deps.onError?.(error);
      }
    });
    return chain;
  };
  await deps.store.upsert(entry());
  await deps.store.forgetGone(now());
  const timer = setInterval(beat, deps.heartbeatMs ?? HEARTBEAT_MS);
  timer.unref();
  const unsubscribe = deps.keys.onReload((event) => {
    if (event.outcome === 'changed') void beat();
  });
  return {
    id,
    async stop() {
      clearInterval(timer);
      unsubscribe();
      stopped = true;
      await chain;
      await deps.store.remove(id);
    },
  };
}
