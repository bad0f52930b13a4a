import { isDatabaseUnavailable } from './availability.ts';

/**
 * Coalesces concurrent point reads into few queries (the DataLoader pattern, without a cache).
 *
 * A key asked for joins only a query that has not been sent yet, so every answer reflects the
 * database at or after the moment it was asked for: the same guarantee as a query of its own, and
 * a write committed before the request (a revocation) is always seen. While `maxInFlight` queries
 * are running, new keys wait and go together in the next one; so under load one round trip serves
 * many requests, and when idle a key waits only for the end of the current event-loop turn.
 */
export function coalescedReads<K, V>(
  fetch: (keys: K[]) => Promise<Map<K, V>>,
  options: { maxBatch: number; maxInFlight: number },
): (key: K) => Promise<V | undefined> {
  type Waiter = { resolve: (value: V | undefined) => void; reject: (error: unknown) => void };
  let queue = new Map<K, Waiter[]>();
  let inFlight = 0;
  let scheduled = false;

  async function send(batch: Map<K, Waiter[]>): Promise<void> {
    inFlight++;
    try {
      const found = await fetch([...batch.keys()]);
      for (const [key, waiters] of batch) for (const w of waiters) w.resolve(found.get(key));
    } catch (error) {
      // A database that is away fails every key alike: asking again key by key would only hold
      // each request for another timeout and queue that many queries on a pool that cannot serve them.
      if (batch.size === 1 || isDatabaseUnavailable(error)) {
        for (const waiters of batch.values()) for (const w of waiters) w.reject(error);
      } else {
        // One bad key must not fail its neighbours: ask again, one key per query.
        for (const [key, waiters] of batch) {
          fetch([key]).then(
            (found) => {
              for (const w of waiters) w.resolve(found.get(key));
            },
            (single) => {
              for (const w of waiters) w.reject(single);
            },
          );
        }
      }
    } finally {
      inFlight--;
      dispatch();
    }
  }

  function dispatch(): void {
    while (queue.size > 0 && inFlight < options.maxInFlight) {
      let batch: Map<K, Waiter[]>;
      if (queue.size <= options.maxBatch) {
        batch = queue;
        queue = new Map();
      } else {
        batch = new Map();
        for (const [key, waiters] of queue) {
          if (batch.size === options.maxBatch) break;
          batch.set(key, waiters);
          queue.delete(key);
        }
      }
      void send(batch);
    }
  }

  return (key) =>
    new Promise<V | undefined>((resolve, reject) => {
      const waiters = queue.get(key);
      if (waiters === undefined) queue.set(key, [{ resolve, reject }]);
      else waiters.push({ resolve, reject });
      if (!scheduled) {
        scheduled = true;
        // Let every request parsed in this turn of the event loop join before the first query.
        setImmediate(() => {
          scheduled = false;
          dispatch();
        });
      }
    });
}
