import type { FastifyInstance, FastifyRequest } from 'fastify';
import { commonError } from '../errors/common.errors.ts';
import type { NexusError } from '../errors/nexus-error.ts';
import { sendError } from './error-handler.ts';
import type { Principal } from './types.ts';

/**
 * Rate limits on the public surface: a fixed window per bucket and client (the agent, else the
 * admin key, else the client address). Counters are in this process, or in Redis when REDIS_URL is
 * set so that replicas share them; windows are aligned on the clock, so every replica counts the
 * same window. A limited client is answered 429 with Retry-After and costs nothing else; other
 * clients are not affected.
 */

export type RateLimitBucket =
  | 'request_connection'
  | 'callback'
  | 'token'
  | 'refresh'
  | 'capture'
  | 'login'
  | 'auth_failure';

/** Which routes count against which bucket (REST); gRPC calls name their bucket themselves. */
export const RATE_LIMITED_ROUTES: Readonly<Record<string, RateLimitBucket>> = {
  '/v1/request-connection': 'request_connection',
  '/auth/consent-spec': 'request_connection',
  '/auth/callback': 'callback',
  '/v1/token/:id': 'token',
  // Each proxied call reads the credential like a token fetch.
  '/proxy/*': 'token',
  '/connections/:id/token': 'token',
  '/v1/resolve': 'token',
  '/connections/resolve': 'token',
  '/v1/refresh/:id': 'refresh',
  '/connections/:id/refresh': 'refresh',
  '/v1/capture-credential': 'capture',
  '/connect/capture': 'capture',
  // Agent logins (client secret or assertion checks), by client address.
  '/oauth/token': 'login',
};

export interface RateLimitConfig {
  readonly enabled: boolean;
  readonly windowMs: number;
  /** Requests per window, per client, for each bucket. */
  readonly limits: Readonly<Record<RateLimitBucket, number>>;
  readonly redisUrl: string | undefined;
}

interface CounterStore {
  /** Counts one hit; answers the count in this window so far. */
  hit(key: string, windowMs: number): Promise<number>;
  close(): Promise<void>;
}

