import type { FastifyInstance } from 'fastify';
import { ASSETS, type AssetName, assetReader } from './console.assets.ts';
import { CONSOLE_HEADERS, CONSOLE_PAGE, NOT_BUILT_PAGE } from './console.page.ts';

/**
 * The operator console: a static single-page app at `/console` that calls the admin API from the
 * browser with the admin key the operator types in (README.md beside this file). The routes are
 * public (they serve files that hold no data) and belong to the admin surface (http/surfaces.ts).
 */
export function consoleRoutes(app: FastifyInstance, deps: { assetsDir: URL }): void {
  const read = assetReader(deps.assetsDir);
  const config = { auth: 'public' as const };
  const schema = { hide: true };

  app.get('/console', { config, schema }, async (_request, reply) => {
    const built = (await read('app.js')) !== undefined;
    return reply
      .status(built ? 200 : 503)
      .headers(CONSOLE_HEADERS)
      .type('text/html; charset=utf-8')
      .send(built ? CONSOLE_PAGE : NOT_BUILT_PAGE);
  });

  for (const name of Object.keys(ASSETS) as AssetName[])
    app.get(`/console/${name}`, { config, schema }, async (_request, reply) => {
      const body = await read(name);
      if (body === undefined) return reply.callNotFound();
      return reply.headers(CONSOLE_HEADERS).type(ASSETS[name]).send(body);
    });
}
