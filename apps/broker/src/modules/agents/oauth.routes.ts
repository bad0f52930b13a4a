import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import * as z from 'zod';
import { commonError } from '../../errors/common.errors.ts';
import { errorFrom } from '../../errors/nexus-error.ts';
import { basicCredentials } from '../../http/basic-auth.ts';
import { auditContext } from '../../http/context.ts';
import { errorResponses } from '../../http/schemas.ts';
import type { AgentPrincipal } from '../../http/types.ts';
import { agentErrors } from './agents.errors.ts';
import type { AgentsService, ClientAuthentication } from './agents.service.ts';
import type { OnBehalfOf } from './obo.ts';
import type { AgentSessions } from './sessions.ts';
import type { SigningKeys } from './signing-keys.ts';

/**
 * The broker as an OAuth authorization server for agents: `POST /oauth/token` (client_credentials
 * with client_secret_basic, client_secret_post or private_key_jwt), the JWKS its access tokens are
 * signed with, and RFC 8414 metadata. Public routes: the client authenticates in the request.
 */
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_TYPES = new Set([
  'urn:ietf:params:oauth:token-type:jwt',
  'urn:ietf:params:oauth:token-type:access_token',
  'urn:ietf:params:oauth:token-type:id_token',
]);

export function oauthRoutes(
  app: FastifyInstance,
  deps: {
    agents: AgentsService;
    sessions: AgentSessions;
    onBehalfOf: OnBehalfOf;
    signingKeys: SigningKeys;
    issuer: string;
    formBodyLimit: number;
    /** Lifetime asked for sessions made by token exchange (bounded by the user's token). */
    sessionTtlSeconds: number;
  },
): void {
  /**
   * RFC 8693 token exchange: `subject_token` is the user's token from a trusted issuer; the agent is
   * the authenticated client, or `actor_token` (its access token). The answer is an OBO session
   * token (a JWT with an `act` claim naming the agent).
   */
  async function exchange(
    request: FastifyRequest,
    b: Record<string, string | undefined>,
    basic: ClientAuthentication['basic'],
  ) {
    const invalid = (message: string, path: string) =>
      commonError('invalid_request', { message, details: [{ path: `body.${path}`, message }] });
    if (b.subject_token === undefined) throw invalid('subject_token is required', 'subject_token');
    if (b.subject_token_type === undefined || !JWT_TYPES.has(b.subject_token_type))
      throw invalid('subject_token_type must be a JWT or access token type', 'subject_token_type');
    if (
      b.requested_token_type !== undefined &&
      b.requested_token_type !== 'urn:ietf:params:oauth:token-type:jwt'
    )
      throw invalid('only urn:ietf:params:oauth:token-type:jwt can be issued', 'requested_token_type');
    let agent: AgentPrincipal | null;
    if (b.actor_token !== undefined) {
      agent = await deps.agents.authenticateToken(b.actor_token);
      if (agent === null) throw errorFrom(agentErrors, 'invalid_client');
    } else {
      agent = await deps.agents.authenticateClientPrincipal(auditContext(request), {
        ...(basic ? { basic } : {}),
        ...(b.client_id !== undefined ? { clientId: b.client_id } : {}),
        ...(b.client_secret !== undefined ? { clientSecret: b.client_secret } : {}),
        ...(b.client_assertion_type !== undefined ? { assertionType: b.client_assertion_type } : {}),
        ...(b.client_assertion !== undefined ? { assertion: b.client_assertion } : {}),
      });
    }
    const scopes = (b.scope ?? '')
      .trim()
      .split(/\s+/)
      .filter((s) => s !== '');
    if (scopes.length === 0) throw invalid('scope is required for token exchange', 'scope');
    const ctx = { ...auditContext(request), actor: `agent:${agent.agentId}` };
    const session = await deps.onBehalfOf(ctx, agent, {
      userToken: b.subject_token,
      scopes,
      ttlSeconds: deps.sessionTtlSeconds,
    });
    return {
      access_token: session.session_token!,
      issued_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      token_type: 'N_A' as const,
      expires_in: Math.max(
        0,
        Math.round((Date.parse(session.expires_at) - Date.parse(session.created_at)) / 1000),
      ),
      scope: session.scopes_granted.join(' '),
      session_id: session.session_id,
    };
  }

  app.register(async (scope) => {
    scope.addContentTypeParser(
      'application/x-www-form-urlencoded',
      { parseAs: 'string', bodyLimit: deps.formBodyLimit },
      (_req, body, done) => {
        const params = new URLSearchParams(body as string);
        // RFC 6749 §3.2: parameters must not be repeated.
        const out: Record<string, string | string[]> = {};
        for (const [key, value] of params) {
          const prior = out[key];
          out[key] = prior === undefined ? value : [...(Array.isArray(prior) ? prior : [prior]), value];
        }
        done(null, out);
      },
    );
    const text = (max: number) => z.string().max(max).optional();
    scope.withTypeProvider<ZodTypeProvider>().post(
      '/oauth/token',
      {
        config: { auth: 'public' },
        schema: {
          operationId: 'oauthToken',
          tags: ['agents'],
          summary: 'Agent access token (client_credentials); form-encoded as RFC 6749 requires',
          consumes: ['application/x-www-form-urlencoded'],
          body: z
            .object({
              grant_type: z.string().max(128),
              scope: text(2048),
              client_id: text(128),
              client_secret: text(256),
              client_assertion_type: text(128),
              client_assertion: text(8192),
              // RFC 8693 token exchange
              subject_token: text(16384),
              subject_token_type: text(128),
              actor_token: text(8192),
              actor_token_type: text(128),
              requested_token_type: text(128),
              audience: text(2048),
              resource: text(2048),
            })
            .strict(),
          response: {
            200: z.object({
              access_token: z.string(),
              token_type: z.enum(['Bearer', 'N_A']),
              expires_in: z.number().int(),
              scope: z.string(),
              issued_token_type: z.string().optional().describe('Token exchange: the session token is a JWT'),
              session_id: z.string().optional(),
            }),
            ...errorResponses(413),
          },
        },
      },
      async (request, reply) => {
        reply.header('pragma', 'no-cache');
        const b = request.body;
        const basic = basicCredentials(request.headers.authorization);
        if (b.grant_type === TOKEN_EXCHANGE) return exchange(request, b, basic);
        if (b.grant_type !== 'client_credentials') {
          throw errorFrom(agentErrors, 'unsupported_grant_type', {
            details: { supported: ['client_credentials', TOKEN_EXCHANGE] },
          });
        }
        return deps.agents.clientCredentials(
          auditContext(request),
          {
            ...(basic ? { basic } : {}),
            ...(b.client_id !== undefined ? { clientId: b.client_id } : {}),
            ...(b.client_secret !== undefined ? { clientSecret: b.client_secret } : {}),
            ...(b.client_assertion_type !== undefined ? { assertionType: b.client_assertion_type } : {}),
            ...(b.client_assertion !== undefined ? { assertion: b.client_assertion } : {}),
          },
          b.scope,
        );
      },
    );

    scope.withTypeProvider<ZodTypeProvider>().post(
      '/oauth/introspect',
      {
        // A resource server asks: an admin key or an agent's access token (RFC 7662 §2.1).
        config: { auth: 'agent' },
        schema: {
          operationId: 'oauthIntrospect',
          tags: ['agent sessions'],
          summary: 'RFC 7662 introspection of a session token (closed sessions are inactive at once)',
          consumes: ['application/x-www-form-urlencoded'],
          body: z.object({ token: z.string().min(1).max(8192), token_type_hint: text(64) }).strict(),
          response: { 200: z.looseObject({ active: z.boolean() }), ...errorResponses(413) },
        },
      },
      async (request) => deps.sessions.introspect(request.body.token),
    );
  });

  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get(
    '/.well-known/jwks.json',
    {
      config: { auth: 'public' },
      schema: {
        operationId: 'jwks',
        tags: ['agents'],
        summary: "The public keys the broker's tokens are signed with (current and not yet retired)",
        response: { 200: z.object({ keys: z.array(z.record(z.string(), z.unknown())) }) },
      },
    },
    async () => deps.signingKeys.jwks(),
  );
  r.get(
    '/.well-known/oauth-authorization-server',
    {
      config: { auth: 'public' },
      schema: {
        operationId: 'authorizationServerMetadata',
        tags: ['agents'],
        summary: 'RFC 8414 metadata',
        response: { 200: z.record(z.string(), z.unknown()) },
      },
    },
    async () => ({
      issuer: deps.issuer,
      token_endpoint: `${deps.issuer}/oauth/token`,
      jwks_uri: `${deps.issuer}/.well-known/jwks.json`,
      grant_types_supported: ['client_credentials'],
      token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'private_key_jwt'],
      token_endpoint_auth_signing_alg_values_supported: ['ES256', 'ES384', 'RS256', 'PS256', 'EdDSA'],
      response_types_supported: [],
      scopes_supported: [],
    }),
  );
}
