import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import * as z from 'zod';
import { commonError } from '../../errors/common.errors.ts';
import { errorFrom } from '../../errors/nexus-error.ts';
import { basicCredentials } from '../../http/basic-auth.ts';
import { auditContext } from '../../http/context.ts';
import { errorResponses } from '../../http/schemas.ts';
import { unstorableInBody } from '../../http/unstorable-text.ts';
import { tokenExchangeErrors } from '../token-exchange/token-exchange.errors.ts';
import {
  EXCHANGE_TOKEN_TYPES,
  TOKEN_EXCHANGE,
  type TokenExchange,
} from '../token-exchange/token-exchange.ts';
import { agentErrors } from './agents.errors.ts';
import type { AgentsService, ClientAuthentication } from './agents.service.ts';
import { createIntrospection, type SessionTokenIntrospection } from './introspection.ts';
import { CLIENT_ASSERTION_ALGORITHMS } from './jwks.ts';
import type { SigningKeys } from './signing-keys.ts';

/**
 * The broker as an OAuth authorization server for agents: `POST /oauth/token` (client_credentials,
 * and RFC 8693 token exchange: token-exchange/token-exchange.ts), `POST /oauth/introspect` (RFC 7662:
 * introspection.ts), the JWKS its tokens are signed with, and RFC 8414 metadata listing all of it.
 * Clients authenticate in the request with client_secret_basic, client_secret_post or
 * private_key_jwt (client-auth.ts); introspection also takes an admin key or an agent access token.
 */
const CLIENT_AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'private_key_jwt'];

/** RFC 8414 §2 metadata: what a stock client discovers (openid-client finds introspection here only). */
export function authorizationServerMetadata(issuer: string) {
  return {
    issuer,
    token_endpoint: `${issuer}/oauth/token`,
    jwks_uri: `${issuer}/.well-known/jwks.json`,
    introspection_endpoint: `${issuer}/oauth/introspect`,
    grant_types_supported: ['client_credentials', TOKEN_EXCHANGE],
    token_endpoint_auth_methods_supported: CLIENT_AUTH_METHODS,
    token_endpoint_auth_signing_alg_values_supported: [...CLIENT_ASSERTION_ALGORITHMS],
    introspection_endpoint_auth_methods_supported: CLIENT_AUTH_METHODS,
    introspection_endpoint_auth_signing_alg_values_supported: [...CLIENT_ASSERTION_ALGORITHMS],
    // No authorization endpoint: no response type (the member is required, RFC 8414 §2).
    response_types_supported: [],
    // RFC 8693 defines no metadata for token types: these three are this broker's own members.
    token_exchange_subject_token_types_supported: [...EXCHANGE_TOKEN_TYPES.subject],
    token_exchange_actor_token_types_supported: [...EXCHANGE_TOKEN_TYPES.actor],
    token_exchange_requested_token_types_supported: [...EXCHANGE_TOKEN_TYPES.requested],
  };
}

/** The client authentication a request presents (RFC 6749 §2.3, RFC 7523): header or form. */
function clientAuthentication(
  authorization: string | undefined,
  b: {
    client_id?: string;
    client_secret?: string;
    client_assertion_type?: string;
    client_assertion?: string;
  },
): ClientAuthentication {
  const basic = basicCredentials(authorization);
  return {
    ...(basic ? { basic } : {}),
    ...(b.client_id !== undefined ? { clientId: b.client_id } : {}),
    ...(b.client_secret !== undefined ? { clientSecret: b.client_secret } : {}),
    ...(b.client_assertion_type !== undefined ? { assertionType: b.client_assertion_type } : {}),
    ...(b.client_assertion !== undefined ? { assertion: b.client_assertion } : {}),
  };
}

/** Whether an RFC 8707 resource is this broker or a URL below it (same origin, path under the issuer's). */
function withinIssuer(resource: string, issuer: string): boolean {
  const r = URL.parse(resource);
  const i = new URL(issuer);
  if (r === null || r.origin !== i.origin || r.hash !== '' || r.search !== '') return false;
  const slash = (path: string) => (path.endsWith('/') ? path : `${path}/`);
  return slash(r.pathname).startsWith(slash(i.pathname));
}

