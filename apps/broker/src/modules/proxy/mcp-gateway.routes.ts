import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import * as z from 'zod';
import type { Principal } from '../../auth/principal.ts';
import { auditContext } from '../../http/context.ts';
import { errorResponses, errorSchema } from '../../http/schemas.ts';
import type { AuditContext } from '../audit/audit.service.ts';
import { createProxy, type ProxyOptions } from './proxy.ts';
import { sendUpstream, withUnparsedBodies } from './proxy-http.ts';

const UPSTREAM_CHALLENGE: ReadonlySet<string> = new Set(['www-authenticate']);

interface Caller {
  ctx: AuditContext;
  principal: Principal | undefined;
  via?: 'mcp-gateway';
}

/** The methods of MCP's Streamable HTTP transport: messages, the server's stream, the session's end. */
const METHODS = ['POST', 'GET', 'DELETE'] as const;

/**
 * `/mcp-gateway/<route>`: a remote MCP server (Streamable HTTP) behind the credential proxy. The
 * caller authenticates as on `/proxy` (agent token or admin key) and names the connection the same
 * way (`X-Nexus-User-ID` or `X-Nexus-Connection-ID`); the request goes to the route's MCP endpoint
 * with the connection's credential, and the answer (JSON or server-sent events) streams back. The
 * forwarding is the proxy's own (`createProxy`, with the in-broker proxy's options: credentials
 * and grant check, egress guard, limits, refresh-and-retry, metrics and `proxy.request` audit);
 * only the route table differs: routes marked in NEXUS_MCP_GATEWAY_ROUTES, nothing else.
 */
export function mcpGatewayRoutes(
  app: FastifyInstance,
  deps: {
    /** The in-broker proxy's options (proxyRoutes returns them). */
    proxy: ProxyOptions<Caller>;
    /** Marked routes: an MCP endpoint of their own, or null for the proxy route of that name. */
    routes: ReadonlyMap<string, URL | null>;
  },
): void {
  const gateway = createProxy<Caller>({
    ...deps.proxy,
    async routes(name) {
      const endpoint = deps.routes.get(name);
      // An unmarked route is no route here: an API reached through /proxy is not an MCP server.
      if (endpoint === undefined) return undefined;
      if (endpoint !== null) return { baseUrl: endpoint, providerName: name };
      return deps.proxy.routes(name);
    },
  });
  app.addHook('onClose', async () => gateway.close());

  async function forward(request: FastifyRequest, reply: FastifyReply) {
    const { route } = request.params as { route: string };
    const raw = request.raw.url ?? '';
    const q = raw.indexOf('?');
    const hasBody =
      request.headers['transfer-encoding'] !== undefined ||
      Number(request.headers['content-length'] ?? 0) > 0;
    const result = await gateway.forward({
      caller: { ctx: auditContext(request), principal: request.principal, via: 'mcp-gateway' },
      route,
      // The endpoint is the route's base URL itself (MCP's Streamable HTTP has one endpoint).
      path: '',
      search: q === -1 ? '' : raw.slice(q),
      publicBase: `/mcp-gateway/${route}`,
      method: request.method,
      // Mcp-Session-Id, MCP-Protocol-Version, Accept and Last-Event-ID pass as the proxy passes
      // headers; the caller's Authorization never does (no token passthrough).
      headers: request.headers,
      body: hasBody ? request.raw : undefined,
    });
    // The upstream's challenge names its own authorization server: the user's token is Nexus's
    // to present, and an MCP client must not start an OAuth flow against the upstream.
    return sendUpstream(reply, result, UPSTREAM_CHALLENGE);
  }

  withUnparsedBodies(app, (scope) => {
    for (const method of METHODS)
      scope.route({
        method,
        url: '/mcp-gateway/:route',
        exposeHeadRoute: false,
        config: { auth: 'agent' },
        // Documentation only: no headers or body schema (they would replace what is forwarded).
        schema: {
          operationId: `mcpGateway${method[0]}${method.slice(1).toLowerCase()}`,
          tags: ['mcp'],
          summary:
            method === 'POST'
              ? "MCP gateway: a JSON-RPC message to a remote MCP server, with the user's credential"
              : method === 'GET'
                ? "MCP gateway: the remote MCP server's stream of server messages"
                : 'MCP gateway: end the session at the remote MCP server',
          description:
            "A remote MCP server (Streamable HTTP) registered as a route (NEXUS_MCP_GATEWAY_ROUTES), reached with the connection's credential: the MCP client and the model never hold it. Authenticate as on `/proxy` (agent token); name the connection with `X-Nexus-User-ID` (that user's connection of the route's provider) or `X-Nexus-Connection-ID`. `Mcp-Session-Id` and `MCP-Protocol-Version` pass both ways; answers stream. The errors below are the broker's own, before or instead of the upstream's answer. See docs/mcp.md.",
          params: z.object({ route: z.string().describe('A route marked as an MCP server') }),
          response: {
            200: {
              description: "The MCP server's answer (JSON or server-sent events), passed through",
              content: {
                'application/json': { schema: z.unknown() },
                'text/event-stream': { schema: z.unknown() },
              },
            },
            ...errorResponses(404, 409, 502),
            504: errorSchema,
          },
        },
        handler: forward,
      });
  });
}
