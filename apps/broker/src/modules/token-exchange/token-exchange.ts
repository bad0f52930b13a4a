import type { AgentPrincipal } from '../../auth/principal.ts';
import { commonError } from '../../errors/common.errors.ts';
import { errorFrom, NexusError } from '../../errors/nexus-error.ts';
import { agentErrors } from '../agents/agents.errors.ts';
import type { AgentsService, ClientAuthentication } from '../agents/agents.service.ts';
import type { AuditContext } from '../audit/audit.service.ts';
import type { OnBehalfOf } from './obo.ts';
import { tokenExchangeErrors } from './token-exchange.errors.ts';

export const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT = 'urn:ietf:params:oauth:token-type:jwt';
const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';

/** Token types of RFC 8693 token exchange here (the metadata document lists them). */
export const EXCHANGE_TOKEN_TYPES = {
  /** The user's token from a trusted issuer: a JWT (or an opaque one with BACKEND_AUTH_URL). */
  subject: [JWT, ACCESS_TOKEN, 'urn:ietf:params:oauth:token-type:id_token'],
  /** The agent's own access token, in place of client authentication. */
  actor: [ACCESS_TOKEN, JWT],
  /** The on-behalf-of session token. */
  requested: [JWT],
} as const;

/** A connection as an RFC 8693 target (`audience` or `resource`). */
const CONNECTION_TARGET =
  /^urn:nexus:connection:([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/i;

export interface ExchangeForm {
  subject_token?: string | undefined;
  subject_token_type?: string | undefined;
  actor_token?: string | undefined;
  actor_token_type?: string | undefined;
  requested_token_type?: string | undefined;
  scope?: string | undefined;
  audience?: string | string[] | undefined;
  resource?: string | string[] | undefined;
}

const values = (field: string | string[] | undefined): string[] =>
  field === undefined ? [] : Array.isArray(field) ? field : [field];

/**
 * The connection a token exchange names, if any. RFC 8693 §2.1 `audience` (a logical name) and
 * `resource` (a URI) say where the issued token will be used; the broker issues session tokens for
 * itself, each bound to at most one connection. So a target is this broker (its issuer identifier,
 * the session token's `aud`) or one connection, `urn:nexus:connection:<id>`, whose provider scopes
 * the session may then carry (as `connection_id` does at `POST /v1/agent-sessions/obo`). Anything
 * else, or two connections, is refused with `invalid_target` (§2.2.2) rather than answered with a
 * token the target would not accept.
 */
export function exchangeTarget(form: Pick<ExchangeForm, 'audience' | 'resource'>, issuer: string) {
  const connections = new Set<string>();
  const refused: string[] = [];
  for (const target of [...values(form.audience), ...values(form.resource)]) {
    const connection = CONNECTION_TARGET.exec(target);
    if (connection) connections.add(connection[1]!.toLowerCase());
    else if (target !== issuer) refused.push(target);
  }
  if (refused.length > 0) throw errorFrom(tokenExchangeErrors, 'invalid_target', { details: { refused } });
  if (connections.size > 1)
    throw errorFrom(tokenExchangeErrors, 'invalid_target', {
      message: 'A session token is bound to one connection at most: name one.',
      details: { refused: [...connections].map((id) => `urn:nexus:connection:${id}`) },
    });
  const [connectionId] = connections;
  return { connectionId };
}

/**
 * RFC 8693 token exchange at `POST /oauth/token`: `subject_token` is the user's token from a trusted
 * issuer; the agent is the authenticated client, or `actor_token` (its access token). The answer is
 * an on-behalf-of session token (a JWT whose `act` claim identifies the agent), with the provider's
 * narrowed token beside it when a connection is named and the provider can narrow.
 */
export function createTokenExchange(deps: {
  agents: Pick<AgentsService, 'authenticateToken' | 'authenticateClientPrincipal'>;
  onBehalfOf: OnBehalfOf;
  issuer: string;
  /** Lifetime asked for sessions made by token exchange (bounded by the user's token). */
  sessionTtlSeconds: number;
}) {
  const invalid = (message: string, path: string) =>
    commonError('invalid_request', { message, details: [{ path: `body.${path}`, message }] });

  return async function exchange(ctx: AuditContext, client: ClientAuthentication, form: ExchangeForm) {
    if (form.subject_token === undefined) throw invalid('subject_token is required', 'subject_token');
    const types = EXCHANGE_TOKEN_TYPES;
    if (
      form.subject_token_type === undefined ||
      !(types.subject as readonly string[]).includes(form.subject_token_type)
    )
      throw invalid('subject_token_type must be a JWT or access token type', 'subject_token_type');
    if (form.requested_token_type !== undefined && form.requested_token_type !== JWT)
      throw invalid(`only ${JWT} can be issued`, 'requested_token_type');
    if (
      form.actor_token_type !== undefined &&
      !(types.actor as readonly string[]).includes(form.actor_token_type)
    )
      throw invalid(
        'actor_token_type must be the access token or JWT type (the agent access token)',
        'actor_token_type',
      );
    const scopes = (form.scope ?? '')
      .trim()
      .split(/\s+/)
      .filter((s) => s !== '');
    if (scopes.length === 0) throw invalid('scope is required for token exchange', 'scope');
    const { connectionId } = exchangeTarget(form, deps.issuer);

    let agent: AgentPrincipal | null;
    if (form.actor_token !== undefined) {
      agent = await deps.agents.authenticateToken(form.actor_token);
      if (agent === null) throw errorFrom(agentErrors, 'invalid_client');
    } else {
      agent = await deps.agents.authenticateClientPrincipal(ctx, client);
    }
    let session: Awaited<ReturnType<OnBehalfOf>>;
    try {
      session = await deps.onBehalfOf({ ...ctx, actor: `agent:${agent.agentId}` }, agent, {
        userToken: form.subject_token,
        scopes,
        ttlSeconds: deps.sessionTtlSeconds,
        connectionId,
      });
    } catch (error) {
      // Missing, outside the grant, not active, or not the user's: one answer, in OAuth terms.
      if (error instanceof NexusError && error.code === 'connection_not_found')
        throw errorFrom(tokenExchangeErrors, 'invalid_target', {
          details: { refused: [`urn:nexus:connection:${connectionId}`] },
          cause: error,
        });
      throw error;
    }
    return {
      access_token: session.session_token!,
      issued_token_type: JWT,
      token_type: 'N_A' as const,
      expires_in: Math.max(
        0,
        Math.round((Date.parse(session.expires_at) - Date.parse(session.created_at)) / 1000),
      ),
      scope: session.scopes_granted.join(' '),
      session_id: session.session_id,
      ...(session.connection_id !== null ? { connection_id: session.connection_id } : {}),
      ...(session.downscoped !== undefined ? { downscoped: session.downscoped } : {}),
      ...(session.access_token !== undefined
        ? {
            provider_token: {
              access_token: session.access_token,
              token_type: session.access_token_type!,
              expires_at: session.access_token_expires_at ?? null,
              scope: session.access_token_scope!,
            },
          }
        : {}),
    };
  };
}

export type TokenExchange = ReturnType<typeof createTokenExchange>;
