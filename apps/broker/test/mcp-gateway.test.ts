/**
 * The MCP gateway (`/mcp-gateway/<route>`) against a remote MCP server built with the official SDK
 * (McpServer + StreamableHTTPServerTransport on loopback). The upstream requires a bearer token and
 * checks it at the real OpenID provider's userinfo endpoint; the user connects through consent at
 * that provider; the SDK's client talks to the broker with an agent token only.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import {
  type CallToolResult,
  isInitializeRequest,
  ToolListChangedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { createAgentWithToken, json, startBroker } from './harness.ts';
import { Scenario } from './oauth-scenario.ts';
import { DEFAULT_ACCOUNT_ID } from './oidc-fixture.ts';

const deferred = () => {
  let resolve!: () => void;
  const promise = new Promise<void>((done) => (resolve = done));
  return { promise, resolve };
};

interface Seen {
  method: string;
  authorization: string | undefined;
  sessionId: string | undefined;
  protocolVersion: string | undefined;
  nexusHeaders: string[];
}

/**
 * A remote MCP server: every request needs a bearer token that the OpenID provider's userinfo
 * accepts (else 401 with its own challenge). Tools: `whoami` (the token's subject), `hold` (one
 * progress event, then waits until the test releases it). It records what reached it.
 */
function mcpUpstream(userinfo: () => string) {
  const seen: Seen[] = [];
  /** Tokens it refuses as if they had expired (the provider would still accept them). */
  const refused = new Set<string>();
  const sessions = new Map<string, { transport: StreamableHTTPServerTransport; server: McpServer }>();
  const streamOpened = new Map<string, ReturnType<typeof deferred>>();
  const opened = (id: string) => streamOpened.get(id) ?? streamOpened.set(id, deferred()).get(id)!;
  let release = deferred();

  const newServer = () => {
    const server = new McpServer({ name: 'upstream', version: '1.0.0' });
    server.registerTool('whoami', { description: 'The subject of the token' }, async (extra) => ({
      content: [{ type: 'text', text: String(extra.authInfo?.extra?.sub) }],
    }));
    server.registerTool('hold', { description: 'Reports progress, then waits' }, async (extra) => {
      const progressToken = extra._meta?.progressToken;
      if (progressToken !== undefined)
        await extra.sendNotification({
          method: 'notifications/progress',
          params: { progressToken, progress: 1, total: 2 },
        });
      await release.promise;
      return { content: [{ type: 'text', text: 'released' }] };
    });
    return server;
  };

  const one = (req: IncomingMessage, name: string) => {
    const value = req.headers[name];
    return typeof value === 'string' ? value : undefined;
  };

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const sessionId = one(req, 'mcp-session-id');
    seen.push({
      method: req.method ?? '',
      authorization: req.headers.authorization,
      sessionId,
      protocolVersion: one(req, 'mcp-protocol-version'),
      nexusHeaders: Object.keys(req.headers).filter((h) => h.startsWith('x-nexus-')),
    });
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const info =
      token === undefined || refused.has(token)
        ? undefined
        : await fetch(userinfo(), { headers: { authorization: `Bearer ${token}` } });
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    if (!info?.ok) {
      res.writeHead(401, {
        'content-type': 'application/json',
        'www-authenticate': 'Bearer error="invalid_token", resource_metadata="http://upstream.invalid/prm"',
      });
      return res.end('{"error":"invalid_token"}');
    }
    const { sub } = (await info.json()) as { sub: string };
    const body = chunks.length > 0 ? JSON.parse(Buffer.concat(chunks).toString()) : undefined;
    (req as IncomingMessage & { auth?: AuthInfo }).auth = {
      token: token!,
      clientId: 'gateway',
      scopes: [],
      extra: { sub },
    };
    let session = sessionId === undefined ? undefined : sessions.get(sessionId);
    if (session === undefined) {
      if (sessionId !== undefined || !isInitializeRequest(body)) return res.writeHead(404).end();
      const server = newServer();
      const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
        sessionIdGenerator: randomUUID,
        onsessioninitialized: (id) => void sessions.set(id, { transport, server }),
        onsessionclosed: (id) => void sessions.delete(id),
      });
      await server.connect(transport);
      session = { transport, server };
    }
    if (req.method === 'GET' && sessionId !== undefined) {
      // The transport has registered the session's stream when it writes the stream's headers.
      const writeHead = res.writeHead.bind(res) as (...args: unknown[]) => ServerResponse;
      res.writeHead = ((...args: unknown[]) => {
        const out = writeHead(...args);
        opened(sessionId).resolve();
        return out;
      }) as ServerResponse['writeHead'];
    }
    await session.transport.handleRequest(req, res, body);
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy());
  });
  return {
    server,
    seen,
    refused,
    sessions,
    /** Resolves once the session's GET stream (server messages outside any request) is open. */
    streamOpened: (id: string) => opened(id).promise,
    release: () => release.resolve(),
    rearm: () => (release = deferred()),
  };
}