export function oauthRoutes(
  app: FastifyInstance,
  deps: {
    agents: AgentsService;
    /** Session tokens, for introspection (token-exchange/'s sessions service). */
    sessions: SessionTokenIntrospection;
    /** RFC 8693 at the token endpoint (token-exchange/token-exchange.ts, built by the container). */
    tokenExchange: TokenExchange;
    signingKeys: SigningKeys;
    issuer: string;
    formBodyLimit: number;
  },
): void {
  const exchange = deps.tokenExchange;
  const introspect = createIntrospection(deps);

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
        const refused = unstorableInBody(out);
        if (refused !== undefined) return done(refused, undefined);
        done(null, out);
      },
    );
    const text = (max: number) => z.string().max(max).optional();
    // RFC 8693 §2.1: `audience` and `resource` may be repeated; nothing else may (RFC 6749 §3.2).
    const targets = z
      .union([z.string().max(2048), z.array(z.string().max(2048)).max(10)])
      .optional()
      .describe('Token exchange: this broker (its issuer) or urn:nexus:connection:<id>; repeatable');
    const clientFields = {
      client_id: text(128),
      client_secret: text(256),
      client_assertion_type: text(128),
      client_assertion: text(8192),
    };
    scope.withTypeProvider<ZodTypeProvider>().post(
      '/oauth/token',
      {
        config: { auth: 'public' },
        schema: {
          operationId: 'oauthToken',
          tags: ['agents'],
          summary:
            'Agent access token (client_credentials) or on-behalf-of session token (RFC 8693 token exchange); form-encoded as RFC 6749 requires',
          consumes: ['application/x-www-form-urlencoded'],
          body: z
            .object({
              grant_type: z.string().max(128),
              scope: text(2048),
              ...clientFields,
              // RFC 8693 token exchange
              subject_token: text(16384),
              subject_token_type: text(128),
              actor_token: text(8192),
              actor_token_type: text(128),
              requested_token_type: text(128),
              audience: targets,
              resource: targets,
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
              connection_id: z
                .string()
                .optional()
                .describe('Token exchange: the connection the session is bound to (named as a target)'),
              downscoped: z
                .boolean()
                .optional()
                .describe(
                  "Token exchange with provider scopes: whether provider_token holds the provider's token narrowed to them",
                ),
              provider_token: z
                .object({
                  access_token: z.string(),
                  token_type: z.string(),
                  expires_at: z.string().nullable(),
                  scope: z.string(),
                })
                .optional()
                .describe("The provider's access token narrowed to the session's provider scopes"),
            }),
            ...errorResponses(413),
          },
        },
      },
      async (request, reply) => {
        reply.header('pragma', 'no-cache');
        const b = request.body;
        const client = clientAuthentication(request.headers.authorization, b);
        if (b.grant_type === TOKEN_EXCHANGE) return exchange(auditContext(request), client, b);
        if (b.grant_type !== 'client_credentials') {
          throw errorFrom(agentErrors, 'unsupported_grant_type', {
            details: { supported: ['client_credentials', TOKEN_EXCHANGE] },
          });
        }
        // RFC 8707 §2: an access token's audience is this broker (its issuer, /mcp included); a
        // resource elsewhere gets no token, rather than one that resource would refuse.
        const foreign = [b.resource ?? []].flat().filter((r) => !withinIssuer(r, deps.issuer));
        if (foreign.length > 0)
          throw errorFrom(tokenExchangeErrors, 'invalid_target', { details: { resource: foreign } });
        return deps.agents.clientCredentials(auditContext(request), client, b.scope);
      },
    );

    scope.withTypeProvider<ZodTypeProvider>().post(
      '/oauth/introspect',
      {
        // RFC 7662 §2.1: a client authenticating as at the token endpoint, or (as before) an admin
        // key or an agent access token in the headers; `clientAuth` lets the former reach the handler.
        config: { auth: 'agent', clientAuth: true },
        schema: {
          operationId: 'oauthIntrospect',
          tags: ['agent sessions'],
          summary:
            'RFC 7662 introspection of access and session tokens (closed sessions are inactive at once); an agent learns only about its own tokens',
          consumes: ['application/x-www-form-urlencoded'],
          body: z
            .object({ token: z.string().min(1).max(8192), token_type_hint: text(64), ...clientFields })
            .strict(),
          response: { 200: z.looseObject({ active: z.boolean() }), ...errorResponses(413) },
        },
      },
      async (request, reply) => {
        reply.header('pragma', 'no-cache');
        const b = request.body;
        const client = clientAuthentication(request.headers.authorization, b);
        const presented =
          client.basic !== undefined || client.clientSecret !== undefined || client.assertion !== undefined;
        let caller = request.principal;
        // RFC 6749 §2.3: one authentication method per request.
        if (caller !== undefined && presented)
          throw commonError('invalid_request', {
            message:
              'Authenticate once: an X-API-Key or Bearer credential, or client authentication, not both.',
          });
        if (caller === undefined) {
          if (!presented && client.assertionType === undefined) throw commonError('unauthorized');
          caller = await deps.agents.authenticateClientPrincipal(auditContext(request), client);
          request.principal = caller;
        }
        return introspect(caller, b.token);
      },
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
        summary: 'RFC 8414 metadata: endpoints, grants, token types, client authentication methods',
        response: { 200: z.record(z.string(), z.unknown()) },
      },
    },
    async () => authorizationServerMetadata(deps.issuer),
  );
}
