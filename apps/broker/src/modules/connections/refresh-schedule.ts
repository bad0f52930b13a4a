/**
 * When an OAuth connection should next be refreshed by the background worker.
 *
 * - After a successful grant or refresh: `margin` before the access token expires, minus a random
 *   share of `jitter`, so tokens issued in the same second are not all refreshed in the same second.
 * - After a transient failure: exponential backoff (30 s doubling, at most 1 h) with ±20 % jitter,
 *   never earlier than the provider's `Retry-After`.
 */
export interface RefreshSchedule {
  dueAt(accessExpiresAt: number | null): number | null;
  retryAt(failures: number, now: number, retryAfterMs?: number): number;
}

const BACKOFF_BASE_MS = 30_000;
const BACKOFF_MAX_MS = 3_600_000;

export function createRefreshSchedule(options: {
  marginMs: number;
  jitterMs: number;
  random?: () => number;
}): RefreshSchedule {
  const random = options.random ?? Math.random;
  return {
    dueAt(expiresAt) {
      if (expiresAt === null) return null;
      return expiresAt - options.marginMs - Math.floor(random() * options.jitterMs);
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
