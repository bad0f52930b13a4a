import * as z from 'zod';
import type { StoredProfile } from '../providers/providers.schemas.ts';
import { type Strategy, strategyFor } from '../strategies/strategy.ts';

/** A connection's `connection_config` as views show it (not a secret): null when it has none. */
export const connectionConfigView = z
  .record(z.string(), z.string())
  .nullable()
  .describe(
    "The values of the provider's URL placeholders: request-connection's `connection_config` (or the parameters' defaults) and values learnt from the token response at consent (decision 0015)",
  );

/**
 * The token answer of `GET /v1/token/{id}`, `POST /v1/refresh/{id}` and `/v1/resolve`
 * (connections.routes.ts), and of gRPC's GetToken and RefreshConnection (the same body as a
 * Struct). The schema is also a filter: fields not listed here never leave the broker.
 */
export const tokenResponse = z
  .object({
    connection_id: z.string(),
    provider_id: z.string(),
    provider_name: z.string(),
    strategy: z.object({
      type: z.enum(['oauth2', 'header', 'headers', 'query_param', 'basic_auth', 'hmac_payload', 'aws_sigv4']),
      config: z
        .record(z.string(), z.string())
        .describe(
          'The strategy settings; for `headers`, each header name mapped to its value template, `{field}` standing for a credential field',
        ),
    }),
    credentials: z
      .record(z.string(), z.string())
      .describe('What the strategy applies; never a refresh token'),
    expires_at: z.string().nullable().describe('When the access token expires (null: unknown or never)'),
    access_token: z.string().optional().describe('OAuth only, flattened for original clients'),
    token_type: z.string().optional(),
    expiry: z.string().nullable().optional(),
    connection_config: connectionConfigView
      .unwrap()
      .optional()
      .describe(
        "The values the provider's URL placeholders are filled with for this connection (the credential proxy uses them for the base URL); absent when the provider has none",
      ),
  })
  .meta({ id: 'TokenResponse' });

/**
 * The strategy of a stored provider profile (its JSON text, as the connection row joins it), parsed
 * once per distinct text instead of on every token read. Keyed by the whole text, so a profile
 * that changes is a new entry: nothing here can answer with a stale strategy. Frozen, since every
 * reader shares it; at most 256 texts are kept (the oldest goes first).
 */
const strategies = new Map<string, Strategy>();
export function strategyOfProfile(profileText: string): Strategy {
  let strategy = strategies.get(profileText);
  if (strategy === undefined) {
    const found = strategyFor(JSON.parse(profileText) as StoredProfile);
    strategy = Object.freeze({ type: found.type, config: Object.freeze({ ...found.config }) });
    if (strategies.size >= 256) strategies.delete(strategies.keys().next().value as string);
    strategies.set(profileText, strategy);
  }
  return strategy;
}
