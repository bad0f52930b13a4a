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

export type RateLimitBucket = 'request_connection' | 'callback' | 'token' | 'refresh' | 'capture';

/** Which routes count against which bucket (REST); gRPC calls name their bucket themselves. */
export const RATE_LIMITED_ROUTES: Readonly<Record<string, RateLimitBucket>> = {
  '/v1/request-connection': 'request_connection',
  '/auth/consent-spec': 'request_connection',
  '/auth/callback': 'callback',
  '/v1/token/:id': 'token',
  '/connections/:id/token': 'token',
  '/v1/resolve': 'token',
  '/connections/resolve': 'token',
  '/v1/refresh/:id': 'refresh',
  '/connections/:id/refresh': 'refresh',
  '/v1/capture-credential': 'capture',
  '/connect/capture': 'capture',
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

function memoryStore(now: () => number): CounterStore {
  const counts = new Map<string, { window: number; count: number }>();
  return {
    async hit(key, windowMs) {
      const window = Math.floor(now() / windowMs);
      const entry = counts.get(key);
      if (entry === undefined || entry.window !== window) {
        // Bounded: old windows are dropped once the map grows.
        if (counts.size > 50_000) for (const [k, v] of counts) if (v.window !== window) counts.delete(k);
        counts.set(key, { window, count: 1 });
        return 1;
      }
      entry.count += 1;
      return entry.count;
    },
    async close() {},
  };
}

function redisStore(url: string, now: () => number): CounterStore {
  let redis: { incr(key: string, ttlMs: number): Promise<number>; close(): Promise<unknown> } | undefined;
  let connecting: Promise<unknown> | undefined;
  // Loaded and connected on first use: processes that serve no limited route (and brokers without
  // Redis) never load the client library or open a connection.
  const connect = async () => {
    const { createClient } = await import('redis');
    const client = createClient({
      url,
      socket: { connectTimeout: 2_000, reconnectStrategy: (n: number) => Math.min(n * 100, 2_000) },
    });
    client.on('error', () => {}); // counted per request (fail open), never a crash
    redis = {
      async incr(key, ttlMs) {
        const [count] = (await client.multi().incr(key).pExpire(key, ttlMs).exec()) as unknown as [number];
        return Number(count);
      },
      close: () => client.close(),
    };
    await client.connect();
  };
  return {
    async hit(key, windowMs) {
      // A failed first connection is tried again after a pause (requests pass meanwhile).
      connecting ??= connect().catch(() => {
        redis = undefined;
        setTimeout(() => {
          connecting = undefined;
        }, 5_000).unref();
      });
      await connecting;
      if (redis === undefined) throw new Error('Redis is unavailable');
      return redis.incr(`nexus:rl:${key}:${Math.floor(now() / windowMs)}`, windowMs * 2);
    },
    async close() {
      await connecting;
      await redis?.close().catch(() => undefined);
    },
  };
}

export function clientKey(principal: Principal | undefined, ip: string): string {
  if (principal?.kind === 'agent') return `agent:${principal.agentId}`;
  if (principal?.kind === 'admin') return `admin:${principal.keyId}`;
  return `ip:${ip}`;
}

export function createRateLimiter(config: RateLimitConfig, now: () => number = Date.now) {
  const store = !config.enabled
    ? undefined
    : config.redisUrl !== undefined
      ? redisStore(config.redisUrl, now)
      : memoryStore(now);
  let storeFailures = 0;

  return {
    enabled: config.enabled,
    /**
     * Counts a call; throws 429 (`rate_limited`, Retry-After in details) when over the limit.
     * When Redis is unreachable the call is let through (failing open keeps tokens flowing) and
     * counted in `storeFailures` for /ready and the logs.
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
      if (count <= limit) return;
      const retryAfter = Math.max(1, Math.ceil((config.windowMs - (now() % config.windowMs)) / 1000));
      throw commonError('rate_limited', {
        message: `Too many ${bucket.replace('_', '-')} requests: at most ${limit} per ${config.windowMs / 1000} s. Retry after ${retryAfter} s.`,
        details: { bucket, limit, window_seconds: config.windowMs / 1000, retry_after_seconds: retryAfter },
      });
    },
    get storeFailures() {
      return storeFailures;
    },
    close: async () => store?.close(),
  };
}

export type RateLimiter = ReturnType<typeof createRateLimiter>;

/**
 * Adds the check to the REST routes of RATE_LIMITED_ROUTES: an onRequest hook installed after
 * authentication (which names the client), so a limited request is refused before its body is read.
 */
export function installRateLimits(app: FastifyInstance, limiter: RateLimiter): void {
  if (!limiter.enabled) return;
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