describe('MCP gateway', { timeout: 120_000 }, () => {
  const s = new Scenario();
  const upstream = mcpUpstream(() => s.idp.endpoints.userinfo);
  let upstreamUrl: string;
  let brokerUrl: string;
  let agent: { token: string };
  let stranger: { token: string };
  const connections: Record<'marked' | 'endpoint', string> = { marked: '', endpoint: '' };

  const gatewayClient = async (route: string, token: string, user = 'user-1') => {
    const client = new Client({ name: 'gateway-test', version: '1.0.0' });
    const transport = new StreamableHTTPClientTransport(new URL(`${brokerUrl}/mcp-gateway/${route}`), {
      requestInit: { headers: { authorization: `Bearer ${token}`, 'x-nexus-user-id': user } },
    });
    await client.connect(transport);
    return { client, transport };
  };
  const text = (result: unknown) => ((result as CallToolResult).content[0] as { text: string }).text;

  before(async () => {
    await new Promise<void>((done) => upstream.server.listen(0, '127.0.0.1', done));
    upstreamUrl = `http://127.0.0.1:${(upstream.server.address() as AddressInfo).port}`;
    await s.start({
      env: {
        NEXUS_EGRESS_ALLOWED_CIDRS: '127.0.0.1/32',
        // Both forms: a proxy route marked as an MCP server, and an MCP endpoint for a provider.
        // And one outside the egress guard's allowed range (127.0.0.2).
        NEXUS_MCP_GATEWAY_ROUTES: `mcp-marked,idp-discovered=${upstreamUrl}/mcp,idp-basic=http://127.0.0.2:9/mcp`,
      },
    });
    for (const name of ['mcp-marked', 'api-only'])
      await s.call(
        {
          method: 'POST',
          url: '/providers',
          payload: {
            profile: {
              name,
              client_id: 'client-post',
              client_secret: 'client-post-secret',
              issuer: s.idp.issuer,
              enable_discovery: true,
              scopes: ['openid', 'email'],
              api_base_url: `${upstreamUrl}/mcp`,
            },
          },
        },
        201,
      );
    connections.marked = await s.connect('mcp-marked');
    connections.endpoint = await s.connect('idp-discovered');
    await s.connect('idp-basic');
    agent = await createAgentWithToken(s.broker, 'gateway-user', {
      allowed_providers: ['*'],
      allowed_workspaces: ['user-1'],
    });
    stranger = await createAgentWithToken(s.broker, 'gateway-stranger', {
      allowed_providers: ['*'],
      allowed_workspaces: ['someone-else'],
    });
    brokerUrl = await s.broker.app.listen({ port: 0, host: '127.0.0.1' });
  });
  after(async () => {
    upstream.release();
    for (const { transport } of upstream.sessions.values()) await transport.close();
    upstream.server.closeAllConnections();
    upstream.server.close();
    await s.close();
  });

  it("lists and calls the upstream's tools with the user's token; the caller's token never reaches it", async () => {
    for (const [route, connection] of [
      ['mcp-marked', connections.marked],
      ['idp-discovered', connections.endpoint],
    ] as const) {
      const from = upstream.seen.length;
      const { client, transport } = await gatewayClient(route, agent.token);
      const tools = await client.listTools();
      assert.deepEqual(tools.tools.map((t) => t.name).sort(), ['hold', 'whoami']);
      assert.equal(text(await client.callTool({ name: 'whoami' })), DEFAULT_ACCOUNT_ID);
      const sessionId = transport.sessionId;
      assert.ok(sessionId !== undefined && upstream.sessions.has(sessionId), "the upstream's session id");
      await transport.terminateSession();
      assert.equal(upstream.sessions.has(sessionId), false, 'DELETE ended the session upstream');
      await client.close();

      const { access_token } = await s.stored(connection);
      const reached = upstream.seen.slice(from);
      assert.ok(reached.length >= 4, `${route}: ${JSON.stringify(reached)}`);
      for (const r of reached) {
        assert.equal(r.authorization, `Bearer ${access_token}`, `${route}: the user's token, only`);
        assert.deepEqual(r.nexusHeaders, [], 'no X-Nexus-* header goes upstream');
      }
      // After initialize: the session id and the protocol version the client negotiated, both ways.
      for (const r of reached.slice(1)) {
        assert.equal(r.sessionId, sessionId);
        assert.ok(r.protocolVersion, 'MCP-Protocol-Version reached the upstream');
      }
      assert.ok(reached.some((r) => r.method === 'DELETE' && r.sessionId === sessionId));
      assert.ok(!JSON.stringify(reached).includes(agent.token));
    }
  });

  it('streams: a first event reaches the client before the test lets the upstream go on', async () => {
    const { client, transport } = await gatewayClient('mcp-marked', agent.token);
    // The GET stream (server messages outside any request) stays open: nothing ends it.
    const changed = deferred();
    client.setNotificationHandler(ToolListChangedNotificationSchema, async () => changed.resolve());
    await upstream.streamOpened(transport.sessionId!);
    upstream.sessions.get(transport.sessionId!)!.server.sendToolListChanged();
    await changed.promise;
    // A tool's answer stream: its progress event arrives while the tool still waits for the test.
    upstream.rearm();
    const progressed = deferred();
    let settled = false;
    const call = client
      .callTool({ name: 'hold' }, undefined, { onprogress: () => progressed.resolve() })
      .finally(() => (settled = true));
    await progressed.promise;
    assert.equal(settled, false, 'the progress event came first, while the tool waits');
    upstream.release();
    assert.equal(text(await call), 'released');
    await client.close();
  });

  it('refreshes the token once when the upstream refuses it, then goes on', async () => {
    const before = (await s.stored(connections.marked)).access_token;
    upstream.refused.add(before);
    const from = upstream.seen.length;
    const { client } = await gatewayClient('mcp-marked', agent.token);
    assert.equal(text(await client.callTool({ name: 'whoami' })), DEFAULT_ACCOUNT_ID);
    await client.close();
    const after = (await s.stored(connections.marked)).access_token;
    assert.notEqual(after, before, 'refreshed at the provider');
    const tokens = upstream.seen.slice(from).map((r) => r.authorization);
    assert.equal(tokens[0], `Bearer ${before}`, 'the refused token first');
    assert.ok(tokens.slice(1).every((t) => t === `Bearer ${after}`));
  });

  it('refuses: the upstream called without a token, an agent outside the grant, an unmarked route, no caller token, a private address', async () => {
    const direct = new Client({ name: 'direct', version: '1.0.0' });
    await assert.rejects(
      direct.connect(new StreamableHTTPClientTransport(new URL(`${upstreamUrl}/mcp`))),
      /401|invalid_token|Unauthorized/,
    );
    assert.equal(upstream.seen.at(-1)?.authorization, undefined);

    const from = upstream.seen.length;
    await assert.rejects(gatewayClient('mcp-marked', stranger.token), (error: Error & { code?: number }) => {
      assert.equal(error.code, 404);
      assert.match(error.message, /connection_not_found/);
      return true;
    });
    const post = (route: string) =>
      fetch(`${brokerUrl}/mcp-gateway/${route}`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${agent.token}`,
          'x-nexus-user-id': 'user-1',
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
        },
        body: '{}',
      });
    const unmarked = await post('api-only');
    assert.equal(unmarked.status, 404);
    assert.equal(((await unmarked.json()) as { error: string }).error, 'unknown_route');
    const outside = await post('idp-basic');
    assert.equal(outside.status, 502);
    assert.equal(((await outside.json()) as { error: string }).error, 'upstream_error');
    const anonymous = await fetch(`${brokerUrl}/mcp-gateway/mcp-marked`, { method: 'POST', body: '{}' });
    assert.equal(anonymous.status, 401);
    await anonymous.body?.cancel();
    assert.equal(upstream.seen.length, from, 'none of these reached the upstream');
  });

  it('audits each forwarded request as proxy.request, through the gateway', async () => {
    await s.broker.container.audit.flush();
    const events = json<{
      events: { actor: string; resource_id: string; outcome: string; details: Record<string, unknown> }[];
    }>(await s.call({ method: 'GET', url: '/audit?event_type=proxy.request&limit=500' }, 200)).events;
    const ours = events.filter((e) => e.details.via === 'mcp-gateway');
    for (const [route, connection, methods] of [
      ['mcp-marked', connections.marked, ['POST', 'GET', 'DELETE']],
      // The client opens its GET stream on its own time: asserted where the test waited for it.
      ['idp-discovered', connections.endpoint, ['POST', 'DELETE']],
    ] as const)
      for (const method of methods)
        assert.ok(
          ours.some(
            (e) =>
              e.actor === 'agent:gateway-user' &&
              e.resource_id === connection &&
              e.details.route === route &&
              e.details.method === method &&
              e.outcome === 'success',
          ),
          `${route} ${method}: ${JSON.stringify(ours.slice(0, 5))}`,
        );
    assert.ok(ours.some((e) => e.details.outcome === 'refreshed' && e.resource_id === connections.marked));
    assert.ok(ours.some((e) => e.actor === 'agent:gateway-stranger' && e.outcome === 'failure'));
    assert.ok(!JSON.stringify(ours).includes('Bearer'), 'no credential in the audit log');
  });
});

describe('MCP gateway rate limit', () => {
  it('counts each forwarded request as a token read (RATE_LIMIT_TOKEN_RPM)', async () => {
    const broker = await startBroker({
      env: {
        RATE_LIMIT_ENABLED: 'true',
        RATE_LIMIT_TOKEN_RPM: '2',
        NEXUS_MCP_GATEWAY_ROUTES: 'nowhere=http://127.0.0.1:9/mcp',
      },
    });
    try {
      const send = () =>
        broker.request({
          method: 'POST',
          url: '/mcp-gateway/nowhere',
          headers: { 'x-nexus-user-id': 'user-1', 'content-type': 'application/json' },
          payload: '{}',
        });
      // No connection: refused before anything is sent, and counted all the same.
      for (let i = 0; i < 2; i++) assert.equal((await send()).statusCode, 404);
      const limited = await send();
      assert.equal(limited.statusCode, 429, limited.body);
      assert.equal(json<{ error: string }>(limited).error, 'rate_limited');
    } finally {
      await broker.close();
    }
  });
});