function memoryStore(
  now: () => number,
): CounterStore & { peek(key: string, windowMs: number): Promise<number> } {
  // Counters of the current window only: a new window drops the whole previous map at once, so
  // the cost per request stays constant however many clients there were.
  let window = -1;
  let counts = new Map<string, number>();
  return {
    async hit(key, windowMs) {
      const current = Math.floor(now() / windowMs);
      if (current !== window) {
        window = current;
        counts = new Map();
      }
      const count = (counts.get(key) ?? 0) + 1;
      counts.set(key, count);
      return count;
    },
    async peek(key, windowMs) {
      return Math.floor(now() / windowMs) === window ? (counts.get(key) ?? 0) : 0;
    },
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

function redisStore(url: string, now: () => number, changed: (change: StoreChange) => void): CounterStore {
  interface Client {
    readonly isReady: boolean;
    incr(key: string, ttlMs: number): Promise<number>;
    destroy(): void;
  }
  let connecting: Promise<Client> | undefined;
  let lastError: unknown;
  // Loaded and connected on first use: processes that serve no limited route (and brokers without
  // Redis) never load the client library or open a connection. The first use waits for the
  // connection (at most REDIS_TIMEOUT_MS); the client keeps reconnecting in the background.
  const connect = async (): Promise<Client> => {
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
      async incr(key, ttlMs) {
        const [count] = (await client.multi().incr(key).pExpire(key, ttlMs).exec()) as unknown as [number];
        return Number(count);
      },
      destroy: () => client.destroy(),
    };
  };
  // Monotonic time for the retry pause: `now` is the windows' clock, which tests may hold still.
  let unavailable = false;
  let retryAt = 0;
  let probing = false;
  return {
    async hit(key, windowMs) {
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
        const counterKey = `nexus:rl:${key}:${Math.floor(now() / windowMs)}`;
        const count = await within(client.incr(counterKey, windowMs * 2), REDIS_TIMEOUT_MS);
        if (unavailable) {
          unavailable = false;
          changed({ available: true });
        }
        return count;
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
    },
    async close() {
      // destroy, not close: close() waits for pending commands, forever if Redis hangs.
      (await connecting)?.destroy();
    },
  };
}

export function clientKey(principal: Principal | undefined, ip: string): string {
  if (principal?.kind === 'agent') return `agent:${principal.agentId}`;
  if (principal?.kind === 'admin') return `admin:${principal.keyId}`;
  return `ip:${ip}`;
}

export function createRateLimiter(config: RateLimitConfig, now: () => number = Date.now) {
  const listeners = new Set<(change: StoreChange) => void>();
  const store = !config.enabled
    ? undefined
    : config.redisUrl !== undefined
      ? redisStore(config.redisUrl, now, (change) => {
          for (const listener of listeners) listener(change);
        })
      : memoryStore(now);
  let storeFailures = 0;
  const failures = config.enabled ? memoryStore(now) : undefined;
  const limited = (bucket: RateLimitBucket, limit: number) => {
    const retryAfter = Math.max(1, Math.ceil((config.windowMs - (now() % config.windowMs)) / 1000));
    const what =
      bucket === 'auth_failure' ? 'failed authentications' : `${bucket.replace('_', '-')} requests`;
    return commonError('rate_limited', {
      message: `Too many ${what}: at most ${limit} per ${config.windowMs / 1000} s. Retry after ${retryAfter} s.`,
      details: { bucket, limit, window_seconds: config.windowMs / 1000, retry_after_seconds: retryAfter },
    });
  };

  return {
    enabled: config.enabled,
    /**
     * Counts a call; throws 429 (`rate_limited`, Retry-After in details) when over the limit.
     * When Redis is unreachable the call is let through (failing open keeps tokens flowing) and
     * counted in `storeFailures`.
     */
    async check(bucket: RateLimitBucket, client: string): Promise<void> {
      if (store === undefined) return;
      let count: number;
      try {
        count = await store.hit(`${bucket}:${client}`, config.windowMs);
      } catch {
        storeFailures += 1;
        return;
      }
      const limit = config.limits[bucket];
      if (count > limit) throw limited(bucket, limit);
    },
    /**
     * Counts an authentication failure. These counters stay in this process even with Redis:
     * checking them is on every request's path, where a Redis round trip would cost every caller.
     */
    async recordFailure(client: string): Promise<void> {
      if (failures !== undefined) await failures.hit(`auth_failure:${client}`, config.windowMs);
    },
    /** Throws 429 when `client` already failed authentication too often in this window. */
    async refuseIfFailing(client: string): Promise<void> {
      if (failures === undefined) return;
      const count = await failures.peek(`auth_failure:${client}`, config.windowMs);
      if (count >= config.limits.auth_failure) throw limited('auth_failure', config.limits.auth_failure);
    },
    get storeFailures() {
      return storeFailures;
    },
    /** Calls `listener` when Redis stops answering and when it answers again; returns the unsubscribe. */
    onStoreChange(listener: (change: StoreChange) => void): () => void {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close: async () => store?.close(),
  };
}

export type RateLimiter = ReturnType<typeof createRateLimiter>;

/**
 * Guessing credentials: a client address whose requests were refused as unauthenticated (401)
 * too often in the window gets 429 before its next credential is even looked at. Installed before
 * authentication; the 401s are counted as they are sent, per process.
 */
export function installAuthFailureLimit(app: FastifyInstance, limiter: RateLimiter): void {
  if (!limiter.enabled) return;
  app.addHook('onRequest', async (request, reply) => {
    try {
      await limiter.refuseIfFailing(`ip:${request.ip}`);
    } catch (error) {
      const e = error as NexusError;
      const seconds = (e.details as { retry_after_seconds?: number } | undefined)?.retry_after_seconds;
      if (seconds !== undefined) reply.header('retry-after', String(seconds));
      return sendError(request, reply, e);
    }
  });
  app.addHook('onResponse', async (request, reply) => {
    if (reply.statusCode === 401) await limiter.recordFailure(`ip:${request.ip}`);
  });
}

/**
 * Adds the check to the REST routes of RATE_LIMITED_ROUTES: an onRequest hook installed after
 * authentication (which names the client), so a limited request is refused before its body is read.
 */
export function installRateLimits(app: FastifyInstance, limiter: RateLimiter): void {
  if (!limiter.enabled) return;
  // The metric counts the requests let through; the log says when that started and ended.
  let failuresBefore = 0;
  const unsubscribe = limiter.onStoreChange((change) => {
    if (!change.available) {
      failuresBefore = limiter.storeFailures;
      const e = change.error as { code?: string; message?: string } | undefined;
      app.log.warn(
        { reason: String(e?.code ?? e?.message ?? change.error).slice(0, 200) },
        'rate-limit store (Redis) unavailable: limited requests are let through uncounted until it answers again',
      );
    } else
      app.log.info(
        { let_through: limiter.storeFailures - failuresBefore },
        'rate-limit store (Redis) answers again: limits are enforced',
      );
  });
  app.addHook('onClose', async () => {
    unsubscribe();
  });
  app.addHook('onRequest', async (request: FastifyRequest, reply) => {
    const bucket = request.is404 ? undefined : RATE_LIMITED_ROUTES[request.routeOptions.url ?? ''];
    if (bucket === undefined) return;
    try {
      await limiter.check(bucket, clientKey(request.principal, request.ip));
    } catch (error) {
      const e = error as NexusError;
      const seconds = (e.details as { retry_after_seconds?: number } | undefined)?.retry_after_seconds;
      if (seconds !== undefined) reply.header('retry-after', String(seconds));
      return sendError(request, reply, e);
    }
  });
}
