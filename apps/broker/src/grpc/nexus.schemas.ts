import * as z from 'zod';
import { commonError } from '../errors/common.errors.ts';
import { unstorablePath, unstorableRefused } from '../http/unstorable-text.ts';
import { revocationReason } from '../modules/connections/connection-status.ts';
import { requestAction } from '../modules/consent/request-action.schema.ts';

/**
 * Edge validation of NexusService requests, with the bounds of the REST route schemas
 * (connections, consent and sessions routes): proto3 types say "string", these say which strings.
 * Absent proto3 fields arrive as undefined (the loader keeps no defaults).
 */
const uuid = z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, 'a UUID');
const oauthScope = z
  .string()
  .min(1)
  .max(256)
  .regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/);
const sessionScope = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/, 'a scope is printable ASCII without spaces, quotes or backslashes');
const providerRef = z.string().min(1).max(64);

export const connectionIdRequest = z.object({ connection_id: uuid });
export const sessionIdRequest = z.object({ session_id: uuid });

/** proto3 cannot tell "" from unset, and some encoders send "": both mean absent, as in Go. */
const unlessEmpty = <T extends z.ZodType>(schema: T) =>
  z.preprocess((v) => (v === '' ? undefined : v), schema.optional());

/**
 * The original gateway's RequestConnection: `provider_id` when it is set, else `provider_name`
 * (proto3 does not send empty strings, so "set" is "present"); `scopes` empty means the
 * provider's default scopes; `action` is accepted and, as in the original, changes nothing (the
 * audit event of the request records it).
 */
export const requestConnectionRequest = z
  .object({
    user_id: z.string().trim().min(1).max(200),
    provider_id: unlessEmpty(providerRef),
    provider_name: unlessEmpty(providerRef),
    scopes: z.array(oauthScope).max(100).default([]),
    return_url: z.url({ protocol: /^https?$/ }).max(2048),
    // REST's rules: no control characters in what the audit event records.
    action: requestAction.optional(),
    // An empty map is no map (proto3 sends none).
    connection_config: z.preprocess(
      (v) => (typeof v === 'object' && v !== null && Object.keys(v).length === 0 ? undefined : v),
      z
        .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/), z.string().max(2048))
        .refine((v) => Object.keys(v).length <= 20, { message: 'at most 20 entries' })
        .optional(),
    ),
  })
  .refine((b) => b.provider_id !== undefined || b.provider_name !== undefined, {
    message: 'give provider_id or provider_name',
    path: ['provider_id'],
  });

export const revokeConnectionRequest = z.object({
  connection_id: uuid,
  reason: revocationReason.optional(),
});

/** `ttl_seconds` 0 (unset in proto3) means the REST default. */
function ttl(maxTtlSeconds: number) {
  const fallback = Math.min(900, maxTtlSeconds);
  return z
    .number()
    .int()
    .optional()
    .transform((v) => (v === undefined || v === 0 ? fallback : v))
    .pipe(z.number().int().min(60).max(maxTtlSeconds));
}

export function sessionSchemas(maxTtlSeconds: number) {
  const common = {
    scopes: z.array(sessionScope).min(1).max(50),
    ttl_seconds: ttl(maxTtlSeconds),
    connection_id: uuid.optional(),
    agent_id: z.string().min(1).max(64).optional(),
  };
  return {
    open: z.object(common),
    obo: z.object({ ...common, user_token: z.string().min(1).max(16384) }),
  };
}

/** Parses a request or throws `invalid_request` naming each bad field, as REST does. */
export function parseRequest<S extends z.ZodType>(schema: S, request: unknown): z.output<S> {
  // No NUL in any text of a request, as on REST (http/unstorable-text.ts): refused before anything runs.
  const unstorable = unstorablePath(request, 'request');
  if (unstorable !== undefined) throw unstorableRefused(undefined, unstorable);
  const result = schema.safeParse(request);
  if (result.success) return result.data;
  // Bounded: a path holds the caller's own keys, and trailers over a few KiB break clients and
  // proxies (a 100 KB key made grpc-js answer INTERNAL; 2026-12-07 review).
  const details = result.error.issues.slice(0, 20).map((issue) => ({
    path: ['request', ...issue.path.map((p) => String(p).slice(0, 64))].join('.').slice(0, 256),
    message: issue.message.slice(0, 256),
  }));
  throw commonError('invalid_request', { message: 'The request is not valid.', details });
}
