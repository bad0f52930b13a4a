import type { IncomingMessage } from 'node:http';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import type { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import * as z from 'zod';
import { commonError } from '../../errors/common.errors.ts';
import { errorFrom } from '../../errors/nexus-error.ts';
import { presentedCredential } from '../../http/auth.ts';
import { auditContext } from '../../http/context.ts';
import { errorResponses } from '../../http/schemas.ts';
import { type AgentSessions, sessionHasScope } from '../token-exchange/sessions.ts';
import { CALLER_KEY, type McpCaller, pinnedTo, usablePerson } from './mcp.caller.ts';
import { mcpErrors } from './mcp.errors.ts';
import { inProcessConnect, inProcessProxy } from './mcp.in-process.ts';
import { createMcpSessions, MAX_SESSIONS, MAX_SESSIONS_PER_OWNER } from './mcp.sessions.ts';
import type { McpToolDeps } from './mcp.types.ts';
import type { McpIssuerAuth } from './mcp-issuer.ts';
import { challenge, MCP_SCOPE, METADATA_PATH, protectedResourceMetadata } from './mcp-resource.ts';

const USER_HEADER = 'x-nexus-user-id';
const SESSION_HEADER = 'x-nexus-session';
// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing them is the point
const USER_ID = /^[^\u0000-\u001f\u007f]{1,200}$/;

/**
 * `/mcp`: Nexus as an MCP server over Streamable HTTP (stateful sessions), on the public surface,
 * for agents with their access tokens (each request is authenticated by http/auth.ts like the
 * agent API; admin keys are refused: tools act as an agent, within its grant).
 */
export function mcpRoutes(
  app: FastifyInstance,
  deps: Omit<McpToolDeps, 'proxy' | 'startConnection' | 'log'> & {
    /** The broker's issuer URL (BASE_URL): the resource, and the audience of its tokens. */
    issuer: string;
    /** On-behalf-of sessions (`X-Nexus-Session`), from token-exchange/. */
    sessions: Pick<AgentSessions, 'introspect'>;
    /** Trusted issuers' tokens as the bearer token itself (NEXUS_MCP_ISSUERS), mcp-issuer.ts. */
    issuerAuth?: McpIssuerAuth;
    maxSessions?: number;
    maxSessionsPerOwner?: number;
    sessionIdleMs?: number;
  },
): void {
  const { issuer } = deps;
  const sessions = createMcpSessions({
    max: deps.maxSessions ?? MAX_SESSIONS,
    perOwner: deps.maxSessionsPerOwner ?? MAX_SESSIONS_PER_OWNER,
    idleMs: deps.sessionIdleMs ?? 30 * 60_000,
  });
  app.addHook('preClose', async () => sessions.closeAll());

  const toolDeps: McpToolDeps = {
    ...deps,
    proxy: inProcessProxy(app),
    startConnection: inProcessConnect(app),
    log: (error, tool) => app.log.error({ err: error, tool }, 'MCP tool failed'),
  };

  /**
   * The user of the agent's on-behalf-of session in `X-Nexus-Session`, when one is presented: an
   * active session of this very agent (RFC 8693 exchange of the user's token from a trusted issuer,
   * both gates applied), whose scopes include `mcp` too. The user's permissions and the agent's
   * scopes are then both required, and the session fixes the user every tool acts for.
   */
  async function actingFor(request: FastifyRequest, agentId: string): Promise<string | undefined> {
    const header = request.headers[SESSION_HEADER];
    if (header === undefined) return undefined;
    const session =
      typeof header === 'string' && header.length <= 8192
        ? await deps.sessions.introspect(header)
        : undefined;
    if (session?.active !== true || session.obo !== true || session.client_id !== agentId)
      throw commonError('unauthorized', {
        message: `${SESSION_HEADER} is not an active on-behalf-of session of this agent: exchange the user's token again.`,
      });
    if (!sessionHasScope(session, MCP_SCOPE)) {
      lacksScope.add(request);
      throw errorFrom(mcpErrors, 'insufficient_scope', {
        message: `The on-behalf-of session lacks the ${MCP_SCOPE} scope: the user's permissions and the agent's scopes must both include it.`,
        details: { scope: MCP_SCOPE, resource_metadata: `${issuer}${METADATA_PATH}` },
      });
    }
    const user = String(session.acting_for);
    if (!usablePerson(user))
      throw commonError('unauthorized', {
        message: `The on-behalf-of session's user id (${JSON.stringify(user)}) names no single person: it cannot be acted for.`,
      });
    return user;
  }

  async function handle(request: FastifyRequest, reply: FastifyReply) {
    const p = request.principal;
    if (p?.kind !== 'agent')
      throw commonError('forbidden', {
        message: 'The MCP endpoint is for agents: present an agent access token (POST /oauth/token).',
      });
    const viaIssuer = deps.issuerAuth?.callerOf(request);
    if (!p.scopes.includes(MCP_SCOPE)) {
      lacksScope.add(request);
      throw errorFrom(mcpErrors, 'insufficient_scope', {
        ...(viaIssuer === undefined
          ? {}
          : {
              message: viaIssuer.userHasMcp
                ? `The agent this issuer's MCP clients act as lacks the ${MCP_SCOPE} scope (its allowed_scopes): an operator's setting.`
                : `The token lacks the ${MCP_SCOPE} scope: ask ${viaIssuer.issuer} for it (scope=${MCP_SCOPE}).`,
            }),
        details: { scope: MCP_SCOPE, resource_metadata: `${issuer}${METADATA_PATH}` },
      });
    }
    if (viaIssuer !== undefined && request.headers[SESSION_HEADER] !== undefined)
      throw commonError('invalid_request', {
        message: `A trusted issuer's token already names the person: ${SESSION_HEADER} is for agents' own tokens.`,
      });
    const user = request.headers[USER_HEADER];
    if (user !== undefined && (typeof user !== 'string' || !USER_ID.test(user)))
      throw commonError('invalid_request', {
        message: `${USER_HEADER}: one user id, at most 200 characters.`,
      });
    const onBehalfOf = viaIssuer?.userId ?? (await actingFor(request, p.agentId));
    if (onBehalfOf !== undefined && typeof user === 'string' && user.trim() !== onBehalfOf)
      throw commonError('invalid_request', {
        message: `${USER_HEADER} names another user than the person the token or on-behalf-of session stands for.`,
      });
    // A pinned caller's MCP session is the person's too: another person the agent acts for finds none.
    const owner = onBehalfOf === undefined ? p.agentUuid : `${p.agentUuid}\u0000${onBehalfOf}`;
    const presented = presentedCredential(request)!;
    const caller: McpCaller = {
      // Pinned to one person: the grant narrows to that person's workspace (the user's gate).
      principal: onBehalfOf === undefined ? p : pinnedTo(p, onBehalfOf),
      ctx: auditContext(request),
      proxyToken: viaIssuer?.proxyToken ?? (async () => presented),
      ip: request.ip,
      actingUser: onBehalfOf ?? (typeof user === 'string' ? user.trim() : undefined),
      onBehalfOf: onBehalfOf !== undefined,
      ...(viaIssuer ? { viaIssuer: viaIssuer.issuer } : {}),
    };
    const auth: AuthInfo = {
      // The person's token stays here: the SDK gets the agent's, or nothing.
      token: viaIssuer === undefined ? presented : '',
      clientId: p.agentId,
      scopes: [...p.scopes],
      extra: { [CALLER_KEY]: caller },
    };
    const id = request.headers['mcp-session-id'];
    // The MCP SDK (and the JSON Schema validator it brings) loads with the first /mcp request, not
    // at start, where it was a third of the embedded default's start-up time and RSS.
    const { isInitializeRequest, openSession } = await import('./mcp.server.ts');
    if (typeof id === 'string') {
      const session = sessions.find(id, owner);
      // Another agent's session does not exist for this one. 404 tells MCP clients to start anew.
      if (session === undefined)
        throw commonError('not_found', { message: 'No such MCP session: initialize a new one.' });
      return serve(request, reply, session.transport, auth);
    }
    if (request.method !== 'POST' || !isInitializeRequest(request.body))
      throw commonError('invalid_request', {
        message: 'Start with an initialize request, then send the Mcp-Session-Id header it answers.',
      });
    // Room for one more (503 when the process is full of others'), held until it opened or failed.
    const opening = sessions.reserve(owner);
    try {
      await serve(request, reply, await openSession(toolDeps, sessions, owner), auth);
    } finally {
      opening();
    }
  }

  /** Hands the request to the session's transport, with its caller for the tools. */
  async function serve(
    request: FastifyRequest,
    reply: FastifyReply,
    transport: StreamableHTTPServerTransport,
    auth: AuthInfo,
  ) {
    (request.raw as IncomingMessage & { auth?: AuthInfo }).auth = auth;
    reply.hijack();
    await transport.handleRequest(request.raw, reply.raw, request.body);
  }

  // Refusals carry the challenge an MCP client starts discovery from (RFC 9728 §5.1).
  const lacksScope = new WeakSet<FastifyRequest>();
  const onSend = (
    request: FastifyRequest,
    reply: FastifyReply,
    payload: unknown,
    done: (e: null, p: unknown) => void,
  ) => {
    if (reply.statusCode === 401)
      reply.header(
        'www-authenticate',
        challenge(issuer, presentedCredential(request) === undefined ? 'no_token' : 'invalid_token'),
      );
    else if (reply.statusCode === 403 && lacksScope.has(request))
      reply.header('www-authenticate', challenge(issuer, 'insufficient_scope'));
    done(null, payload);
  };

  app.get(
    METADATA_PATH,
    {
      config: { auth: 'public' },
      schema: {
        operationId: 'protectedResourceMetadata',
        tags: ['mcp'],
        summary: 'RFC 9728 protected-resource metadata: the authorization server and scope for /mcp',
        response: { 200: z.record(z.string(), z.unknown()) },
      },
    },
    async () => protectedResourceMetadata(issuer, deps.issuerAuth?.issuers() ?? []),
  );

  for (const method of ['POST', 'GET', 'DELETE'] as const)
    app.route({
      method,
      url: '/mcp',
      config: {
        auth: 'agent',
        ...(deps.issuerAuth ? { bearerFallback: deps.issuerAuth.authenticate } : {}),
      },
      schema: {
        operationId: `mcp${method[0]}${method.slice(1).toLowerCase()}`,
        tags: ['mcp'],
        summary:
          method === 'POST'
            ? 'MCP (Streamable HTTP): a JSON-RPC message from the client'
            : method === 'GET'
              ? "MCP (Streamable HTTP): the session's stream of server messages"
              : 'MCP (Streamable HTTP): end the session',
        description:
          "Nexus as an MCP server for agents (docs/mcp.md): tools list_connections, connect, connection_status, http_request and get_secret, each within the agent's grant and audited. Authenticate with an agent access token (name the user the agent acts for with X-Nexus-User-ID), or with a person's access token from a trusted issuer listed in NEXUS_MCP_ISSUERS (audience: this broker, scope mcp).",
        response: {
          200: {
            description: 'JSON-RPC answers, as JSON or as a server-sent event stream',
            content: {
              'application/json': { schema: z.unknown() },
              'text/event-stream': { schema: z.unknown() },
            },
          },
          ...errorResponses(404),
        },
      },
      onSend,
      handler: handle,
    });
}
