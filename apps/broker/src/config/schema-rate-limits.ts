import * as z from 'zod';
import { bool } from './env-types.ts';

/** Rate-limit variables (http/rate-limit.ts), part of `envSchema`. */
export const rateLimitEnv = {
  RATE_LIMIT_ENABLED: bool
    .default(true)
    .describe(
      'Rate limits per client (agent, else admin key, else client address; an IPv6 address counts as its /64 network, which one host usually holds whole) on request-connection, the OAuth callback, token reads, refreshes and credential capture. Counters in memory, or in Redis when `REDIS_URL` is set (shared by replicas). 429 with Retry-After over the limit.',
    ),
  RATE_LIMIT_WINDOW_SECONDS: z.coerce
    .number()
    .int()
    .min(1)
    .max(3600)
    .default(60)
    .describe(
      'Length of the fixed, clock-aligned counting window. The `*_RPM` limits are per minute; a shorter window allows the proportional share (at least 1).',
    ),
  RATE_LIMIT_REQUEST_CONNECTION_RPM: z.coerce
    .number()
    .int()
    .min(1)
    .max(1_000_000)
    .default(60)
    .describe('Connection requests (`/v1/request-connection`, `/auth/consent-spec`) per client per minute.'),
  RATE_LIMIT_CALLBACK_RPM: z.coerce
    .number()
    .int()
    .min(1)
    .max(1_000_000)
    .default(120)
    .describe('OAuth callbacks (`/auth/callback`) per client address per minute.'),
  RATE_LIMIT_TOKEN_RPM: z.coerce
    .number()
    .int()
    .min(1)
    .max(10_000_000)
    .default(6000)
    .describe(
      'Token reads (`/v1/token/{id}`, `/v1/resolve` and their admin forms, gRPC GetToken) per client per minute.',
    ),
  RATE_LIMIT_REFRESH_RPM: z.coerce
    .number()
    .int()
    .min(1)
    .max(1_000_000)
    .default(120)
    .describe('Forced refreshes (`/v1/refresh/{id}`, gRPC RefreshConnection) per client per minute.'),
  RATE_LIMIT_CAPTURE_RPM: z.coerce
    .number()
    .int()
    .min(1)
    .max(1_000_000)
    .default(30)
    .describe(
      'Credential captures (`/v1/capture-credential`, the hosted form) per client address per minute.',
    ),
  RATE_LIMIT_LOGIN_RPM: z.coerce
    .number()
    .int()
    .min(1)
    .max(1_000_000)
    .default(60)
    .describe(
      'Agent logins (`/oauth/token`) per minute per client address and agent credential (client id with its secret id, or assertion issuer with its `kid`).',
    ),
  RATE_LIMIT_AUTH_FAILURES_RPM: z.coerce
    .number()
    .int()
    .min(1)
    .max(1_000_000)
    .default(30)
    .describe(
      'Refused credentials (answers 401, and gRPC UNAUTHENTICATED) per minute per client address and credential (an admin key id, an agent, a client id and secret id at `/oauth/token`, or all unrecognised strings together); past it that credential gets 429 at that address before it is checked. An address also gets 429 for every credential not seen working in the last day after 10 times this many refusals. A credential that worked in the last day (or a key of `API_KEYS`) is never refused for failures. Public routes (`/health`, `/ready`) are never limited. Shared through Redis when `REDIS_URL` is set.',
    ),
};
