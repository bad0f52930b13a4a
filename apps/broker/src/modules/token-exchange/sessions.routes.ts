import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import * as z from 'zod';
import { auditContext } from '../../http/context.ts';
import { errorResponses } from '../../http/schemas.ts';
import type { AgentsService } from '../agents/agents.service.ts';
import type { CustomScopes } from '../agents/custom-scopes.ts';
import type { OnBehalfOf } from './obo.ts';
import { openedSession, sessionView } from './session-views.ts';
import type { AgentSessions } from './sessions.ts';

const scope = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/, 'a scope is printable ASCII without spaces, quotes or backslashes');

/** A filter's text: no control character (PostgreSQL refuses NUL in text: 400, not 500). */
const text = (max: number) =>
  z
    .string()
    .trim()
    .min(1)
    .max(max)
    // A refinement, not a pattern: OpenAPI consumers (schemathesis) cannot build \P{Cc} classes.
    .refine((v) => !/\p{Cc}/u.test(v), 'no control characters');

export function sessionsRoutes(
  app: FastifyInstance,
  deps: {
    sessions: AgentSessions;
    agents: AgentsService;
    scopes: CustomScopes;
    onBehalfOf: OnBehalfOf;
    maxTtlSeconds: number;
  },
): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['agent sessions'];
  const params = z.object({ id: z.string().uuid() }).strict();
  const ownerOf = (request: FastifyRequest) =>
    request.principal?.kind === 'agent' ? request.principal : null;

  r.post(
    '/v1/agent-sessions',
    {
      config: { auth: 'agent' },
      schema: {
        operationId: 'openAgentSession',
        tags,
        summary:
          "Open a bounded session: scopes within the agent's allowed_scopes (and the connection's), TTL bounded",
        body: z
          .object({
            scopes: z.array(scope).min(1).max(50),
            ttl_seconds: z
              .number()
              .int()
              .min(60)
              .max(deps.maxTtlSeconds)
              .default(Math.min(900, deps.maxTtlSeconds)),
            connection_id: z
              .string()
              .uuid()
              .optional()
              .describe('The connection whose provider scopes are used'),
            agent_id: z
              .string()
              .min(1)
              .max(64)
              .optional()
              .describe('Only with an admin key: the agent to act as'),
          })
          .strict(),
        response: { 201: openedSession, ...errorResponses(404) },
      },
    },
    async (request, reply) => {
      const agent = await deps.agents.actingAgent(request.principal, request.body.agent_id);
      const opened = await deps.sessions.open(auditContext(request), agent, {
        scopes: request.body.scopes,
        ttlSeconds: request.body.ttl_seconds,
        connectionId: request.body.connection_id,
      });
      reply.status(201);
      return opened;
    },
  );

  r.post(
    '/v1/agent-sessions/obo',
    {
      config: { auth: 'agent' },
      schema: {
        operationId: 'openOboSession',
        tags,
        summary:
          "Act on behalf of a user: their token from a trusted issuer; every scope must be in the user's permissions and the agent's allowed_scopes",
        body: z
          .object({
            user_token: z
              .string()
              .min(1)
              .max(16384)
              .describe("The user's token from a trusted issuer (a JWT)"),
            scopes: z.array(scope).min(1).max(50),
            ttl_seconds: z
              .number()
              .int()
              .min(60)
              .max(deps.maxTtlSeconds)
              .default(Math.min(900, deps.maxTtlSeconds)),
            connection_id: z.string().uuid().optional().describe("One of the user's connections"),
            agent_id: z
              .string()
              .min(1)
              .max(64)
              .optional()
              .describe('Only with an admin key: the agent to act as'),
          })
          .strict(),
        response: { 201: openedSession, ...errorResponses(404) },
      },
    },
    async (request, reply) => {
      const agent = await deps.agents.actingAgent(request.principal, request.body.agent_id);
      const opened = await deps.onBehalfOf(auditContext(request), agent, {
        userToken: request.body.user_token,
        scopes: request.body.scopes,
        ttlSeconds: request.body.ttl_seconds,
        connectionId: request.body.connection_id,
      });
      reply.status(201);
      return opened;
    },
  );

  r.get(
    '/v1/agent-sessions/:id',
    {
      config: { auth: 'agent' },
      schema: {
        operationId: 'getAgentSession',
        tags,
        summary: "A session of the calling agent (operators see every agent's)",
        params,
        response: { 200: sessionView, ...errorResponses(404) },
      },
    },
    async (request) => deps.sessions.get(ownerOf(request), request.params.id),
  );

  r.delete(
    '/v1/agent-sessions/:id',
    {
      config: { auth: 'agent' },
      schema: {
        operationId: 'closeAgentSession',
        tags,
        summary: 'Close a session: its session tokens fail introspection from now on',
        params,
        response: { 200: sessionView, ...errorResponses(404) },
      },
    },
    async (request) => deps.sessions.close(auditContext(request), ownerOf(request), request.params.id),
  );

  // The operator's view of every agent's sessions, on the admin surface (the /v1 routes above are
  // the agent API's, on the public one).
  r.get(
    '/admin/v1/agent-sessions',
    {
      schema: {
        operationId: 'listAgentSessions',
        tags,
        summary: "Every agent's sessions, newest first, filtered and paged (never a token)",
        querystring: z
          .object({
            agent: text(64).optional().describe('Agent by `agent_id` or id'),
            status: z.enum(['active', 'closed', 'expired']).optional(),
            acting_for: text(200).optional().describe('On-behalf-of sessions acting for this user'),
            connection_id: z.string().uuid().optional(),
            limit: z.coerce.number().int().min(1).max(200).default(50),
            cursor: z.string().max(200).optional().describe('`next_cursor` from the previous page'),
          })
          .strict(),
        response: {
          200: z.object({
            sessions: z.array(sessionView),
            next_cursor: z.string().nullable().describe('Pass as cursor for the next page; null at the end'),
          }),
          ...errorResponses(404),
        },
      },
    },
    async (request) => {
      const q = request.query;
      const agentUuid = q.agent === undefined ? undefined : (await deps.agents.get(q.agent)).id;
      return deps.sessions.list(
        { agentUuid, status: q.status, actingFor: q.acting_for, connectionId: q.connection_id },
        q.cursor,
        q.limit,
      );
    },
  );

  r.delete(
    '/admin/v1/agent-sessions/:id',
    {
      schema: {
        operationId: 'revokeAgentSession',
        tags,
        summary:
          'Close any agent session (as DELETE /v1/agent-sessions/{id} does for its agent): its session tokens fail introspection from now on',
        params,
        response: { 200: sessionView, ...errorResponses(404) },
      },
    },
    async (request) => deps.sessions.close(auditContext(request), null, request.params.id),
  );

  const scopeName = z
    .string()
    .min(1)
    .max(128)
    .regex(/^[A-Za-z0-9][A-Za-z0-9:._-]*$/, 'letters, digits, colon, dot, dash and underscore');
  r.post(
    '/admin/v1/scopes',
    {
      schema: {
        operationId: 'defineScope',
        tags,
        summary: 'Define a custom (non-OAuth) scope such as crm:read',
        body: z.object({ name: scopeName, description: z.string().max(500).default('') }).strict(),
        response: { 201: z.object({ name: z.string(), description: z.string() }), ...errorResponses(409) },
      },
    },
    async (request, reply) => {
      reply.status(201);
      return deps.scopes.define(auditContext(request), request.body.name, request.body.description);
    },
  );
  r.get(
    '/admin/v1/scopes',
    {
      schema: {
        operationId: 'listScopes',
        tags,
        summary: 'Custom scopes of this deployment',
        response: {
          200: z.object({ scopes: z.array(z.object({ name: z.string(), description: z.string() })) }),
          ...errorResponses(),
        },
      },
    },
    async () => ({ scopes: await deps.scopes.list() }),
  );
  r.delete(
    '/admin/v1/scopes/:name',
    {
      schema: {
        operationId: 'deleteScope',
        tags,
        summary: 'Remove a custom scope definition',
        params: z.object({ name: scopeName }).strict(),
        response: { 200: z.object({ message: z.string() }), ...errorResponses(404) },
      },
    },
    async (request) => {
      await deps.scopes.remove(auditContext(request), request.params.name);
      return { message: 'scope deleted' };
    },
  );
}
