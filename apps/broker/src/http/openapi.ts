import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { jsonSchemaTransform, jsonSchemaTransformObject } from 'fastify-type-provider-zod';
import { RATE_LIMITED_ROUTES } from './rate-limit.ts';

/**
 * The OpenAPI 3.1 document is generated from the route schemas (the schemas are also the
 * validation), served at `/openapi.json`, with a browsable reference at `/docs`.
 */
export async function installOpenApi(app: FastifyInstance, baseUrl: string, version: string): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Nexus broker API',
        version,
        description:
          'Nexus keeps long-lived credentials and hands agents short-lived ones. Errors are `{error, message, details?, request_id}` with a stable `error` code.',
      },
      servers: [{ url: baseUrl }],
      components: {
        securitySchemes: {
          apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
          bearer: { type: 'http', scheme: 'bearer' },
        },
      },
      security: [{ apiKey: [] }, { bearer: [] }],
    },
    transform: (input) => {
      const out = jsonSchemaTransform(input);
      // Public routes need no credential: say so instead of inheriting the global requirement.
      const auth = (input.route.config as { auth?: string } | undefined)?.auth;
      if (auth === 'public' && out.schema && !out.schema.hide)
        (out.schema as Record<string, unknown>).security = [];
      // Rate-limited routes can answer 429 (the error envelope, with Retry-After).
      const responses = (out.schema as { response?: Record<string, unknown> } | undefined)?.response;
      if (RATE_LIMITED_ROUTES[input.url] !== undefined && responses?.['400'] !== undefined)
        responses['429'] = responses['400'];
      // Any route that takes a body answers 413 above NEXUS_BODY_LIMIT_BYTES (a string within its
      // schema's maxLength can still exceed it once escaped as JSON).
      const body = (out.schema as { body?: unknown } | undefined)?.body;
      if (body !== undefined && responses?.['400'] !== undefined && responses['413'] === undefined)
        responses['413'] = responses['400'];
      return out;
    },
    transformObject: jsonSchemaTransformObject,
  });
  app.addHook('onRoute', (route) => {
    // Routes registered by the UI plugin serve static files and carry no data.
    if (route.url.startsWith('/docs')) route.config = { ...(route.config as object), auth: 'public' };
  });
  await app.register(swaggerUi, { routePrefix: '/docs', staticCSP: true });
  app.get('/openapi.json', { config: { auth: 'public' }, schema: { hide: true } }, async () => app.swagger());
}
