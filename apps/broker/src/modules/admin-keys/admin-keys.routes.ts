import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import * as z from 'zod';
import { ADMIN_SCOPES } from '../../auth/principal.ts';
import { auditContext } from '../../http/context.ts';
import { errorResponses } from '../../http/schemas.ts';
import type { AdminKeysService } from './admin-keys.service.ts';

const scope = z
  .enum(ADMIN_SCOPES)
  .describe(
    "`full`: every route. `read`: the admin API's GET routes, except those that answer with a credential. `agent`: the agent-facing API only (`/v1/*`, the credential proxy, user secrets), with an admin key's reach",
  );

const keyView = z
  .object({
    id: z.string(),
    name: z.string(),
    scope,
    created_at: z.string(),
    created_by: z.string(),
    last_used_at: z.string().nullable(),
    revoked_at: z.string().nullable(),
  })
  .meta({ id: 'AdminKey' });

const currentKeyView = z
  .object({
    id: z.string().describe("The stored key's id, or `env:<name>` for a key from API_KEY or API_KEYS"),
    name: z.string(),
    scope,
    source: z
      .enum(['stored', 'environment'])
      .describe(
        '`stored`: made with the API or the CLI (revocable); `environment`: from API_KEY or API_KEYS',
      ),
  })
  .meta({ id: 'CurrentAdminKey' });

const keyName = z
  .string()
  .trim()
  .min(1)
  .max(64)
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9_.-]*$/,
    'letters, digits, dot, dash and underscore; must start with a letter or digit',
  );

export function adminKeysRoutes(app: FastifyInstance, deps: { adminKeys: AdminKeysService }): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['admin keys'];

  r.post(
    '/admin/v1/admin-keys',
    {
      schema: {
        operationId: 'createAdminKey',
        tags,
        summary: 'Create an admin API key (the key is returned once); its scope defaults to full',
        body: z.object({ name: keyName, scope: scope.default('full') }).strict(),
        response: {
          201: keyView.extend({ key: z.string().describe('The API key; shown only in this response') }),
          ...errorResponses(413, 409),
        },
      },
    },
    async (request, reply) =>
      reply
        .status(201)
        .send(await deps.adminKeys.create(auditContext(request), request.body.name, request.body.scope)),
  );

  r.get(
    '/admin/v1/admin-keys',
    {
      schema: {
        operationId: 'listAdminKeys',
        tags,
        summary: 'List admin API keys (never their values)',
        querystring: z
          .object({
            include_revoked: z
              .enum(['true', 'false'])
              .default('false')
              .transform((v) => v === 'true'),
          })
          .strict(),
        response: { 200: z.array(keyView), ...errorResponses() },
      },
    },
    async (request) => deps.adminKeys.list(request.query.include_revoked),
  );

  r.get(
    '/admin/v1/admin-keys/current',
    {
      schema: {
        operationId: 'currentAdminKey',
        tags,
        summary: 'The admin key making this call: its id, name and scope (never its value)',
        description:
          'What a client (the console) needs to know about the key it holds, e.g. whether it is read-only. Keys of scope `full` and `read` may call it; an `agent`-scope key (the agent API only) gets 403, which tells the console it cannot be used there. `current` is a path word, not a name: no key can be created with that name.',
        response: { 200: currentKeyView, ...errorResponses() },
      },
    },
    async (request) => deps.adminKeys.current(request.principal),
  );

  r.delete(
    '/admin/v1/admin-keys/:id',
    {
      schema: {
        operationId: 'revokeAdminKey',
        tags,
        summary: 'Revoke an admin API key by id or name',
        params: z.object({ id: z.string().min(1).max(64) }).strict(),
        response: { 200: keyView, ...errorResponses(404) },
      },
    },
    async (request) => deps.adminKeys.revoke(auditContext(request), request.params.id),
  );
}
