import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import * as z from 'zod';
import type { Principal } from '../../auth/principal.ts';
import { NexusError } from '../../errors/nexus-error.ts';
import { auditContext } from '../../http/context.ts';
import { errorResponses, errorSchema } from '../../http/schemas.ts';
import type { AgentsService } from '../agents/agents.service.ts';
import { principalMaySeeProvider } from '../agents/grants.ts';
import type { AuditContext, AuditService } from '../audit/audit.service.ts';
import type { ConnectionsService } from '../connections/connections.service.ts';
import { filledUrl, hasPlaceholders } from '../providers/connection-params.ts';
import type { ProvidersService } from '../providers/providers.service.ts';
import type { ProxyMetrics } from './proxy.metrics.ts';
import { type BaseUrlFor, createProxy, type ProxyOptions, routeOf } from './proxy.ts';
import { sendUpstream, withUnparsedBodies } from './proxy-http.ts';

interface Caller {
  ctx: AuditContext;
  principal: Principal | undefined;
  /** Set by the MCP gateway (mcp-gateway.routes.ts), recorded in the audit event. */
  via?: 'mcp-gateway';
}

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
/** How long a provider's route is remembered (a changed api_base_url is used after at most this). */
const ROUTE_CACHE_MS = 5_000;

/**
 * `/proxy/<route>/…` (or `/proxy/…` with `X-Nexus-Provider`): the in-broker credential proxy. The
 * credential comes from the vault through the same service calls as `GET /v1/token/{id}` (same
 * permission check, same single-flight refresh); no HTTP hop to the broker itself.
 */
