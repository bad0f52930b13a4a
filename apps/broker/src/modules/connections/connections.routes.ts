import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import * as z from 'zod';
import { errorFrom, NexusError } from '../../errors/nexus-error.ts';
import { auditContext } from '../../http/context.ts';
import { errorResponses } from '../../http/schemas.ts';
import type { ProvidersService } from '../providers/providers.service.ts';
import { revocationReason, STATUSES } from './connection-status.ts';
import { connectionView } from './connection-view.ts';
import { connectionErrors } from './connections.errors.ts';
import type { ConnectionsService } from './connections.service.ts';
import { tokenResponse } from './token-view.ts';

// Connection ids are UUIDs; anything else (a NUL byte, say) is refused before it reaches a query.
const idParams = z
  .object({
    id: z
      .string()
      .regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, 'a connection id (UUID)')
      .describe('Connection id'),
  })
  .strict();

const revokeResponse = z.object({
  connection_id: z.string(),
  status: z.literal('revoked'),
  revoked_at: z.string(),
  already_revoked: z.boolean(),
  provider_revoked: z.boolean().describe('Whether the provider confirmed the RFC 7009 revocation'),
});

export function connectionsRoutes(
  app: FastifyInstance,
  deps: { connections: ConnectionsService; providers: ProvidersService },
): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { connections, providers } = deps;
  const tags = ['agent API'];
  const tokenErrors = errorResponses(404, 409, 502, 503);

  for (const path of ['/v1/token/:id', '/connections/:id/token']) {
    r.get(
      path,
      {
        // The /v1 routes are the agent API: agent tokens are accepted there, checked per connection.
        // The admin copy answers with a credential: a read-only key may not call it.
        config: path.startsWith('/v1') ? { auth: 'agent' } : { auth: 'admin', scope: 'full' },
        schema: {
          operationId: path.startsWith('/v1') ? 'getToken' : 'getConnectionToken',
          tags,
          summary:
            'A usable credential for the connection and the strategy to apply it (refreshed first if expiring)',
          params: idParams,
          response: { 200: tokenResponse, ...tokenErrors },
        },
      },
      async (request) => connections.getToken(auditContext(request), request.principal, request.params.id),
    );
  }

  for (const path of ['/v1/refresh/:id', '/connections/:id/refresh']) {
    r.post(
      path,
      {
        // The /v1 routes are the agent API: agent tokens are accepted there, checked per connection.
        config: { auth: path.startsWith('/v1') ? 'agent' : 'admin' },
        schema: {
          operationId: path.startsWith('/v1') ? 'refreshConnection' : 'refreshConnectionAdmin',
          tags,
          summary: 'Refresh now (single-flight across replicas), then answer like the token route',
          params: idParams,
          response: { 200: tokenResponse, ...tokenErrors },
        },
      },
      async (request) => connections.refresh(auditContext(request), request.principal, request.params.id),
    );
  }

  for (const path of ['/v1/resolve', '/connections/resolve']) {
    r.get(
      path,
      {
        // The /v1 routes are the agent API: agent tokens are accepted there, checked per connection.
        // The admin copy answers with a credential: a read-only key may not call it.
        config: path.startsWith('/v1') ? { auth: 'agent' } : { auth: 'admin', scope: 'full' },
        schema: {
          operationId: path.startsWith('/v1') ? 'resolveConnection' : 'resolveConnectionAdmin',
          tags,
          summary:
            'The newest active connection of a workspace for a provider, answered like the token route',
          querystring: z
            .object({
              workspace_id: z.string().trim().min(1).max(200),
              provider_name: z.string().min(1).max(64).describe('Provider name, alias or id'),
            })
            .strict(),
          response: { 200: tokenResponse, ...tokenErrors },
        },
      },
      async (request) => {
        // An unknown provider answers exactly like a missing connection (issue #18): the route
        // says whether there is a usable connection, not which providers exist.
        const provider = await providers.resolve(request.query.provider_name).catch((error: unknown) => {
          if (error instanceof NexusError && error.code === 'provider_not_found')
            throw errorFrom(connectionErrors, 'connection_not_found');
          throw error;
        });
        return connections.resolve(
          auditContext(request),
          request.principal,
          request.query.workspace_id,
          provider.id,
        );
      },
    );
  }

  r.get(
    '/connections',
    {
      config: { auth: 'admin' },
      schema: {
        operationId: 'listConnections',
        tags: ['connections'],
        summary:
          'Connections, a page at a time, filtered by status, workspace or provider (never credentials)',
        querystring: z
          .object({
            status: z.enum(STATUSES).optional(),
            workspace_id: z.string().trim().min(1).max(200).optional(),
            provider: z.string().min(1).max(64).optional().describe('Provider name, alias or id'),
            limit: z.coerce.number().int().min(1).max(500).default(100),
            cursor: z
              .string()
              .regex(
                /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i,
                'a next_cursor from a previous page',
              )
              .optional(),
          })
          .strict(),
        response: {
          200: z.object({
            connections: z.array(connectionView),
            next_cursor: z.string().nullable().describe('Pass as cursor for the next page; null at the end'),
          }),
          ...errorResponses(404),
        },
      },
    },
    async (request) => {
      const q = request.query;
      const providerId = q.provider === undefined ? undefined : (await providers.resolve(q.provider)).id;
      return connections.list(
        { status: q.status, workspaceId: q.workspace_id, providerId },
        q.cursor,
        q.limit,
      );
    },
  );

  r.get(
    '/connections/:id',
    {
      config: { auth: 'admin' },
      schema: {
        operationId: 'getConnection',
        tags: ['connections'],
        summary: 'One connection, as the list shows it (never credentials)',
        params: idParams,
        response: { 200: connectionView, ...errorResponses(404) },
      },
    },
    async (request) => connections.view(request.principal, request.params.id),
  );

  r.post(
    '/admin/v1/connections/:id/refresh',
    {
      config: { auth: 'admin', scope: 'full' },
      schema: {
        operationId: 'refreshConnectionView',
        tags: ['connections'],
        summary:
          'Refresh now, like POST /connections/{id}/refresh, then answer the connection (no credential)',
        description:
          "For operators and the console: the refreshed connection's state, never its token (so no `connection.token_read` event; `connection.refresh_requested` records who asked). Errors as the token route's: 409 `refresh_not_supported` without a refresh token, `attention_required` when the provider refused the grant, 502 when the provider failed.",
        params: idParams,
        response: { 200: connectionView, ...tokenErrors },
      },
    },
    async (request) =>
      connections.refreshWithoutCredential(auditContext(request), request.principal, request.params.id),
  );

  r.get(
    '/v1/check-connection/:id',
    {
      config: { auth: 'agent' },
      schema: {
        operationId: 'checkConnection',
        tags,
        summary: 'The stored state of a connection',
        params: idParams,
        response: {
          200: z.object({
            connection_id: z.string(),
            status: z.enum(STATUSES),
          }),
          ...errorResponses(404),
        },
      },
    },
    async (request) => connections.check(request.principal, request.params.id),
  );

  for (const path of ['/v1/connections/:id', '/connections/:id']) {
    r.delete(
      path,
      {
        // The /v1 routes are the agent API: agent tokens are accepted there, checked per connection.
        config: { auth: path.startsWith('/v1') ? 'agent' : 'admin' },
        schema: {
          operationId: path.startsWith('/v1') ? 'revokeConnection' : 'revokeConnectionAdmin',
          tags,
          summary: 'Revoke: best-effort RFC 7009 revocation at the provider, then locally; idempotent',
          params: idParams,
          querystring: z.object({ reason: revocationReason.optional() }).strict(),
          response: { 200: revokeResponse, ...errorResponses(404) },
        },
      },
      async (request) =>
        connections.revoke(auditContext(request), request.principal, request.params.id, request.query.reason),
    );
  }

  const metadataEntry = z.object({
    id: z.string(),
    api_base_url: z.string(),
    user_info_endpoint: z.string(),
    scopes: z.array(z.string()),
    description: z.string(),
    category: z.string(),
  });
  for (const path of ['/v1/providers', '/v1/providers/metadata']) {
    r.get(
      path,
      {
        // The /v1 routes are the agent API: agent tokens are accepted there, checked per connection.
        config: { auth: path.startsWith('/v1') ? 'agent' : 'admin' },
        schema: {
          operationId: path.endsWith('metadata') ? 'agentProviderMetadata' : 'agentProviders',
          tags,
          summary:
            'Providers the caller may use (an agent: those its grant names), grouped by auth type (no secrets)',
          response: { 200: z.record(z.string(), z.record(z.string(), metadataEntry)), ...errorResponses() },
        },
      },
      async (request) => providers.metadata(request.principal),
    );
  }
}
