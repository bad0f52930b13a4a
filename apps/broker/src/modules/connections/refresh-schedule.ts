/**
 * When an OAuth connection may and should be refreshed (decision 0012). Every bound here scales
 * with the access token's lifetime L, so no configuration and no provider answer can make a
 * connection refresh in a loop:
 *
 * - The background worker refreshes at `expiry − margin − jitter`, with the margin capped at 40 %
 *   of L and the jitter at 10 %: never before half the lifetime has passed, never after expiry.
 * - The read path refreshes only a token within `readSkewMs(L)` of expiry (L/4, at most 30 s), so
 *   the worker, which starts earlier, normally gets there first.
 * - Two attempts on one connection are at least `minIntervalMs(L)` apart (L/2, at least 500 ms),
 *   whichever process makes them.
 * - An answer that does not extend the token (`expires_in: 0`, an expired token, the same expiry
 *   again) counts as a failure: the next attempt backs off.
 * - After a failure: exponential backoff (30 s doubling, at most 1 h) with ±20 % jitter, never
 *   earlier than the provider's `Retry-After`. Reads of an expired token may retry sooner, but
 *   not more often than `failingRetryMs` (15 s doubling, at most 5 min) per connection.
 *
 * A token without `expires_in` is treated as not expiring: it is never refreshed by the worker or
 * by a read, only by an explicit `POST /v1/refresh/{id}` (which the credential proxy makes after
 * an upstream 401).
 */
export interface RefreshSchedule {
  /** The worker's next refresh of a token obtained at `issuedAt`; null when it does not expire. */
  dueAt(issuedAt: number, expiresAt: number | null): number | null;
  retryAt(failures: number, now: number, retryAfterMs?: number): number;
}

const BACKOFF_BASE_MS = 30_000;
const BACKOFF_MAX_MS = 3_600_000;
/** Share of the lifetime the margin, and the jitter, may take at most. */
const MARGIN_SHARE = 0.4;
const JITTER_SHARE = 0.1;
/** The read path's expiry skew: a quarter of the lifetime, at most this. */
const READ_SKEW_MAX_MS = 30_000;
/** The floor between two refresh attempts on one connection, whatever the lifetime. */
const MIN_INTERVAL_MS = 500;
/** While a connection's refresh is failing, reads of its expired token retry at most this often… */
const FAILING_RETRY_MS = 15_000;
/** …doubling with each failure up to this. */
const FAILING_RETRY_MAX_MS = 300_000;

/**
 * How long after a failed attempt a read of a connection whose token has expired may try again:
 * 15 s after the first failure, doubling up to 5 min. The worker keeps its own, longer backoff;
 * this one bounds what agents insisting on a dead token can cause, whatever their number.
 */
export function failingRetryMs(failures: number): number {
  return Math.min(FAILING_RETRY_MAX_MS, FAILING_RETRY_MS * 2 ** Math.max(0, failures - 1));
}

/** The lifetime of a token obtained at `issuedAt` and expiring at `expiresAt` (≤ 0: born expired). */
export function lifetimeMs(issuedAt: number, expiresAt: number): number {
  return expiresAt - issuedAt;
}

/** How long before expiry a read refreshes the token itself. */
export function readSkewMs(lifetime: number): number {
  return Math.max(0, Math.min(READ_SKEW_MAX_MS, Math.floor(lifetime / 4)));
}

/** The least time between two refresh attempts on a connection whose token lives `lifetime`. */
export function minIntervalMs(lifetime: number): number {
  return Math.max(MIN_INTERVAL_MS, Math.floor(lifetime / 2));
}

/** Whole-second `expires_in` values make expiries this imprecise. */
const ROUNDING_MS = 1_000;

/**
 * Whether a refresh answer at `now` gives a token worth scheduling from: one that lives at all,
 * and whose expiry moved on by at least half the time since the token it replaces was obtained. A
 * provider answering with the same expiry again (a capped session, a cached token) does not
 * qualify, so its connection backs off instead of refreshing at ever shorter intervals.
 */
export function extendsToken(
  now: number,
  expiresAt: number | null,
  previous: { issuedAt: number | null; expiresAt: number | null },
): boolean {
  if (expiresAt === null) return true;
  if (lifetimeMs(now, expiresAt) <= 0) return false;
  if (previous.expiresAt === null || previous.issuedAt === null) return true;
  return expiresAt - previous.expiresAt >= (now - previous.issuedAt) / 2 - ROUNDING_MS;
}

export function createRefreshSchedule(options: {
  marginMs: number;
  jitterMs: number;
  random?: () => number;
}): RefreshSchedule {
  const random = options.random ?? Math.random;
  return {
    dueAt(issuedAt, expiresAt) {
      if (expiresAt === null) return null;
      const lifetime = Math.max(0, lifetimeMs(issuedAt, expiresAt));
      const margin = Math.min(options.marginMs, Math.floor(lifetime * MARGIN_SHARE));
      const jitter = Math.min(options.jitterMs, Math.floor(lifetime * JITTER_SHARE));
      return expiresAt - margin - Math.floor(random() * jitter);
    },
    retryAt(failures, now, retryAfterMs) {
      const exp = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.max(0, failures - 1));
      const jittered = Math.floor(exp * (0.8 + 0.4 * random()));
      return now + Math.min(BACKOFF_MAX_MS, Math.max(jittered, retryAfterMs ?? 0));
    },
  };
}

/** The default policy (5 min margin, 1 min jitter), for code paths built without configuration. */
export const defaultRefreshSchedule = createRefreshSchedule({ marginMs: 300_000, jitterMs: 60_000 });

/** `Retry-After` (seconds or an HTTP date) of a failed provider answer, in milliseconds from `now`. */
export function retryAfterMs(headers: Headers | undefined, now: number): number | undefined {
  const value = headers?.get('retry-after');
  if (value === null || value === undefined) return undefined;
  if (/^\d{1,7}$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
