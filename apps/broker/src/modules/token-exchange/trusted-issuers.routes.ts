import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import * as z from 'zod';
import { auditContext } from '../../http/context.ts';
import { errorResponses } from '../../http/schemas.ts';
import type { TrustedIssuersService } from './trusted-issuers.service.ts';
import { USER_TOKEN_ALGORITHMS } from './user-tokens.ts';

// https is enforced in the service (http only for loopback outside production, like provider URLs).
const url = z.url({ protocol: /^https?$/ }).max(2048);
// A JWT claim name: printable ASCII without spaces (namespaced claims such as `https://x.test/roles` fit).
const claim = z
  .string()
  .min(1)
  .max(256)
  .regex(/^[\x21-\x7E]+$/, 'a claim name is printable ASCII without spaces');

const definition = {
  issuer: url.describe("The issuer identifier, exactly as the tokens' `iss` carries it"),
  jwks_uri: url.describe("URL of the issuer's JWKS; or set enable_discovery"),
  enable_discovery: z
    .boolean()
    .describe(
      "Find the JWKS through the issuer's OpenID discovery document (instead of jwks_uri); the name providers use",
    ),
  use_discovery: z
    .boolean()
    .describe('Former name of enable_discovery, still accepted (not together with a different value)')
    .meta({ deprecated: true }),
  audience: z.string().min(1).max(2048).describe('The `aud` value user tokens must carry for this broker'),
  algorithms: z
    .array(z.enum(USER_TOKEN_ALGORITHMS))
    .min(1)
    .max(USER_TOKEN_ALGORITHMS.length)
    .describe('Accepted signature algorithms (asymmetric only)'),
  user_id_claim: claim.describe('Claim carrying the user id'),
  tenant_claim: claim.describe('Claim carrying the tenant id'),
  permissions_claim: claim.describe(
    'Claim carrying the permissions: a JSON array, or a space-separated string (e.g. `scope`)',
  ),
  clearance_claim: claim.describe('Claim carrying the clearance level'),
};

/**
 * `use_discovery` is the former name of `enable_discovery` (the name providers use): either is
 * accepted, both only with the same value, and the service sees `enable_discovery` alone.
 */
function oneDiscoveryFlag<
  T extends { enable_discovery?: boolean | undefined; use_discovery?: boolean | undefined },
>(body: T, ctx: z.RefinementCtx): Omit<T, 'use_discovery'> {
  const { use_discovery, ...rest } = body;
  if (
    use_discovery !== undefined &&
    rest.enable_discovery !== undefined &&
    use_discovery !== rest.enable_discovery
  ) {
    ctx.addIssue({
      code: 'custom',
      path: ['use_discovery'],
      message: 'use_discovery is the former name of enable_discovery: send one of them',
    });
    return z.NEVER;
  }
  return use_discovery === undefined
    ? rest
    : { ...rest, enable_discovery: rest.enable_discovery ?? use_discovery };
}

const trustedIssuerView = z
  .object({
    id: z.string(),
    issuer: z.string(),
    jwks_uri: z.string().nullable(),
    enable_discovery: z.boolean(),
    use_discovery: z.boolean().describe('The same as enable_discovery, under its former name'),
    audience: z.string(),
    algorithms: z.array(z.string()),
    user_id_claim: z.string(),
    tenant_claim: z.string().nullable(),
    permissions_claim: z.string(),
    clearance_claim: z.string().nullable(),
    version: z.number().int(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .meta({ id: 'TrustedIssuer' });

export function trustedIssuersRoutes(
  app: FastifyInstance,
  deps: { trustedIssuers: TrustedIssuersService },
): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['trusted-issuers'];
  const params = z.object({ id: z.uuid() }).strict();

  r.post(
    '/admin/v1/trusted-issuers',
    {
      schema: {
        operationId: 'createTrustedIssuer',
        tags,
        summary: "Trust an identity provider's user tokens for on-behalf-of",
        body: z
          .object({
            issuer: definition.issuer,
            jwks_uri: definition.jwks_uri.optional(),
            enable_discovery: definition.enable_discovery.optional(),
            use_discovery: definition.use_discovery.optional(),
            audience: definition.audience,
            algorithms: definition.algorithms.default(['RS256', 'ES256']),
            user_id_claim: definition.user_id_claim.default('sub'),
            tenant_claim: definition.tenant_claim.optional(),
            permissions_claim: definition.permissions_claim.default('permissions'),
            clearance_claim: definition.clearance_claim.optional(),
          })
          .strict()
          .transform(oneDiscoveryFlag),
        response: { 201: trustedIssuerView, ...errorResponses(409, 422) },
      },
    },
    async (request, reply) => {
      reply.status(201);
      return deps.trustedIssuers.create(auditContext(request), request.body);
    },
  );

  r.get(
    '/admin/v1/trusted-issuers',
    {
      schema: {
        operationId: 'listTrustedIssuers',
        tags,
        summary: 'Live trusted issuers',
        response: { 200: z.object({ trusted_issuers: z.array(trustedIssuerView) }), ...errorResponses() },
      },
    },
    async () => ({ trusted_issuers: await deps.trustedIssuers.list() }),
  );

  r.get(
    '/admin/v1/trusted-issuers/:id',
    {
      schema: {
        operationId: 'getTrustedIssuer',
        tags,
        summary: 'One trusted issuer',
        params,
        response: { 200: trustedIssuerView, ...errorResponses(404) },
      },
    },
    async (request, reply) => {
      const issuer = await deps.trustedIssuers.get(request.params.id);
      reply.header('etag', `"${issuer.version}"`);
      return issuer;
    },
  );

  r.patch(
    '/admin/v1/trusted-issuers/:id',
    {
      schema: {
        operationId: 'updateTrustedIssuer',
        tags,
        summary:
          'Change a trusted issuer; `null` clears an optional field. Sessions its users opened before end',
        params,
        headers: z.object({ 'if-match': z.string().max(256).optional() }),
        body: z
          .object({
            issuer: definition.issuer.optional(),
            jwks_uri: definition.jwks_uri.nullable().optional(),
            enable_discovery: definition.enable_discovery.optional(),
            use_discovery: definition.use_discovery.optional(),
            audience: definition.audience.optional(),
            algorithms: definition.algorithms.optional(),
            user_id_claim: definition.user_id_claim.optional(),
            tenant_claim: definition.tenant_claim.nullable().optional(),
            permissions_claim: definition.permissions_claim.optional(),
            clearance_claim: definition.clearance_claim.nullable().optional(),
          })
          .strict()
          .transform(oneDiscoveryFlag),
        response: { 200: trustedIssuerView, ...errorResponses(404, 409, 422) },
      },
    },
    async (request) =>
      deps.trustedIssuers.update(
        auditContext(request),
        request.params.id,
        request.body,
        request.headers['if-match'],
      ),
  );

  r.delete(
    '/admin/v1/trusted-issuers/:id',
    {
      schema: {
        operationId: 'deleteTrustedIssuer',
        tags,
        summary:
          "Stop trusting an issuer: its users' tokens are refused from now on, and the sessions they opened end",
        params,
        headers: z.object({ 'if-match': z.string().max(256).optional() }),
        response: { 200: z.object({ id: z.string(), message: z.string() }), ...errorResponses(404, 409) },
      },
    },
    async (request) => {
      await deps.trustedIssuers.remove(auditContext(request), request.params.id, request.headers['if-match']);
      return { id: request.params.id, message: 'trusted issuer deleted' };
    },
  );
}
