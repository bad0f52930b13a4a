import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Principal } from '../auth/principal.ts';
import { commonError } from '../errors/common.errors.ts';
import type { NexusError } from '../errors/nexus-error.ts';
import { addressKey } from './client-address.ts';
import { type CredentialFamily, LOGIN_ROUTES } from './credential-family.ts';
import { sendError } from './error-handler.ts';
import { quickHook } from './quick-hook.ts';
import { type CounterStore, memoryStore, redisStore, type StoreChange } from './rate-limit-store.ts';

export type { StoreChange } from './rate-limit-store.ts';

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

/**
 * Which routes count against which bucket (REST); gRPC calls name their bucket themselves, and so
 * does a route whose path is configured (the OAuth callback, `config.rateLimit`).
 */
export const RATE_LIMITED_ROUTES: Readonly<Record<string, RateLimitBucket>> = {
  '/v1/request-connection': 'request_connection',
  '/auth/consent-spec': 'request_connection',
  '/v1/connect-sessions': 'request_connection',
  // Each pick starts a consent flow, like request-connection (per client address: it is public).
  '/connect/session/pick': 'request_connection',
  '/connect/session/cancel': 'request_connection',
  '/v1/token/:id': 'token',
  // Each proxied call reads the credential like a token fetch.
  '/proxy/*': 'token',
  '/mcp-gateway/:route': 'token',
  '/connections/:id/token': 'token',
  '/v1/resolve': 'token',
  '/connections/resolve': 'token',
  '/v1/refresh/:id': 'refresh',
  '/connections/:id/refresh': 'refresh',
  '/admin/v1/connections/:id/refresh': 'refresh',
  '/v1/capture-credential': 'capture',
  '/auth/capture-credential': 'capture',
  '/connect/capture': 'capture',
  '/connect/capture/cancel': 'capture',
  // Agent logins (client secret or assertion checks), per client address and credential family.
  '/oauth/token': 'login',
};

export interface RateLimitConfig {
  readonly enabled: boolean;
  readonly windowMs: number;
  /** Requests per window, per client, for each bucket. */
  readonly limits: Readonly<Record<RateLimitBucket, number>>;
  readonly redisUrl: string | undefined;
}

/** Who a request counts as: its agent, its admin key, or else its address (an IPv6 one by its /64). */
export function clientKey(principal: Principal | undefined, ip: string): string {
  if (principal?.kind === 'agent') return `agent:${principal.agentId}`;
  if (principal?.kind === 'admin') return `admin:${principal.keyId}`;
  return `ip:${addressKey(ip)}`;
}

/**
 * Failed authentications (answers 401) are counted per client address and credential family
 * (http/credential-family.ts), and per address over the families not known to be good. A family
 * that authenticated in the last day is known to be good and is never refused for failures: only
 * the key itself makes it so, and a valid key must not be refused because others at its address
 * (behind one load balancer) keep failing. Past the per-address limit (this many times the
 * per-family one) every family not known to be good is refused at that address: that stops an
 * attacker cycling made-up keys, each of which is a family of its own.
 */
export const ADDRESS_FAILURE_FACTOR = 10;
const KNOWN_GOOD_MS = 24 * 3600_000;
/** How often a process writes again to Redis that a family it keeps seeing is good. */
const RESHARE_MS = 10 * 60_000;
/** Families this process remembers as good (the oldest is forgotten first; Redis remembers all). */
const KNOWN_GOOD_MAX = 10_000;

/** Families that can be known to be good: keys that authenticated. Env keys are recognised as such. */
const markable = (family: CredentialFamily) =>
  family !== 'other' && family !== 'none' && !family.startsWith('env:');

