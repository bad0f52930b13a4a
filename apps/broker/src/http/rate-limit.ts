import type { FastifyInstance, FastifyRequest } from 'fastify';
import { createClient } from 'redis';
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
  const client = createClient({
    url,
    socket: { connectTimeout: 2_000, reconnectStrategy: (n) => Math.min(n * 100, 2_000) },
  });
  client.on('error', () => {}); // counted per request (fail open), never a crash
  let connecting: Promise<unknown> | undefined;
  return {
    async hit(key, windowMs) {
      // Connected on first use: processes that serve no limited route never open a connection.
      connecting ??= client.connect().catch(() => undefined);
      await connecting;
      const window = Math.floor(now() / windowMs);
      const k = `nexus:rl:${key}:${window}`;
      const [count] = (await client
        .multi()
        .incr(k)
        .pExpire(k, windowMs * 2)
        .exec()) as unknown as [number];
      return Number(count);
    },
    async close() {
      if (connecting !== undefined) await client.close().catch(() => undefined);
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