export function proxyRoutes(
  app: FastifyInstance,
  deps: {
    connections: Pick<ConnectionsService, 'getToken' | 'resolve' | 'refresh' | 'describe'>;
    /** Whether an agent is still live and active (an answer streaming to it ends when not). */
    agents: Pick<AgentsService, 'activeRow'>;
    providers: Pick<ProvidersService, 'resolve'>;
    audit: Pick<AuditService, 'record'>;
    metrics: ProxyMetrics;
    /** Route name → upstream base URL, from configuration; otherwise a provider's api_base_url. */
    routes: ReadonlyMap<string, URL>;
    bodyLimit: number;
    timeoutMs: number;
    allowCidrs: readonly string[];
  },
): { options: ProxyOptions<Caller> } {
  const { connections, providers } = deps;
  type Route = { baseUrl: URL | BaseUrlFor; providerName: string; providerId: string };
  // A provider by name (alias or id too), and its route (name and api_base_url, no secret), are
  // remembered for a few seconds, so a proxied call costs one query (the connection) like a token
  // read, and an agent's grant is checked without another.
  const named = new Map<string, { id: string | undefined; route: Route | undefined; until: number }>();
  async function providerNamed(name: string) {
    const hit = named.get(name);
    if (hit !== undefined && hit.until > Date.now()) return hit;
    const provider = await providers.resolve(name).catch((error: unknown) => {
      if (error instanceof NexusError && error.status === 404) return undefined;
      throw error;
    });
    const template = provider?.api_base_url;
    // A base URL with placeholders is filled per connection, with its connection_config.
    const base: URL | BaseUrlFor | null = !template
      ? null
      : hasPlaceholders(template)
        ? (credential) => filledUrl(template, credential.connection_config)
        : URL.parse(template);
    const entry = {
      id: provider?.id,
      route:
        provider && base
          ? { baseUrl: base, providerName: provider.name, providerId: provider.id }
          : undefined,
      until: Date.now() + ROUTE_CACHE_MS,
    };
    if (named.size >= 1_000) named.delete(named.keys().next().value!);
    named.set(name, entry);
    return entry;
  }
  // The options are handed back for the MCP gateway, which forwards through the same code.
  const options: ProxyOptions<Caller> = {
    async routes(name) {
      const configured = deps.routes.get(name);
      if (configured !== undefined) return { baseUrl: configured, providerName: name };
      return (await providerNamed(name)).route;
    },
    async visible(caller, providerName) {
      const principal = caller.principal;
      if (principal?.kind !== 'agent' || principal.allowedProviders.includes('*')) return true;
      const { id } = await providerNamed(providerName);
      return id !== undefined && principalMaySeeProvider(principal, id);
    },
    credentials: {
      async token(caller, ref) {
        if ('connectionId' in ref)
          // The credential never leaves the broker: the use is audited once, as proxy.request.
          return connections.getToken(caller.ctx, caller.principal, ref.connectionId, null);
        const provider = await providers.resolve(ref.providerName);
        return connections.resolve(caller.ctx, caller.principal, ref.workspaceId, provider.id, null);
      },
      refresh: (caller, id) => connections.refresh(caller.ctx, caller.principal, id, null),
    },
    // An answer streaming for long (an event stream, a download) ends once its connection is
    // revoked or its agent deactivated or deleted, as a new request would be refused.
    async stillAllowed(caller, connectionId) {
      const connection = await connections.describe(connectionId);
      if (connection === undefined || connection.status === 'revoked') return false;
      const principal = caller.principal;
      return principal?.kind !== 'agent' || (await deps.agents.activeRow(principal.agentUuid)) !== undefined;
    },
    allowCidrs: deps.allowCidrs,
    bodyLimit: deps.bodyLimit,
    timeoutMs: deps.timeoutMs,
    observer: {
      async done(caller, info) {
        deps.metrics.observe(info);
        if (info.outcome === 'unknown_route') return;
        await deps.audit.record(caller.ctx, {
          action: 'proxy.request',
          resourceType: 'connection',
          resourceId: info.connectionId ?? null,
          outcome: info.status < 400 ? 'success' : 'failure',
          details: {
            route: info.route,
            method: info.method,
            status: info.status,
            outcome: info.outcome,
            ...(caller.via === undefined ? {} : { via: caller.via }),
          },
        });
      },
      unrecorded(caller, info, error) {
        // No secret here: the route, the connection id, the status and the error's code.
        app.log.error(
          {
            request_id: caller.ctx.requestId,
            route: info.route,
            connection_id: info.connectionId,
            method: info.method,
            status: info.status,
            code: (error as { code?: unknown }).code,
          },
          'proxied call answered, but its proxy.request audit event could not be written',
        );
      },
    },
  };
  const proxy = createProxy(options);
  app.addHook('onClose', async () => proxy.close());

  async function forward(request: FastifyRequest, reply: FastifyReply) {
    const raw = request.raw.url ?? '/proxy';
    // An absolute-form target (`GET http://host/proxy/…`) reaches this route too: routeOf refuses it.
    const below = raw.startsWith('/proxy') ? raw.slice('/proxy'.length) : raw;
    const { route, path, search, mount } = routeOf(below, request.headers);
    const hasBody =
      request.headers['transfer-encoding'] !== undefined ||
      Number(request.headers['content-length'] ?? 0) > 0;
    const result = await proxy.forward({
      caller: { ctx: auditContext(request), principal: request.principal },
      route,
      path,
      search,
      publicBase: `/proxy${mount}`,
      method: request.method,
      headers: request.headers,
      body: hasBody ? request.raw : undefined,
    });
    return sendUpstream(reply, result);
  }

  withUnparsedBodies(app, (scope) => {
    // One route per method, the same handler: the OpenAPI document needs one operation id each.
    for (const method of METHODS)
      scope.route({
        method,
        url: '/proxy/*',
        exposeHeadRoute: false,
        config: { auth: 'agent' },
        // Documentation only: no headers or body schema, which would replace the headers and body
        // forwarded upstream by their parsed (stripped) copies.
        schema: {
          operationId: `proxy${method[0]}${method.slice(1).toLowerCase()}`,
          tags: ['proxy'],
          summary: `${method} on the upstream API of a route, with the connection's credential`,
          description:
            "`/proxy/<route>/<path>` (or `/proxy/<path>` with `X-Nexus-Provider: <route>`) goes to the route's base URL with `<path>` and the query, the body streamed as it is. Name the connection with `X-Nexus-Connection-ID`, or `X-Nexus-User-ID` for that user's connection of the route's provider. The upstream's answer comes back as it is; the errors below are the broker's own, before or instead of the upstream's answer. See docs/proxy.md.",
          params: z.object({
            '*': z.string().describe('`<route>/<path>`, or `<path>` with X-Nexus-Provider'),
          }),
          response: {
            200: {
              description: "The upstream API's answer (any status and content type), passed through",
              content: { '*/*': { schema: z.unknown() } },
            },
            ...errorResponses(404, 409, 502),
            504: errorSchema,
          },
        },
        handler: forward,
      });
  });
  return { options };
}