export function createRateLimiter(config: RateLimitConfig, now: () => number = Date.now) {
  const listeners = new Set<(change: StoreChange) => void>();
  const store: CounterStore | undefined = !config.enabled
    ? undefined
    : config.redisUrl !== undefined
      ? redisStore(config.redisUrl, now, (change) => {
          for (const listener of listeners) listener(change);
        })
      : memoryStore(now);
  let storeFailures = 0;
  const limited = (bucket: RateLimitBucket, limit: number, per = '') => {
    const retryAfter = Math.max(1, Math.ceil((config.windowMs - (now() % config.windowMs)) / 1000));
    const what =
      bucket === 'auth_failure' ? 'failed authentications' : `${bucket.replace('_', '-')} requests`;
    return commonError('rate_limited', {
      message: `Too many ${what}${per}: at most ${limit} per ${config.windowMs / 1000} s. Retry after ${retryAfter} s.`,
      details: { bucket, limit, window_seconds: config.windowMs / 1000, retry_after_seconds: retryAfter },
    });
  };

  // In front of the store (and the only copy without Redis): a family seen good here costs no
  // round trip to Redis, so the failure limit adds nothing to a valid caller's requests.
  const knownGood = new Map<CredentialFamily, { until: number; sharedAt: number }>();
  const isKnownGood = (family: CredentialFamily): boolean => {
    const entry = knownGood.get(family);
    if (entry === undefined) return false;
    if (entry.until > now()) return true;
    knownGood.delete(family);
    return false;
  };
  const remember = (family: CredentialFamily, sharedAt: number) => {
    knownGood.delete(family);
    if (knownGood.size >= KNOWN_GOOD_MAX) knownGood.delete(knownGood.keys().next().value!);
    knownGood.set(family, { until: now() + KNOWN_GOOD_MS, sharedAt });
  };
  const failureKeys = (ip: string, family: CredentialFamily) => {
    const address = addressKey(ip);
    return [`auth_failure:${address}|${family}`, `auth_failure:${address}`];
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
        [count] = (await store.hit([`${bucket}:${client}`], config.windowMs)) as [number];
      } catch {
        storeFailures += 1;
        return;
      }
      const limit = config.limits[bucket];
      if (count > limit) throw limited(bucket, limit);
    },
    /**
     * Throws 429 when `family` failed too often at `address` in this window, or when `address`
     * did with families not known to be good, unless `family` is known to be good. Fails open.
     */
    async refuseIfFailing(address: string, family: CredentialFamily): Promise<void> {
      if (store === undefined || family.startsWith('env:') || isKnownGood(family)) return;
      let read: { counts: number[]; marked: boolean };
      try {
        read = await store.read(
          failureKeys(address, family),
          markable(family) ? family : undefined,
          config.windowMs,
        );
      } catch {
        storeFailures += 1;
        return;
      }
      // Good according to another replica.
      if (read.marked) return remember(family, now());
      const limit = config.limits.auth_failure;
      if (read.counts[0]! >= limit) throw limited('auth_failure', limit);
      const total = limit * ADDRESS_FAILURE_FACTOR;
      if (read.counts[1]! >= total) throw limited('auth_failure', total, ' from this address');
    },
    /** Counts a failed authentication of `family` at `address` (in the store: shared with Redis). */
    async recordFailure(address: string, family: CredentialFamily): Promise<void> {
      if (store === undefined || family.startsWith('env:')) return;
      const [perFamily, perAddress] = failureKeys(address, family);
      try {
        await store.hit(isKnownGood(family) ? [perFamily!] : [perFamily!, perAddress!], config.windowMs);
      } catch {
        storeFailures += 1;
      }
    },
    /** `family` authenticated: known to be good for a day, here at once and in Redis (at most every 10 min). */
    async recordSuccess(family: CredentialFamily): Promise<void> {
      if (store === undefined || !markable(family)) return;
      const t = now();
      const entry = knownGood.get(family);
      if (entry !== undefined && entry.until > t && entry.sharedAt > t - RESHARE_MS) {
        entry.until = t + KNOWN_GOOD_MS;
        return;
      }
      remember(family, t);
      try {
        await store.setMark(family, KNOWN_GOOD_MS);
      } catch {
        storeFailures += 1;
      }
    },
    /** Opens the connection to Redis now (see CounterStore.warm); nothing without Redis. */
    warm: () => store?.warm(),
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

/** Answers 429 with Retry-After (the error's `details.retry_after_seconds`). */
export function replyLimited(request: FastifyRequest, reply: FastifyReply, error: unknown) {
  const e = error as NexusError;
  const seconds = (e.details as { retry_after_seconds?: number } | undefined)?.retry_after_seconds;
  if (seconds !== undefined) reply.header('retry-after', String(seconds));
  return sendError(request, reply, e);
}

/**
 * Adds the check to the REST routes of RATE_LIMITED_ROUTES: an onRequest hook installed after
 * authentication (which names the client), so a limited request is refused before its body is
 * read. Logins are limited with failed authentications (auth-failures.ts), once their body is parsed.
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
  app.addHook(
    'onRequest',
    quickHook((request, reply) => {
      const url = request.routeOptions.url ?? '';
      const bucket =
        request.is404 || LOGIN_ROUTES.has(url)
          ? undefined
          : (request.routeOptions.config.rateLimit ?? RATE_LIMITED_ROUTES[url]);
      if (bucket === undefined) return undefined;
      return limiter
        .check(bucket, clientKey(request.principal, request.ip))
        .catch((error: unknown) => replyLimited(request, reply, error));
    }),
  );
}
