import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import * as z from 'zod';
import { auditContext } from '../../http/context.ts';
import { errorResponses } from '../../http/schemas.ts';
import type { AgentsService } from './agents.service.ts';
import { agentJwks } from './jwks.ts';

// RFC 6749 §3.3 scope-token; custom scopes such as `crm:read` fit it too.
const scope = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/, 'a scope is printable ASCII without spaces, quotes or backslashes');
const agentId = z
  .string()
  .min(1)
  .max(64)
  .regex(
    /^[a-z0-9][a-z0-9._-]*$/,
    'lower-case letters, digits, dot, dash and underscore; starts with a letter or digit',
  );
const ref = z.string().min(1).max(64);
const workspace = z.string().min(1).max(200);
const jwksUri = z
  .url({ protocol: /^https$/ })
  .max(2048)
  .describe("https URL of the agent's JWKS (private_key_jwt)");

const grants = {
  description: z.string().max(500).optional(),
  allowed_scopes: z.array(scope).max(100).describe('Scopes the agent may request (provider or custom)'),
  allowed_providers: z
    .array(ref)
    .max(100)
    .describe(
      'Providers (name, alias or id) whose connections the agent may use; ["*"] for any, [] for none',
    ),
  allowed_workspaces: z
    .array(workspace)
    .max(1000)
    .describe('Workspaces (users) whose connections the agent may use; ["*"] for any, [] for none'),
  allowed_secrets: z
    .array(
      z
        .string()
        .max(400)
        .regex(
          /^(\*|[^/\s]{1,200})\/[a-z0-9_-]{1,64}\/[A-Za-z0-9_.-]{1,128}$/,
          'a grant is "<user>/<zone>/<name>", with * for any user',
        ),
    )
    .max(1000)
    .optional()
    .describe(
      'User secrets the agent may read without acting for the user: "<user>/<zone>/<name>" ("*" for the user)',
    ),
};

const agentView = z
  .object({
    id: z.string(),
    agent_id: z.string(),
    description: z.string(),
    allowed_scopes: z.array(z.string()),
    allowed_providers: z.array(z.string()).describe('Provider ids, or "*"'),
    allowed_workspaces: z.array(z.string()),
    allowed_secrets: z.array(z.string()),
    active: z.boolean(),
    jwks_uri: z.string().nullable(),
    has_jwks: z.boolean(),
    jwks: z
      .object({ keys: z.array(z.record(z.string(), z.unknown())) })
      .nullable()
      .describe('The public keys registered for private_key_jwt (public by nature)'),
    secrets: z.array(z.object({ id: z.string(), created_at: z.string(), expires_at: z.string().nullable() })),
    version: z.number().int(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .meta({ id: 'Agent' });

export function agentsRoutes(app: FastifyInstance, deps: { agents: AgentsService }): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['agents'];
  const params = z.object({ id: ref }).strict();

  r.post(
    '/admin/v1/agents',
    {
      schema: {
        operationId: 'createAgent',
        tags,
        summary: 'Register an agent; its client secret (when generated) is returned once',
        body: z
          .object({
            agent_id: agentId,
            ...grants,
            allowed_providers: grants.allowed_providers.default([]),
            allowed_workspaces: grants.allowed_workspaces.default([]),
            active: z.boolean().optional(),
            jwks: agentJwks.optional(),
            jwks_uri: jwksUri.optional(),
            generate_secret: z.boolean().default(true).describe('Issue a client secret (default true)'),
          })
          .strict(),
        response: { 201: agentView.extend({ client_secret: z.string().optional() }), ...errorResponses(409) },
      },
    },
    async (request, reply) => {
      reply.status(201);
      return deps.agents.create(auditContext(request), request.body);
    },
  );

  r.get(
    '/admin/v1/agents',
    {
      schema: {
        operationId: 'listAgents',
        tags,
        summary: 'Live agents (never their secrets)',
        response: { 200: z.object({ agents: z.array(agentView) }), ...errorResponses() },
      },
    },
    async () => ({ agents: await deps.agents.list() }),
  );

  r.get(
    '/admin/v1/agents/:id',
    {
      schema: {
        operationId: 'getAgent',
        tags,
        summary: 'One agent, by id or agent_id',
        params,
        response: { 200: agentView, ...errorResponses(404) },
      },
    },
    async (request, reply) => {
      const agent = await deps.agents.get(request.params.id);
      reply.header('etag', `"${agent.version}"`);
      return agent;
    },
  );

  r.patch(
    '/admin/v1/agents/:id',
    {
      schema: {
        operationId: 'updateAgent',
        tags,
        summary: 'Change an agent; `active: false` deactivates it at once (its tokens stop working)',
        params,
        headers: z.object({ 'if-match': z.string().max(256).optional() }),
        body: z
          .object({
            description: grants.description,
            allowed_scopes: grants.allowed_scopes.optional(),
            allowed_providers: grants.allowed_providers.optional(),
            allowed_workspaces: grants.allowed_workspaces.optional(),
            allowed_secrets: grants.allowed_secrets,
            active: z.boolean().optional(),
            jwks: agentJwks.nullable().optional(),
            jwks_uri: jwksUri.nullable().optional(),
          })
          .strict(),
        response: { 200: agentView, ...errorResponses(404, 409) },
      },
    },
    async (request) =>
      deps.agents.update(auditContext(request), request.params.id, request.body, request.headers['if-match']),
  );

  r.delete(
    '/admin/v1/agents/:id',
    {
      schema: {
        operationId: 'deleteAgent',
        tags,
        summary: 'Delete an agent and revoke its secrets',
        params,
        headers: z.object({ 'if-match': z.string().max(256).optional() }),
        response: { 200: z.object({ id: z.string(), message: z.string() }), ...errorResponses(404, 409) },
      },
    },
    async (request) => {
      await deps.agents.remove(auditContext(request), request.params.id, request.headers['if-match']);
      return { id: request.params.id, message: 'agent deleted' };
    },
  );

  r.post(
    '/admin/v1/agents/:id/secrets',
    {
      schema: {
        operationId: 'rotateAgentSecret',
        tags,
        summary:
          'Issue a new client secret (returned once); the current ones keep working for overlap_seconds',
        params,
        body: z
          .object({
            overlap_seconds: z
              .number()
              .int()
              .min(0)
              .max(7 * 86400)
              .default(3600),
          })
          .strict()
          .default({ overlap_seconds: 3600 }),
        response: {
          201: z.object({ secret_id: z.string(), client_secret: z.string(), previous_expire_at: z.string() }),
          ...errorResponses(404),
        },
      },
    },
    async (request, reply) => {
      reply.status(201);
      return deps.agents.rotateSecret(auditContext(request), request.params.id, request.body.overlap_seconds);
    },
  );

  r.delete(
    '/admin/v1/agents/:id/secrets/:secret_id',
    {
      schema: {
        operationId: 'revokeAgentSecret',
        tags,
        summary:
          "Revoke one client secret now; the agent's access tokens and sessions issued until now end with it (its other secrets log in again)",
        params: z.object({ id: ref, secret_id: z.string().regex(/^[a-f0-9]{16}$/) }).strict(),
        response: { 200: z.object({ message: z.string() }), ...errorResponses(404) },
      },
    },
    async (request) => {
      await deps.agents.revokeSecret(auditContext(request), request.params.id, request.params.secret_id);
      return { message: 'secret revoked' };
    },
  );
}
