import type { FastifyInstance, FastifyRequest, FastifySchemaCompiler } from 'fastify';
import { validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import * as z from 'zod';
import { commonError } from '../../errors/common.errors.ts';
import { auditContext } from '../../http/context.ts';
import { errorResponses } from '../../http/schemas.ts';
import type { CatalogService } from '../catalog/catalog.service.ts';
import {
  type ProfileInput,
  type ProfilePatch,
  profileInput,
  profilePatch,
  providerName,
  providerView,
  withoutZeroEnums,
} from './providers.schemas.ts';
import type { ProvidersService } from './providers.service.ts';

const idParams = z.object({ id: z.string().min(1).max(64).describe('Provider id') }).strict();
const ifMatch = z.object({
  'if-match': z.string().max(200).optional().describe('ETag from GET; a stale value gets 409'),
});
const warnings = z
  .array(
    z.object({
      code: z.enum(['id_token_verified', 'id_token_discarded', 'id_token_undecided']),
      message: z.string(),
    }),
  )
  .optional()
  .describe(
    'Present when the broker will do something the profile does not say: for openid without enable_discovery, whether id_tokens are verified or discarded',
  );
const wrappedInput = z.object({ profile: profileInput }).strict();
const wrappedPatch = z.object({ profile: profilePatch }).strict();
/** PUT: the original's bare profile, or Nexus's `{profile}`. */
const replaceBody = z.union([wrappedInput, profileInput]);
/** PATCH: the original's flat map of the fields to change, or Nexus's `{profile}`. */
const patchBody = z.union([wrappedPatch, profilePatch]);

/**
 * PUT and PATCH take two forms, documented as a union. A zod union reports the problems of the
 * form that failed least badly (a `{profile}` body with a bad name would be answered "profile:
 * unknown field" by the bare form), so the form is chosen by whether the body has a `profile` key
 * and the body is validated by that form alone: its problems are named where they are.
 */
function eitherForm<S>(wrapped: z.ZodType, bare: z.ZodType): FastifySchemaCompiler<S> {
  return (route) => {
    const zodRoute = route as unknown as Parameters<typeof validatorCompiler>[0];
    if (route.httpPart !== 'body') return validatorCompiler(zodRoute);
    const asWrapped = validatorCompiler({ ...zodRoute, schema: wrapped });
    const asBare = validatorCompiler({ ...zodRoute, schema: bare });
    return (data) =>
      typeof data === 'object' && data !== null && 'profile' in data ? asWrapped(data) : asBare(data);
  };
}

/** The profile of either form (neither profile schema has a `profile` field). */
function unwrap<T extends object>(body: { profile: T } | T): T {
  return 'profile' in body ? (body as { profile: T }).profile : (body as T);
}

/** `auth_type: ""` and `auth_header: ""` in a body (bare or `{profile}`) are not given (withoutZeroEnums). */
async function zeroEnumsAbsent(request: FastifyRequest): Promise<void> {
  const body = request.body;
  if (typeof body !== 'object' || body === null) return;
  withoutZeroEnums('profile' in body ? body.profile : body);
}

/**
 * POST takes only `{profile: {...}}`. A bare profile would be answered with one "unknown field"
 * per field and no word on what is missing (issue #24): a body that has no `profile` but a
 * profile's own `name` or `auth_type` is answered with the fix instead.
 */
async function hintUnwrappedProfile(request: FastifyRequest): Promise<void> {
  const body = request.body;
  if (typeof body !== 'object' || body === null || Array.isArray(body) || 'profile' in body) return;
  if (!('name' in body) && !('auth_type' in body) && !('template' in body)) return;
  throw commonError('invalid_request', {
    message: 'The request body is not valid: wrap the provider profile in {"profile": {...}}.',
    details: [
      { path: 'body.profile', message: 'required: send {"profile": {"name": ..., "auth_type": ..., ...}}' },
      ...Object.keys(body)
        .slice(0, 20)
        .map((key) => ({
          path: `body.${key.slice(0, 64)}`,
          message: 'unknown field (belongs inside profile)',
        })),
    ],
  });
}

/**
 * A profile naming a catalogue `template` (decision 0015) is expanded before the schema sees it:
 * the expansion, explicit fields winning, is then validated and written as any profile. POST's
 * `{profile}`, and PUT's either form.
 */
function expandTemplate(catalog: CatalogService) {
  return async (request: FastifyRequest): Promise<void> => {
    const body = request.body;
    if (typeof body !== 'object' || body === null || Array.isArray(body)) return;
    if ('profile' in body) {
      const wrapped = body as { profile: unknown };
      wrapped.profile = await catalog.expandProfile(wrapped.profile);
    } else if (request.method === 'PUT') request.body = await catalog.expandProfile(body);
  };
}

/**
 * The provider registry at its broker path (`/providers`) and at the original gateway's (`/v1/providers`),
 * with the same rules: admin keys only (scope `full` to write), the same validation and the same
 * guard on where secrets go.
 */
const PREFIXES = [
  ['', ''],
  ['/v1', 'V1'],
] as const;

const metadataEntry = z.object({
  id: z.string(),
  api_base_url: z.string(),
  user_info_endpoint: z.string(),
  scopes: z.array(z.string()),
  description: z.string(),
  category: z.string(),
});

export function providersRoutes(
  app: FastifyInstance,
  deps: { providers: ProvidersService; catalog: CatalogService },
): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { providers } = deps;
  const withTemplate = expandTemplate(deps.catalog);
  const tags = ['providers'];

  for (const [prefix, suffix] of PREFIXES)
    r.post(
      `${prefix}/providers`,
      {
        schema: {
          operationId: `createProvider${suffix}`,
          tags,
          summary:
            'Register a provider; with `template` (a `GET /catalog` key) it is made from that catalogue entry',
          body: z.object({ profile: profileInput }).strict(),
          response: {
            201: z.object({ id: z.string(), message: z.string(), warnings }),
            ...errorResponses(413, 409, 422),
          },
        },
        preValidation: [hintUnwrappedProfile, zeroEnumsAbsent, withTemplate],
      },
      async (request, reply) => {
        const created = await providers.create(auditContext(request), request.body.profile);
        return reply.status(201).send({
          id: created.id,
          message: 'provider created',
          ...(created.warnings && { warnings: created.warnings }),
        });
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

  r.delete(
    '/providers/by-name/:name',
    {
      schema: {
        operationId: 'deleteProviderByName',
        tags,
        summary: 'Soft-delete the live provider of that name (or alias), as DELETE /providers/{id}',
        params: z.object({ name: z.string().min(1).max(64) }).strict(),
        headers: ifMatch,
        response: { 200: z.object({ id: z.string(), message: z.string() }), ...errorResponses(404, 409) },
      },
    },
    async (request) => {
      const id = await providers.removeByName(
        auditContext(request),
        request.params.name,
        request.headers['if-match'],
      );
      return { id, message: 'provider deleted' };
    },
  );

  for (const [prefix, suffix] of PREFIXES) {
    r.get(
      `${prefix}/providers/:id`,
      {
        schema: {
          operationId: `getProvider${suffix}`,
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
      `${prefix}/providers/:id`,
      {
        schema: {
          operationId: `replaceProvider${suffix}`,
          tags,
          summary:
            'Replace a profile (given bare, or as {profile}); an omitted client_secret keeps the stored one',
          params: idParams,
          headers: ifMatch,
          body: replaceBody,
          response: { 200: providerView.extend({ warnings }), ...errorResponses(404, 409, 413, 422) },
        },
        validatorCompiler: eitherForm(wrappedInput, profileInput),
        preValidation: [zeroEnumsAbsent, withTemplate],
      },
      async (request, reply) => {
        const view = await providers.replace(
          auditContext(request),
          request.params.id,
          unwrap<ProfileInput>(request.body),
          request.headers['if-match'],
        );
        return reply.header('etag', `"${view.version}"`).send(view);
      },
    );

    r.patch(
      `${prefix}/providers/:id`,
      {
        schema: {
          operationId: `patchProvider${suffix}`,
          tags,
          summary:
            'Change some fields (a flat map such as {"scopes": [...]}, or {profile}); null clears one; the result is validated like POST',
          params: idParams,
          headers: ifMatch,
          body: patchBody,
          response: { 200: providerView.extend({ warnings }), ...errorResponses(404, 409, 413, 422) },
        },
        validatorCompiler: eitherForm(wrappedPatch, profilePatch),
        preValidation: zeroEnumsAbsent,
      },
      async (request, reply) => {
        const view = await providers.patch(
          auditContext(request),
          request.params.id,
          unwrap<ProfilePatch>(request.body),
          request.headers['if-match'],
        );
        return reply.header('etag', `"${view.version}"`).send(view);
      },
    );

    r.delete(
      `${prefix}/providers/:id`,
      {
        schema: {
          operationId: `deleteProvider${suffix}`,
          tags,
          summary: 'Soft-delete a provider: its name, aliases and client secret are released',
          params: idParams,
          headers: ifMatch,
          response: {
            200: z.object({ id: z.string(), message: z.string() }),
            ...errorResponses(404, 409),
          },
        },
      },
      async (request) => {
        await providers.remove(auditContext(request), request.params.id, request.headers['if-match']);
        return { id: request.params.id, message: 'provider deleted' };
      },
    );
  }

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
