import type { FastifyInstance } from 'fastify';

/**
 * CORS only where a browser legitimately calls the broker from another origin: the capture
 * schema and submission (an application's own capture form), the published keys and metadata
 * (`/.well-known/*`) and `/health`. Origins come from CORS_ALLOWED_ORIGINS; credentials are never
 * allowed, so `*` exposes nothing a cookie could unlock. With no origins configured nothing is added.
 */
const BROWSER_PATHS = [
  /^\/(v1|auth)\/capture-schema$/,
  /^\/(v1|auth)\/capture-credential$/,
  /^\/\.well-known\/[^/]+$/,
  /^\/health$/,
];

export async function installCors(app: FastifyInstance, origins: readonly string[]): Promise<void> {
  if (origins.length === 0) return;
  const origin = origins.includes('*') ? '*' : [...origins];
  // The preflight route the plugin adds carries no data: no credential is needed for it.
  app.addHook('onRoute', (route) => {
    if (route.method === 'OPTIONS' && route.url === '*')
      route.config = { ...(route.config as object), auth: 'public' };
  });
  const { default: cors } = await import('@fastify/cors');
  await app.register(cors, {
    hook: 'onRequest',
    delegator: (request, callback) => {
      const path = (request.url ?? '').split('?')[0] ?? '';
      const browser = BROWSER_PATHS.some((p) => p.test(path));
      callback(null, {
        origin: browser ? origin : false,
        credentials: false,
        methods: ['GET', 'POST'],
        allowedHeaders: ['content-type'],
        maxAge: 600,
      });
    },
  });
}
