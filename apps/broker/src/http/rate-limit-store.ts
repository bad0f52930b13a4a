/**
 * Where the rate limiter keeps its counters: in this process, or in Redis so that replicas share
 * them. Counters live in fixed windows aligned on the clock (every replica counts the same window).
 * Marks are flags with a lifetime (a credential family that authenticated recently); the memory
 * store has none, because the limiter keeps its own copy of the marks in memory anyway.
 */

export interface CounterStore {
  /** Counts one hit on each key in the current window; answers each key's count so far. */
  hit(keys: readonly string[], windowMs: number): Promise<number[]>;
  /** Each key's count in the current window, without counting; and whether `mark` is set. */
  read(
    keys: readonly string[],
    mark: string | undefined,
    windowMs: number,
  ): Promise<{ counts: number[]; marked: boolean }>;
  /** Sets `mark` for `ttlMs`. */
  setMark(mark: string, ttlMs: number): Promise<void>;
  /** Opens the store's connection now, if it has one, instead of on first use. */
  warm(): void;
  close(): Promise<void>;
}

export function memoryStore(now: () => number): CounterStore {
  // Counters of the current window only: a new window drops the whole previous map at once, so
  // the cost per request stays constant however many clients there were.
  let window = -1;
  let counts = new Map<string, number>();
  const current = (windowMs: number) => {
    const w = Math.floor(now() / windowMs);
    if (w !== window) {
      window = w;
      counts = new Map();
    }
  };
  return {
    async hit(keys, windowMs) {
      current(windowMs);
      return keys.map((key) => {
        const count = (counts.get(key) ?? 0) + 1;
        counts.set(key, count);
        return count;
      });
    },
    async read(keys, _mark, windowMs) {
      current(windowMs);
      return { counts: keys.map((key) => counts.get(key) ?? 0), marked: false };
    },
    async setMark() {},
    warm() {},
    async close() {},
  };
}

/** How long a request waits for Redis before it is let through uncounted. */
const REDIS_TIMEOUT_MS = 500;
/**
 * After a failure, how long requests are let through without asking Redis at all; then one request
 * asks again while the others are still let through, until it has its answer. Without this a hung
 * Redis (a network partition: the connection stays open and nothing answers) would cost every
 * request the whole REDIS_TIMEOUT_MS, and leave its command queued in the client.
 */
const REDIS_RETRY_MS = 1_000;

const within = <T>(promise: Promise<T>, ms: number): Promise<T> =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('Redis did not answer in time')), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });

/** The counter store changed state: unreachable (with the first failure), or answering again. */
export type StoreChange =
  | { readonly available: false; readonly error: unknown }
  | { readonly available: true };

interface RedisCommands {
  readonly isReady: boolean;
  incr(keys: readonly string[], ttlMs: number): Promise<number[]>;
  mGet(keys: readonly string[]): Promise<(string | null)[]>;
  setPx(key: string, ttlMs: number): Promise<void>;
  destroy(): void;
}

export function redisStore(
  url: string,
  now: () => number,
  changed: (change: StoreChange) => void,
): CounterStore {
  let connecting: Promise<RedisCommands> | undefined;
  let lastError: unknown;
  // Loaded and connected by `warm` (a serving broker, once it is ready) or on first use: other
  // processes (and brokers without Redis) never load the client library or open a connection. The
  // first use waits for the connection (at most REDIS_TIMEOUT_MS); the client keeps reconnecting
  // in the background.
  const connect = async (): Promise<RedisCommands> => {
    const { createClient } = await import('redis');
    const client = createClient({
      url,
      disableOfflineQueue: true,
      socket: { connectTimeout: 2_000, reconnectStrategy: (n: number) => Math.min(n * 100, 2_000) },
    });
    // The socket's errors (refused, reset) name the cause when a command finds it disconnected.
    client.on('error', (error: unknown) => {
      lastError = error;
    });
    const ready = client.connect();
    ready.catch(() => {});
    await within(ready, REDIS_TIMEOUT_MS).catch(() => {});
    return {
      get isReady() {
        return client.isReady;
      },
      async incr(keys, ttlMs) {
        const multi = client.multi();
        for (const key of keys) multi.incr(key).pExpire(key, ttlMs);
        const replies = (await multi.exec()) as unknown as unknown[];
        return keys.map((_, i) => Number(replies[i * 2]));
      },
      mGet: (keys) => client.mGet([...keys]) as Promise<(string | null)[]>,
      async setPx(key, ttlMs) {
        await client.set(key, '1', { expiration: { type: 'PX', value: ttlMs } });
      },
      destroy: () => client.destroy(),
    };
  };
  // Monotonic time for the retry pause: `now` is the windows' clock, which tests may hold still.
  let unavailable = false;
  let retryAt = 0;
  let probing = false;
  /** One exchange with Redis, failing fast while it is known to be away (see REDIS_RETRY_MS). */
  async function run<T>(exchange: (client: RedisCommands) => Promise<T>): Promise<T> {
    const probe = unavailable;
    if (probe) {
      if (probing || performance.now() < retryAt) throw new Error('Redis failed a moment ago');
      probing = true;
    }
    try {
      connecting ??= connect();
      const client = await connecting;
      // MULTI is queued even with disableOfflineQueue (node-redis queues transactions while it
      // reconnects): refuse it here, so that a request never waits on a connection that is not there.
      if (!client.isReady) throw lastError ?? new Error('Redis is not connected');
      const result = await within(exchange(client), REDIS_TIMEOUT_MS);
      if (unavailable) {
        unavailable = false;
        changed({ available: true });
      }
      return result;
    } catch (error) {
      retryAt = performance.now() + REDIS_RETRY_MS;
      if (!unavailable) {
        unavailable = true;
        changed({ available: false, error });
      }
      throw error;
    } finally {
      if (probe) probing = false;
    }
  }
  const counter = (key: string, windowMs: number) => `nexus:rl:${key}:${Math.floor(now() / windowMs)}`;
  return {
    hit: (keys, windowMs) =>
      run((client) =>
        client.incr(
          keys.map((key) => counter(key, windowMs)),
          windowMs * 2,
        ),
      ),
    read: (keys, mark, windowMs) =>
      run(async (client) => {
        const names = keys.map((key) => counter(key, windowMs));
        if (mark !== undefined) names.push(`nexus:ok:${mark}`);
        const values = await client.mGet(names);
        return {
          counts: keys.map((_, i) => Number(values[i] ?? 0)),
          marked: mark !== undefined && values[keys.length] !== null,
        };
      }),
    setMark: (mark, ttlMs) => run((client) => client.setPx(`nexus:ok:${mark}`, ttlMs)),
    warm() {
      // Without it the first limited request after a start waited for the connection, and a
      // connection slower than REDIS_TIMEOUT_MS let the first requests through uncounted.
      if (connecting !== undefined) return;
      connecting = connect();
      connecting.catch(() => {}); // a client library that fails to load is reported on first use
    },
    async close() {
      // destroy, not close: close() waits for pending commands, forever if Redis hangs.
      (await connecting)?.destroy();
    },
  };
}
