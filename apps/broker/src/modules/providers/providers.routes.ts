import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import * as z from 'zod';
import { auditContext } from '../../http/context.ts';
import { errorResponses } from '../../http/schemas.ts';
import { profileInput, profilePatch, providerName, providerView } from './providers.schemas.ts';
import type { ProvidersService } from './providers.service.ts';

const idParams = z.object({ id: z.string().min(1).max(64).describe('Provider id') }).strict();
const ifMatch = z.object({
  'if-match': z.string().max(200).optional().describe('ETag from GET; a stale value gets 409'),
});
const metadataEntry = z.object({
  id: z.string(),
  api_base_url: z.string(),
  user_info_endpoint: z.string(),
  scopes: z.array(z.string()),
  description: z.string(),
  category: z.string(),
});

export function providersRoutes(app: FastifyInstance, deps: { providers: ProvidersService }): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { providers } = deps;
  const tags = ['providers'];

  r.post(
    '/providers',
    {
      schema: {
        operationId: 'createProvider',
        tags,
        summary: 'Register a provider',
        body: z.object({ profile: profileInput }).strict(),
        response: {
          201: z.object({ id: z.string(), message: z.string() }),
          ...errorResponses(413, 409, 422),
        },
      },
    },
    async (request, reply) => {
      const { id } = await providers.create(auditContext(request), request.body.profile);
      return reply.status(201).send({ id, message: 'provider created' });
    },
  );

  r.get(
    '/providers',
    {
      schema: {
        operationId: 'listProviders',
        tags,
        summary: 'Live providers as [{id, name}] (an empty list, never null)',
        response: { 200: z.array(z.object({ id: z.string(), name: z.string() })), ...errorResponses() },
      },
    },
    async () => providers.list(),
  );

  r.get(
    '/providers/metadata',
    {
      schema: {
        operationId: 'providerMetadata',
        tags,
        summary: 'Providers grouped by auth type, for connect UIs',
        response: { 200: z.record(z.string(), z.record(z.string(), metadataEntry)), ...errorResponses() },
      },
    },
    async (request) => providers.metadata(request.principal),
  );

  r.get(
    '/providers/by-name/:name',
    {
      schema: {
        operationId: 'providerIdByName',
        tags,
        summary: 'The id of a live provider, by name or alias',
        params: z.object({ name: z.string().min(1).max(64) }).strict(),
        response: { 200: z.object({ id: z.string() }), ...errorResponses(404) },
      },
    },
    async (request) => ({ id: (await providers.resolve(request.params.name)).id }),
  );

  r.get(
    '/providers/:id',
    {
      schema: {
        operationId: 'getProvider',
        tags,
        summary: 'A provider profile (the client secret is never returned)',
        params: idParams,
        response: { 200: providerView, ...errorResponses(404) },
      },
    },
    async (request, reply) => {
      const view = await providers.get(request.params.id);
      return reply.header('etag', `"${view.version}"`).send(view);
    },
  );

  r.put(
    '/providers/:id',
    {
      schema: {
        operationId: 'replaceProvider',
        tags,
        summary: 'Replace a profile; an omitted client_secret keeps the stored one',
        params: idParams,
        headers: ifMatch,
        body: z.object({ profile: profileInput }).strict(),
        response: { 200: providerView, ...errorResponses(404, 409, 413, 422) },
      },
    },
    async (request, reply) => {
      const view = await providers.replace(
        auditContext(request),
        request.params.id,
        request.body.profile,
        request.headers['if-match'],
      );
      return reply.header('etag', `"${view.version}"`).send(view);
    },
  );

  r.patch(
    '/providers/:id',
    {
      schema: {
        operationId: 'patchProvider',
        tags,
        summary: 'Change some fields; null clears one; the result is validated like POST',
        params: idParams,
        headers: ifMatch,
        body: z.object({ profile: profilePatch }).strict(),
        response: { 200: providerView, ...errorResponses(404, 409, 413, 422) },
      },
    },
    async (request, reply) => {
      const view = await providers.patch(
        auditContext(request),
        request.params.id,
        request.body.profile,
        request.headers['if-match'],
      );
      return reply.header('etag', `"${view.version}"`).send(view);
    },
  );

  r.delete(
    '/providers/:id',
    {
      schema: {
        operationId: 'deleteProvider',
        tags,
        summary: 'Soft-delete a provider: its name, aliases and client secret are released',
        params: idParams,
        headers: ifMatch,
        response: { 200: z.object({ id: z.string(), message: z.string() }), ...errorResponses(404, 409) },
      },
    },
    async (request) => {
      await providers.remove(auditContext(request), request.params.id, request.headers['if-match']);
      return { id: request.params.id, message: 'provider deleted' };
    },
  );

  const aliasesResponse = z.object({ aliases: z.array(z.string()) });

  r.get(
    '/providers/:id/aliases',
    {
      schema: {
        operationId: 'listProviderAliases',
        tags,
        params: idParams,
        response: { 200: aliasesResponse, ...errorResponses(404) },
      },
    },
    async (request) => ({ aliases: await providers.aliases(request.params.id) }),
  );

  r.post(
    '/providers/:id/aliases',
    {
      schema: {
        operationId: 'addProviderAlias',
        tags,
        summary: 'Add a human name (such as google-prod) that resolves to this provider',
        params: idParams,
        body: z.object({ alias: providerName }).strict(),
        response: { 201: aliasesResponse, ...errorResponses(404, 409, 413) },
      },
    },
    async (request, reply) =>
      reply.status(201).send({
        aliases: await providers.addAlias(auditContext(request), request.params.id, request.body.alias),
      }),
  );

  r.delete(
    '/providers/:id/aliases/:alias',
    {
      schema: {
        operationId: 'removeProviderAlias',
        tags,
        params: z.object({ id: z.string().min(1).max(64), alias: z.string().min(1).max(64) }).strict(),
        response: { 200: z.object({ message: z.string() }), ...errorResponses(404) },
      },
    },
    async (request) => {
      await providers.removeAlias(auditContext(request), request.params.id, request.params.alias);
      return { message: 'alias removed' };
    },
  );
}
