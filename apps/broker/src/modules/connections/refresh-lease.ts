import type { ConnectionsStore } from './connections.store.ts';

/** Milliseconds on a clock that never jumps (the lease checks must not follow wall-clock changes). */
export const monotonic = () => performance.now();

/**
 * Keeps the lease `leaseId` while a refresh runs, from before the provider call until its
 * outcome is stored: renewed every third of a lease, so a live holder never loses it to a
 * takeover; when a renewal finds it taken, `signal` aborts whatever is still running.
 */
export function keepLease(
  store: Pick<ConnectionsStore, 'renewLease'>,
  leaseMs: number,
  id: string,
  leaseId: string,
) {
  let confirmedAt = monotonic();
  const lost = new AbortController();
  const timer = setInterval(
    () => {
      const at = monotonic();
      store.renewLease(id, leaseId, leaseMs).then(
        (held) => {
          if (held) confirmedAt = Math.max(confirmedAt, at);
          else lost.abort(new Error('refresh lease taken over'));
        },
        // The database is unreachable: keep going; the send guard and fencing stay in force.
        () => {},
      );
    },
    Math.max(250, Math.floor(leaseMs / 3)),
  );
  timer.unref();
  return {
    signal: lost.signal,
    /** When the lease was last known to be ours and fresh (monotonic milliseconds). */
    get confirmedAt() {
      return confirmedAt;
    },
    confirm(at: number) {
      confirmedAt = Math.max(confirmedAt, at);
    },
    stop: () => clearInterval(timer),
  };
}
export type LeaseKeeper = ReturnType<typeof keepLease>;

/** How often a caller waiting for another holder's lease looks at the row again. */
export const POLL_MS = 50;
