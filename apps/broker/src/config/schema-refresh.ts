import * as z from 'zod';

/** Background refresh variables (the refresh worker and the refresh lease, decisions 0006, 0012), part of `envSchema`. */
export const refreshEnv = {
  NEXUS_REFRESH_MARGIN_SECONDS: z.coerce
    .number()
    .int()
    .min(1)
    .max(86400)
    .default(300)
    .describe(
      "The background worker refreshes an OAuth connection this long before its access token expires, but never more than 40 % of the token's lifetime before: a token is refreshed at most about once per half its lifetime, whatever its lifetime (decision 0012).",
    ),
  NEXUS_REFRESH_JITTER_SECONDS: z.coerce
    .number()
    .int()
    .min(0)
    .max(3600)
    .default(60)
    .describe(
      "Up to this much earlier again (at most 10 % of the token's lifetime), chosen at random per token, so tokens issued together are not all refreshed in the same second.",
    ),
  NEXUS_REFRESH_CONCURRENCY: z.coerce
    .number()
    .int()
    .min(1)
    .max(256)
    .default(32)
    .describe('Refreshes one worker process runs at once.'),
  NEXUS_REFRESH_PROVIDER_CONCURRENCY: z.coerce
    .number()
    .int()
    .min(1)
    .max(256)
    .default(16)
    .describe(
      'Refreshes one worker process runs at once against the same provider, so a slow provider cannot take every slot.',
    ),
  NEXUS_REFRESH_LEASE_SECONDS: z.coerce
    .number()
    .int()
    .min(2)
    .max(600)
    .default(45)
    .describe(
      'How long a refresh lease lasts (timed by the database clock). The holder renews it while its provider call runs; a replica that dies holding one is replaced after this, or after twice this when it died with a provider call in flight. At least `NEXUS_UPSTREAM_TIMEOUT_SECONDS` + 2.',
    ),
  NEXUS_REFRESH_READ_WAIT_MS: z.coerce
    .number()
    .int()
    .min(100)
    .max(120_000)
    .default(2000)
    .describe(
      "A token read (`GET /v1/token/{id}`) in the last part of a token's life refreshes it first, and waits at most this long for that refresh while the token still works; then it is served the token it has, and the refresh goes on (a provider that hangs does not hold reads for `NEXUS_UPSTREAM_TIMEOUT_SECONDS`, by which time the token may have expired). A read of an expired token always waits for its refresh.",
    ),
  NEXUS_REFRESH_GIVE_UP_HOURS: z.coerce
    .number()
    .int()
    .min(1)
    .max(8760)
    .default(168)
    .describe(
      'A connection whose refresh keeps failing (with its access token expired), or that stays `attention_required`, this long becomes `expired`.',
    ),
  NEXUS_WORKER_POLL_MS: z.coerce
    .number()
    .int()
    .min(50)
    .max(60000)
    .default(1000)
    .describe('How often an idle worker looks for due refreshes and webhook deliveries.'),
};
