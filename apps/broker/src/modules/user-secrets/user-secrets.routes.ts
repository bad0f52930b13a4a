import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import * as z from 'zod';
import { commonError } from '../../errors/common.errors.ts';
import { errorFrom } from '../../errors/nexus-error.ts';
import { auditContext } from '../../http/context.ts';
import { errorResponses, errorSchema } from '../../http/schemas.ts';
import { type AgentSessions, sessionHasScope } from '../token-exchange/sessions.ts';
import { userSecretErrors } from './user-secrets.errors.ts';
import {
  agentHoldsSecretGrant,
  MAX_PAGE,
  MAX_SECRET_VALUE,
  MAX_USER_ID,
  referencedNames,
  SECRET_NAME,
  SECRET_ZONE,
  type SecretOwner,
  type UserSecrets,
} from './user-secrets.service.ts';

const name = z
  .string()
  .regex(SECRET_NAME, 'letters, digits, dot, dash and underscore; at most 128')
  .describe('Secret name (unique per user and zone)');
const zone = z
  .string()
  .regex(SECRET_ZONE, 'lower-case letters, digits, dash and underscore; at most 64')
  .default('default');
const userId = z
  .string()
  .trim()
  .min(1)
  .max(MAX_USER_ID)
  .optional()
  .describe('The owning user (required with an admin key)');
