import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import { RATE_LIMITED_ROUTES } from './rate-limit.ts';

/**
 * The OpenAPI 3.1 document is generated from the route schemas (the schemas are also the
 * validation), served at `/openapi.json`, with a browsable reference at `/docs`.
 *
 * Both are built on first request, not at start: @fastify/swagger and its UI (with the static file
 * server and their dependencies) took ~45 ms of every start for pages few starts serve. The routes
 * are recorded as they are registered; the first request to either path builds a small Fastify app
 * holding @fastify/swagger, the UI and a copy of each route's options (method, path, schema,
 * config, never a handler), and `/docs/*` requests are answered by it in-process (`inject`). The
 * document is the one @fastify/swagger made from the broker's own app before: the same plugin, the
 * same options and the same route schemas. Cost: the first `/openapi.json` or `/docs` request after
 * a start takes ~60 ms more.
 */
export function installOpenApi(app: FastifyInstance, baseUrl: string, version: string): void {
  const routes: RouteOptions[] = [];
  let built: Promise<FastifyInstance> | undefined;
  const docsApp = () => {
    built ??= buildDocsApp(routes, baseUrl, version).catch((error: unknown) => {
      built = undefined; // the next request tries again
      throw error;
    });
    return built;
  };
  app.addHook('onClose', async () => {
    if (built !== undefined) await (await built.catch(() => undefined))?.close();
  });

  app.get('/openapi.json', { config: { auth: 'public' }, schema: { hide: true } }, async () =>
    (await docsApp()).swagger(),
  );
  // The UI's pages and static files carry no data.
  const ui = async (request: FastifyRequest, reply: FastifyReply) => {
    const answer = await (await docsApp()).inject({
      method: request.method as 'GET' | 'HEAD',
      url: request.url,
      headers: request.headers,
    });
    if (answer.statusCode === 404) return reply.callNotFound();
    reply.code(answer.statusCode);
    for (const [name, value] of Object.entries(answer.headers))
      if (value !== undefined && !HOP_HEADERS.has(name)) reply.header(name, value);
    return reply.send(answer.rawPayload.length > 0 ? answer.rawPayload : undefined);
  };
  app.get('/docs', { config: { auth: 'public' }, schema: { hide: true } }, ui);
  app.get('/docs/*', { config: { auth: 'public' }, schema: { hide: true } }, ui);

  // Every route registered from here on (the three above are served by the docs app itself).
  app.addHook('onRoute', (route) => {
    // The HEAD twin of a GET route is added again by the docs app (and left out of the document).
    if (route.method !== 'HEAD') routes.push(route);
  });
}

/** Set by the broker's own listener for its answer, not copied from the docs app's. */
const HOP_HEADERS = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'date']);

async function buildDocsApp(routes: readonly RouteOptions[], baseUrl: string, version: string) {
  const [{ default: Fastify }, { default: swagger }, { default: swaggerUi }, zod] = await Promise.all([
    import('fastify'),
    import('@fastify/swagger'),
    import('@fastify/swagger-ui'),
    import('fastify-type-provider-zod'),
  ]);
  const docs = Fastify({ routerOptions: { ignoreTrailingSlash: true } });
  // The copied routes are never called: their schemas are read by @fastify/swagger only.
  docs.setValidatorCompiler(() => () => true);
  docs.setSerializerCompiler(() => (data) => JSON.stringify(data));
  await docs.register(swagger, {
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
      const out = zod.jsonSchemaTransform(input);
      // Public routes need no credential: say so instead of inheriting the global requirement.
      const auth = (input.route.config as { auth?: string } | undefined)?.auth;
      if (auth === 'public' && out.schema && !out.schema.hide)
        (out.schema as Record<string, unknown>).security = [];
      // Rate-limited routes can answer 429 (the error envelope, with Retry-After).
      const responses = (out.schema as { response?: Record<string, unknown> } | undefined)?.response;
      const limited =
        (input.route.config as { rateLimit?: string } | undefined)?.rateLimit ??
        RATE_LIMITED_ROUTES[input.url];
      if (limited !== undefined && responses?.['400'] !== undefined) responses['429'] = responses['400'];
      // Any route that takes a body answers 413 above NEXUS_BODY_LIMIT_BYTES (a string within its
      // schema's maxLength can still exceed it once escaped as JSON).
      const body = (out.schema as { body?: unknown } | undefined)?.body;
      if (body !== undefined && responses?.['400'] !== undefined && responses['413'] === undefined)
        responses['413'] = responses['400'];
      return out;
    },
    transformObject: zod.jsonSchemaTransformObject,
  });
  for (const route of routes)
    docs.route({
      method: route.method,
      url: route.url,
      ...(route.schema === undefined ? {} : { schema: route.schema }),
      ...(route.config === undefined ? {} : { config: route.config }),
      handler: async () => undefined,
    });
  await docs.register(swaggerUi, { routePrefix: '/docs', staticCSP: true });
  await docs.ready();
  return docs;
}
