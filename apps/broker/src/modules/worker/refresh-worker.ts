import type { ConnectionsService } from '../connections/connections.service.ts';
import type { RefreshOutcome } from '../connections/connections.types.ts';

export interface RefreshWorkerMetrics {
  refreshed(outcome: RefreshOutcome | 'error', providerId: string, seconds: number): void;
  tookOver(count: number): void;
}

export interface RefreshWorkerOptions {
  /** The connections service's queue (its `claimDue` and `dropLease`). */
  store: Pick<ConnectionsService, 'claimDue' | 'dropLease'>;
  connections: Pick<ConnectionsService, 'refreshClaimed' | 'newLeaseId' | 'lease'>;
  /** Refreshes this process runs at once. */
  concurrency: number;
  /** Of those, at most this many against one provider. */
  providerConcurrency: number;
  metrics?: RefreshWorkerMetrics;
  onError?: (error: unknown, connectionId: string) => void;
  now?: () => number;
}

/**
 * Refreshes OAuth connections before their access tokens expire. It claims due connections in
 * short transactions (`store.claimDue`: FOR UPDATE SKIP LOCKED on PostgreSQL) only when it has a
 * free slot for them, so a claimed lease is always being worked on; the provider call runs outside
 * any transaction and its result is written back by the connections service in a second short
 * statement. The lease is the same one on-demand refreshes take, so a background refresh and an
 * agent's forced refresh never both spend a refresh token.
 */
export function createRefreshWorker(options: RefreshWorkerOptions) {
  const now = options.now ?? Date.now;
  const perProvider = new Map<string, number>();
  const running = new Set<Promise<void>>();
  let filling: Promise<boolean> | undefined;
  let wake: (() => void) | undefined;
  let launched = 0;
  let ended = 0;
  /** Set when the serving loop is told to stop: a claim that returns after that starts nothing. */
  let stopping = false;
  let onJobError = options.onError;

  function saturated(): string[] {
    return [...perProvider].filter(([, n]) => n >= options.providerConcurrency).map(([p]) => p);
  }

  function launch(id: string, providerId: string, leaseId: string): void {
    perProvider.set(providerId, (perProvider.get(providerId) ?? 0) + 1);
    launched++;
    const started = performance.now();
    const job = (async () => {
      let outcome: RefreshOutcome | 'error';
      try {
        outcome = await options.connections.refreshClaimed(id, leaseId);
      } catch (error) {
        outcome = 'error';
        onJobError?.(error, id);
      }
      options.metrics?.refreshed(outcome, providerId, (performance.now() - started) / 1000);
    })().finally(() => {
      const n = (perProvider.get(providerId) ?? 1) - 1;
      if (n === 0) perProvider.delete(providerId);
      else perProvider.set(providerId, n);
      running.delete(job);
      ended++;
      wake?.();
    });
    running.add(job);
  }

  /** Gives leases back; every one is tried, and the first failure is thrown after all were. */
  async function giveBack(ids: string[], leaseId: string): Promise<void> {
    const results = await Promise.allSettled(ids.map((id) => options.store.dropLease(id, leaseId)));
    const failed = results.find((r) => r.status === 'rejected');
    // Those leases run out by themselves (NEXUS_REFRESH_LEASE_SECONDS); the caller reports it.
    if (failed) throw failed.reason;
  }

  /** Claims and starts work until the slots are full or nothing is due; true if it started any. */
  async function fillOnce(): Promise<boolean> {
    let started = false;
    for (;;) {
      const free = options.concurrency - running.size;
      if (free <= 0 || stopping) return started;
      // One lease id per claim: the fencing token of every lease it takes.
      const leaseId = options.connections.newLeaseId();
      const endedBefore = ended;
      const full = saturated();
      const claimed = await options.store.claimDue(leaseId, now(), options.connections.lease, free, full);
      if (claimed.length === 0) {
        // A provider left out as full may have freed its slots while the claim ran: ask again,
        // or its due connections wait for the next poll (and `runOnce` would miss them).
        if (full.length > 0 && ended !== endedBefore && !stopping) continue;
        return started;
      }
      // Shutdown began while the claim ran: start no provider call, give the batch back.
      if (stopping) {
        await giveBack(
          claimed.map((c) => c.id),
          leaseId,
        );
        return started;
      }
      const takeovers = claimed.filter((c) => c.tookOver).length;
      if (takeovers > 0) options.metrics?.tookOver(takeovers);
      const over: string[] = [];
      for (const c of claimed) {
        // A batch may hold more of one provider than its cap allows: give those back untouched.
        if ((perProvider.get(c.provider_id) ?? 0) >= options.providerConcurrency) {
          over.push(c.id);
          continue;
        }
        launch(c.id, c.provider_id, leaseId);
        started = true;
      }
      // Only after the whole batch was launched: a failed give-back must not strand the rest.
      await giveBack(over, leaseId);
      if (claimed.length < free) return started;
    }
  }

  /** One fill at a time per process: concurrent callers share it. */
  function fill(): Promise<boolean> {
    filling ??= fillOnce().finally(() => {
      filling = undefined;
    });
    return filling;
  }

  return {
    /** Refreshes everything due now and waits for it (tests, `nexus worker --once`). */
    async runOnce(): Promise<number> {
      const first = launched;
      for (;;) {
        const startedAny = await fill();
        if (running.size === 0 && !startedAny) return launched - first;
        if (running.size > 0) await Promise.race(running);
      }
    },

    /**
     * Runs until stopped: claims whenever a slot frees up, and polls every `pollMs` when idle.
     * Errors (a database hiccup) are reported and retried at the next poll, never fatal; a
     * refresh that fails is reported to `onRefreshError` (its connection is due again later).
     */
    start(
      pollMs: number,
      onLoopError: (error: unknown) => void,
      onRefreshError?: (error: unknown, connectionId: string) => void,
    ): () => Promise<void> {
      if (onRefreshError) onJobError = onRefreshError;
      stopping = false;
      let timer: NodeJS.Timeout | undefined;
      const loop = async () => {
        while (!stopping) {
          const endedBefore = ended;
          try {
            await fill();
          } catch (error) {
            onLoopError(error);
          }
          if (stopping) break;
          // A refresh that ended during the fill freed a slot its wake-up could not report.
          if (ended !== endedBefore && running.size < options.concurrency) continue;
          await new Promise<void>((resolve) => {
            wake = resolve;
            timer = setTimeout(resolve, pollMs);
          });
          wake = undefined;
          if (timer) clearTimeout(timer);
        }
      };
      const done = loop();
      return async () => {
        stopping = true;
        wake?.();
        await done;
        // Leases of refreshes still running are completed by them; wait so none is cut off.
        await Promise.allSettled([...running]);
      };
    },

    /** Refreshes in progress in this process (for metrics and tests). */
    get inFlight(): number {
      return running.size;
    },
  };
}

export type RefreshWorker = ReturnType<typeof createRefreshWorker>;
