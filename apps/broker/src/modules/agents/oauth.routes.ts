import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import * as z from 'zod';
import { errorFrom } from '../../errors/nexus-error.ts';
import { auditContext } from '../../http/context.ts';
import { errorResponses } from '../../http/schemas.ts';
import { agentErrors } from './agents.errors.ts';
import type { AgentsService, ClientAuthentication } from './agents.service.ts';
import type { SigningKeys } from './signing-keys.ts';

/** `Authorization: Basic` with form-urlencoded id and secret (RFC 6749 §2.3.1). */
function basicCredentials(header: string | undefined): ClientAuthentication['basic'] {
  const match = header === undefined ? null : /^Basic\s+([A-Za-z0-9+/=]{1,1024})\s*$/i.exec(header);
  if (match === null) return undefined;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  try {
    return {
      clientId: decodeURIComponent(decoded.slice(0, colon).replaceAll('+', ' ')),
      secret: decodeURIComponent(decoded.slice(colon + 1).replaceAll('+', ' ')),
    };
  } catch {
    return undefined;
  }
}

/**
 * The broker as an OAuth authorization server for agents: `POST /oauth/token` (client_credentials
 * with client_secret_basic, client_secret_post or private_key_jwt), the JWKS its access tokens are
 * signed with, and RFC 8414 metadata. Public routes: the client authenticates in the request.
 */
export function oauthRoutes(
  app: FastifyInstance,
  deps: { agents: AgentsService; signingKeys: SigningKeys; issuer: string; formBodyLimit: number },
): void {
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
            })
            .strict(),
          response: {
            200: z.object({
              access_token: z.string(),
              token_type: z.literal('Bearer'),
              expires_in: z.number().int(),
              scope: z.string(),
            }),
            ...errorResponses(),
          },
        },
      },
      async (request, reply) => {
        reply.header('pragma', 'no-cache');
        const b = request.body;
        if (b.grant_type !== 'client_credentials') {
          throw errorFrom(agentErrors, 'unsupported_grant_type', {
            details: { supported: ['client_credentials'] },
          });
        }
        const basic = basicCredentials(request.headers.authorization);
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