const ownerQuery = z.object({ user_id: userId, zone }).strict();
const metadata = z
  .object({
    name: z.string(),
    zone: z.string(),
    description: z.string(),
    current_version: z.number().int(),
    enabled: z.boolean(),
    deleted: z.boolean(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .meta({ id: 'UserSecret' });
const nextCursor = z.string().nullable().describe('Pass as `cursor` for the next page; null on the last');
const secretList = z.object({ secrets: z.array(metadata), next_cursor: nextCursor });
const versionList = z.object({
  versions: z.array(z.object({ version: z.number().int(), created_at: z.string(), created_by: z.string() })),
  next_cursor: nextCursor,
});
const limit = z.coerce
  .number()
  .int()
  .min(1)
  .max(MAX_PAGE)
  .optional()
  .describe(`At most ${MAX_PAGE} (the default)`);
/** Paging of the secret lists: after a name, in byte order. */
const namePage = {
  cursor: z.string().regex(SECRET_NAME, 'a secret name (the `next_cursor` of the page before)').optional(),
  limit,
};
/** Paging of the version lists: below a version, newest first. */
const versionPage = {
  cursor: z
    .string()
    .regex(/^[1-9][0-9]{0,8}$/, 'a version number (the `next_cursor` of the page before)')
    .optional(),
  limit,
};

export const SESSION_HEADER = 'x-nexus-session';
/** The scopes an on-behalf-of session needs to read, or to change, the secrets of the user it acts for. */
export const SECRET_SCOPES = { read: 'secrets:read', write: 'secrets:write' } as const;

/**
 * Whose secrets a request reaches. An operator names the user. An agent reads a secret it holds a
 * grant for by name (`allowed_secrets`), or reaches a user's secrets while acting for them: it
 * presents its on-behalf-of session token in `X-Nexus-Session`, and the session's scopes (the
 * user's permissions and the agent's scopes both) include `secrets:read`, or `secrets:write` for a
 * call that changes them. Grants by name only ever read.
 */
export async function secretOwner(
  request: FastifyRequest,
  sessions: Pick<AgentSessions, 'introspect'>,
  query: { user_id?: string | undefined; zone: string },
  access: keyof typeof SECRET_SCOPES,
  /** The names the call reads: an agent's explicit grants for every one of them are enough. */
  grantedNames?: readonly string[],
): Promise<SecretOwner> {
  const p = request.principal;
  if (p?.kind === 'admin') {
    if (query.user_id === undefined)
      throw commonError('invalid_request', {
        message: 'With an admin key, name the user: user_id.',
        details: [{ path: 'querystring.user_id', message: 'required with an admin key' }],
      });
    return { userId: query.user_id, zone: query.zone };
  }
  if (
    p?.kind === 'agent' &&
    access === 'read' &&
    grantedNames !== undefined &&
    grantedNames.length > 0 &&
    query.user_id !== undefined
  ) {
    const owner = { userId: query.user_id, zone: query.zone };
    if (grantedNames.every((n) => agentHoldsSecretGrant(p.allowedSecrets, owner, n))) return owner;
  }
  const header = request.headers[SESSION_HEADER];
  const token = typeof header === 'string' ? header : undefined;
  const session = token === undefined || token.length > 8192 ? undefined : await sessions.introspect(token);
  // Like another user's secret, what this credential may not read does not exist for it (404).
  if (
    p?.kind !== 'agent' ||
    session === undefined ||
    !session.active ||
    session.obo !== true ||
    session.client_id !== p.agentId
  )
    throw errorFrom(userSecretErrors, 'user_secret_not_found', {
      message:
        "No such secret for this credential. An agent reads a user's secrets while acting for them (its on-behalf-of session token in X-Nexus-Session) or with a grant for that name.",
    });
  const actingFor = String(session.acting_for);
  // Another user's secrets do not exist for this caller.
  if (query.user_id !== undefined && query.user_id !== actingFor)
    throw errorFrom(userSecretErrors, 'user_secret_not_found');
  const scope = SECRET_SCOPES[access];
  if (!sessionHasScope(session, scope))
    throw errorFrom(userSecretErrors, 'user_secret_scope_missing', {
      message: `The on-behalf-of session lacks the ${scope} scope: the user's permissions and the agent's scopes must both include it.`,
      details: { scope },
    });
  return { userId: actingFor, zone: query.zone };
}

export function userSecretsRoutes(
  app: FastifyInstance,
  deps: { secrets: UserSecrets; sessions: Pick<AgentSessions, 'introspect'> },
): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['user secrets'];
  const config = { auth: 'agent' as const };
  const reader = (
    request: FastifyRequest,
    q: { user_id?: string | undefined; zone: string },
    name?: string,
  ) => secretOwner(request, deps.sessions, q, 'read', name === undefined ? undefined : [name]);
  const writer = (request: FastifyRequest, q: { user_id?: string | undefined; zone: string }) =>
    secretOwner(request, deps.sessions, q, 'write');
  const params = z.object({ name }).strict();
  // Without USER_SECRETS_KEY every route answers 501 user_secrets_not_configured (issue #24).
  const notConfigured = { 501: errorSchema };

  r.post(
    '/api/v2/secrets',
    {
      config,
      schema: {
        operationId: 'putUserSecret',
        tags,
        summary: 'Create a secret, or add a version to it (the new version becomes current)',
        querystring: ownerQuery,
        body: z
          .object({
            name,
            value: z.string().min(1).max(MAX_SECRET_VALUE).describe('The secret (never returned by lists)'),
            description: z.string().max(500).optional(),
          })
          .strict(),
        response: {
          201: metadata.extend({ version: z.number().int() }),
          ...errorResponses(409, 503),
          ...notConfigured,
        },
      },
    },
    async (request, reply) => {
      reply.status(201);
      return deps.secrets.put(auditContext(request), await writer(request, request.query), request.body);
    },
  );

  r.get(
    '/api/v2/secrets',
    {
      config,
      schema: {
        operationId: 'listUserSecrets',
        tags,
        summary: 'Metadata of the secrets of one user and zone (never values)',
        querystring: ownerQuery.extend({ include_deleted: z.stringbool().default(false), ...namePage }),
        response: { 200: secretList, ...errorResponses(), ...notConfigured },
      },
    },
    async (request) =>
      deps.secrets.list(await reader(request, request.query), request.query.include_deleted, request.query),
  );

  /*
   * The same metadata for operators on the admin surface: the console is served by the admin
   * listener, which in split mode (ADMIN_PORT, `--role`) does not serve the agent API above.
   */
  const adminOwner = ownerQuery.required({ user_id: true });
  const ownerOf = (q: { user_id: string; zone: string }): SecretOwner => ({
    userId: q.user_id,
    zone: q.zone,
  });
  r.get(
    '/admin/v1/user-secrets',
    {
      config: { scope: 'full' },
      schema: {
        operationId: 'adminListUserSecrets',
        tags,
        summary: "Metadata of one user's secrets in a zone, for operators (never values)",
        description:
          'The admin-surface twin of `GET /api/v2/secrets` (the console uses it); needs a key of scope `full`.',
        querystring: adminOwner.extend({ include_deleted: z.stringbool().default(false), ...namePage }),
        response: { 200: secretList, ...errorResponses(), ...notConfigured },
      },
    },
    async (request) =>
      deps.secrets.list(ownerOf(request.query), request.query.include_deleted, request.query),
  );
  r.get(
    '/admin/v1/user-secrets/:name/versions',
    {
      config: { scope: 'full' },
      schema: {
        operationId: 'adminListUserSecretVersions',
        tags,
        summary: 'Versions of a user secret, newest first, for operators (no values)',
        params,
        querystring: adminOwner.extend(versionPage),
        response: {
          200: versionList,
          ...errorResponses(404),
          ...notConfigured,
        },
      },
    },
    async (request) => deps.secrets.versions(ownerOf(request.query), request.params.name, request.query),
  );

  r.get(
    '/api/v2/secrets/:name',
    {
      config,
      schema: {
        operationId: 'readUserSecret',
        tags,
        summary: 'The value (current, or ?version=N); audited as key_accessed',
        params,
        querystring: ownerQuery.extend({ version: z.coerce.number().int().min(1).optional() }),
        response: {
          200: z.object({ name: z.string(), zone: z.string(), version: z.number().int(), value: z.string() }),
          ...errorResponses(404, 409, 503),
          ...notConfigured,
        },
      },
    },
    async (request) =>
      deps.secrets.read(
        auditContext(request),
        await reader(request, request.query, request.params.name),
        request.params.name,
        request.query.version,
      ),
  );

  r.get(
    '/api/v2/secrets/:name/versions',
    {
      config,
      schema: {
        operationId: 'listUserSecretVersions',
        tags,
        summary: 'Versions of a secret, newest first (no values)',
        params,
        querystring: ownerQuery.extend(versionPage),
        response: {
          200: versionList,
          ...errorResponses(404),
          ...notConfigured,
        },
      },
    },
    async (request) =>
      deps.secrets.versions(await reader(request, request.query), request.params.name, request.query),
  );

  r.delete(
    '/api/v2/secrets/:name',
    {
      config,
      schema: {
        operationId: 'deleteUserSecret',
        tags,
        summary: 'Soft-delete a secret (restore brings it back with its versions)',
        params,
        querystring: ownerQuery,
        response: { 200: z.object({ message: z.string() }), ...errorResponses(404), ...notConfigured },
      },
    },
    async (request) => {
      await deps.secrets.remove(
        auditContext(request),
        await writer(request, request.query),
        request.params.name,
      );
      return { message: 'secret deleted' };
    },
  );

  for (const [verb, summary] of [
    ['restore', 'Undo a delete'],
    ['enable', 'Allow reads again'],
    ['disable', 'Refuse reads (and resolution) until enabled'],
  ] as const) {
    r.post(
      `/api/v2/secrets/:name/${verb}`,
      {
        config,
        schema: {
          operationId: `${verb}UserSecret`,
          tags,
          summary,
          params,
          querystring: ownerQuery,
          response: { 200: metadata, ...errorResponses(404), ...notConfigured },
        },
      },
      async (request) => {
        const who = await writer(request, request.query);
        const ctx = auditContext(request);
        if (verb === 'restore') return deps.secrets.restore(ctx, who, request.params.name);
        return deps.secrets.setEnabled(ctx, who, request.params.name, verb === 'enable');
      },
    );
  }

  r.post(
    '/api/v2/secrets/resolve',
    {
      config,
      schema: {
        operationId: 'resolveUserSecrets',
        tags,
        summary:
          'Replace every nexus-secret:NAME in an object by its value, in one round trip (each read audited)',
        querystring: ownerQuery,
        body: z
          .object({
            config: z.unknown().describe('Any JSON value; strings "nexus-secret:NAME" are replaced'),
            leave_unresolved: z
              .boolean()
              .default(false)
              .describe('Keep unresolved references and report them'),
          })
          .strict(),
        response: {
          200: z.object({
            config: z.unknown(),
            unresolved: z.array(z.object({ name: z.string(), reason: z.enum(['not_found', 'disabled']) })),
          }),
          ...errorResponses(422, 503),
          ...notConfigured,
        },
      },
    },
    async (request) => {
      // An agent with a grant for every name referred to needs no on-behalf-of session.
      const names = [...referencedNames(request.body.config)];
      const result = await deps.secrets.resolve(
        auditContext(request),
        await secretOwner(request, deps.sessions, request.query, 'read', names),
        request.body.config,
        request.body.leave_unresolved,
      );
      return { config: result.resolved, unresolved: result.unresolved };
    },
  );
}
