import * as z from 'zod';

/**
 * How an agent session is answered, on REST (sessions.routes.ts) and gRPC alike. The schemas are
 * also filters: a field not listed here never leaves the broker.
 */
/** A session as `GET` and `DELETE /v1/agent-sessions/{id}` show it. */
export const sessionView = z
  .object({
    session_id: z.string(),
    agent_id: z.string(),
    connection_id: z.string().nullable(),
    scopes_granted: z.array(z.string()),
    custom_scopes: z.array(z.string()),
    provider_scopes: z.array(z.string()),
    status: z.enum(['active', 'closed', 'expired']),
    created_at: z.string(),
    expires_at: z.string(),
    obo: z.boolean(),
    acting_for: z.string().nullable(),
    tenant_id: z.string().nullable(),
    clearance_level: z.string().nullable(),
  })
  .meta({ id: 'AgentSession' });

/** A session as opened (and as gRPC shows it): the view, plus the tokens it came with. */
export const openedSession = sessionView
  .extend({
    session_token: z
      .string()
      .optional()
      .describe(
        'Broker-signed JWT (typ nexus-session+jwt) for custom scopes; verify with the JWKS or introspection',
      ),
    token_type: z.literal('session').optional(),
    downscoped: z
      .boolean()
      .optional()
      .describe(
        "true: access_token is the provider's token narrowed to the session's provider scopes; false: the provider cannot narrow, use the connection's token",
      ),
    access_token: z
      .string()
      .optional()
      .describe("The provider's down-scoped access token (never a refresh token)"),
    access_token_type: z.string().optional(),
    access_token_expires_at: z.string().nullable().optional(),
    access_token_scope: z.string().optional(),
  })
  .meta({ id: 'OpenedAgentSession' });
