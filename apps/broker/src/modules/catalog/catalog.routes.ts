import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import * as z from 'zod';
import { errorResponses } from '../../http/schemas.ts';
import { catalogEntry, catalogKey, catalogSummary } from './catalog.schemas.ts';
import type { CatalogService } from './catalog.service.ts';

/**
 * The provider catalogue on the admin surface (admin keys; `read` is enough). A provider is made
 * from an entry with `POST /providers {"profile": {"template": "<key>", ...}}`.
 */
export function catalogRoutes(app: FastifyInstance, deps: { catalog: CatalogService }): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { catalog } = deps;
  const tags = ['catalog'];

  r.get(
    '/catalog',
    {
      schema: {
        operationId: 'listCatalog',
        tags,
        summary: 'The provider catalogue: every entry a provider can be made from, by key',
        response: { 200: z.object({ entries: z.array(catalogSummary) }), ...errorResponses() },
      },
    },
    async () => ({ entries: await catalog.list() }),
  );

  r.get(
    '/catalog/:key',
    {
      schema: {
        operationId: 'getCatalogEntry',
        tags,
        summary: 'One catalogue entry, whole: endpoints, quirks, parameters, capture form, app set-up',
        params: z.object({ key: catalogKey }).strict(),
        response: { 200: catalogEntry, ...errorResponses(404) },
      },
    },
    async (request) => catalog.get(request.params.key),
  );

  r.get(
    '/catalog/:key/profile',
    {
      schema: {
        operationId: 'getCatalogProfile',
        tags,
        summary:
          'The provider profile the entry expands into (decision 0015), before the fields a request gives: no client id or secret',
        params: z.object({ key: catalogKey }).strict(),
        response: {
          200: z
            .record(z.string(), z.unknown())
            .describe(
              'A provider profile, as POST /providers takes it; `params.template` names the entry and version',
            ),
          ...errorResponses(404),
        },
      },
    },
    async (request) => catalog.profile(request.params.key),
  );
}
