import type { ConnectionsStore } from '../connections/connections.store.ts';
import type { ConsentStore } from '../consent/consent.store.ts';

/** Flow rows outlive their 10-minute validity by a day, so a late callback still gets a precise error. */
export const FLOW_RETENTION_MS = 24 * 3600_000;
const BATCH = 500;

/**
 * Periodic clean-up: pending connections past their deadline become `expired`, and consent flow
 * rows (whose PKCE verifiers are already erased once used) are deleted after the retention period.
 */
export function createHousekeeping(deps: {
  connections: Pick<ConnectionsStore, 'expirePending'>;
  consent: Pick<ConsentStore, 'deleteExpired'>;
  now?: () => number;
}) {
  const now = deps.now ?? Date.now;
  return {
    async runOnce(): Promise<{ expiredConnections: number; deletedFlows: number }> {
      const t = now();
      let expiredConnections = 0;
      for (;;) {
        const n = await deps.connections.expirePending(t, BATCH);
        expiredConnections += n;
        if (n < BATCH) break;
      }
      const deletedFlows = await deps.consent.deleteExpired(t - FLOW_RETENTION_MS);
      return { expiredConnections, deletedFlows };
    },

    /** Runs every `intervalMs` until stopped; failures are reported, never fatal. */
    start(
      intervalMs: number,
      onResult: (result: { expiredConnections: number; deletedFlows: number } | Error) => void,
    ): () => void {
      let running = false;
      const tick = async () => {
        if (running) return;
        running = true;
        try {
          onResult(await this.runOnce());
        } catch (error) {
          onResult(error as Error);
        } finally {
          running = false;
        }
      };
      const timer = setInterval(tick, intervalMs);
      timer.unref();
      void tick();
      return () => clearInterval(timer);
    },
  };
}

export type Housekeeping = ReturnType<typeof createHousekeeping>;
