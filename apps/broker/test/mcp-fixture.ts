/**
 * A broker listening on loopback with what the MCP tools reach: an upstream API behind a `header`
 * provider (it records what reached it and never echoes the credential), a connection for each of
 * two users, user secrets, and two agents whose grants split the users:
 * - both hold the `mcp` scope that `/mcp` needs;
 * - `mcp-a` may act for user-1 and read user-1's `api-key` secret;
 * - `mcp-b` may act for user-2 only, and holds no secret grant.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { RequestOptions } from '@modelcontextprotocol/sdk/shared/protocol.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { agentMayUse } from '../src/modules/agents/grants.ts';
import { CALLER_KEY, type McpCaller, pinnedTo } from '../src/modules/mcp/mcp.caller.ts';
import { inProcessConnect, inProcessProxy } from '../src/modules/mcp/mcp.in-process.ts';
import { registerTools } from '../src/modules/mcp/mcp.tools.ts';
import type { McpToolDeps } from '../src/modules/mcp/mcp.types.ts';
import { MCP_SCOPE } from '../src/modules/mcp/mcp-resource.ts';
import { CAPTURE_RETURN_URL, capture, startCapture } from './capture-helpers.ts';
import { freePort } from './cli-helpers.ts';
import { createAgentWithToken, json, startBroker, type TestBroker } from './harness.ts';

export interface McpWorld {
  broker: TestBroker;
  url: string;
  upstream: { seen: { url: string; headers: IncomingHttpHeaders }[]; close(): Promise<void> };
  /** The credential stored for each user's connection: it must reach the upstream, never a result. */
  apiKeys: Record<'user-1' | 'user-2', string>;
  connections: Record<'user-1' | 'user-2', string>;
  agents: Record<'a' | 'b', { id: string; secret: string; token: string; agentId: string }>;
  secretValue: string;
  close(): Promise<void>;
}

export async function startMcpWorld(options: { env?: Record<string, string> } = {}): Promise<McpWorld> {
  const seen: { url: string; headers: IncomingHttpHeaders }[] = [];
  const server = createServer((req, res) => {
    seen.push({ url: req.url ?? '', headers: req.headers });
    let size = 0;
    req.on('data', (c: Buffer) => (size += c.length));
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json', 'set-cookie': 'session=upstream' });
      res.end(JSON.stringify({ reached: req.url, method: req.method, size }));
    });
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const upstreamUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  // The broker's issuer is the address clients reach it at: discovery (RFC 9728) points there.
  const port = await freePort();
  const broker = await startBroker({
    env: {
      NEXUS_EGRESS_ALLOWED_CIDRS: '127.0.0.1/32',
      BASE_URL: `http://127.0.0.1:${port}`,
      ...options.env,
    },
  });
  const created = await broker.request({
    method: 'POST',
    url: '/providers',
    payload: {
      profile: {
        name: 'echo',
        auth_type: 'header',
        api_base_url: `${upstreamUrl}/api`,
        params: {
          auth_strategy: {
            type: 'header',
            config: { header_name: 'X-Api-Key', credential_field: 'api_key' },
          },
        },
      },
    },
  });
  assert.equal(created.statusCode, 201, created.body);
  const apiKeys = {
    'user-1': `key-one-${randomBytes(8).toString('hex')}`,
    'user-2': `key-two-${randomBytes(8).toString('hex')}`,
  };
  const connections = {} as McpWorld['connections'];
  for (const user of ['user-1', 'user-2'] as const) {
    const flow = await startCapture(broker, 'echo', user);
    const done = await capture(broker, flow.state, { api_key: apiKeys[user] });
    assert.equal(done.statusCode, 200, done.body);
    connections[user] = flow.connection_id;
  }
  const secretValue = `s3cret-${randomBytes(8).toString('hex')}`;
  for (const [name, value] of [
    ['api-key', secretValue],
    ['not-granted', 'never-shown'],
  ])
    assert.equal(
      (
        await broker.request({
          method: 'POST',
          url: '/api/v2/secrets?user_id=user-1',
          payload: { name, value },
        })
      ).statusCode,
      201,
    );
  const a = await createAgentWithToken(broker, 'mcp-a', {
    allowed_scopes: [MCP_SCOPE],
    allowed_providers: ['*'],
    allowed_workspaces: ['user-1'],
    allowed_secrets: ['user-1/default/api-key'],
  });
  const b = await createAgentWithToken(broker, 'mcp-b', {
    allowed_scopes: [MCP_SCOPE],
    allowed_providers: ['*'],
    allowed_workspaces: ['user-2'],
  });
  const url = await broker.app.listen({ port, host: '127.0.0.1' });
  const upstream = {
    seen,
    close: () =>
      new Promise<void>((done) => {
        server.closeAllConnections();
        server.close(() => done());
      }),
  };
  return {
    broker,
    url,
    upstream,
    apiKeys,
    connections,
    agents: { a: { ...a, agentId: 'mcp-a' }, b: { ...b, agentId: 'mcp-b' } },
    secretValue,
    async close() {
      await broker.close();
      await upstream.close();
    },
  };
}

/** An SDK client on `/mcp` with an agent's token (and the user it acts for). */
export async function httpClient(
  world: McpWorld,
  token: string,
  options: {
    user?: string;
    capabilities?: ConstructorParameters<typeof Client>[1];
    headers?: Record<string, string>;
  } = {},
) {
  const client = new Client({ name: 'mcp-test', version: '1.0.0' }, options.capabilities);
  const headers: Record<string, string> = { ...options.headers, authorization: `Bearer ${token}` };
  if (options.user !== undefined) headers['x-nexus-user-id'] = options.user;
  const transport = new StreamableHTTPClientTransport(new URL(`${world.url}/mcp`), {
    requestInit: { headers },
  });
  await client.connect(transport);
  return { client, transport };
}

/**
 * The tools of one MCP session over an in-memory transport, wired to the broker's own services and
 * in-process routes as mcp.routes.ts wires them, for what `/mcp` gives a test no hold on: a caller
 * pinned to a person no verifier lets through any more, and settings such as the call deadline.
 */
export async function toolClient(
  world: McpWorld,
  token: string,
  options: { user?: string; pinnedTo?: string; deps?: Partial<McpToolDeps> } = {},
) {
  const c = world.broker.container;
  const principal = await c.agents.authenticateToken(token);
  assert.ok(principal);
  const caller: McpCaller = {
    principal: options.pinnedTo === undefined ? principal : pinnedTo(principal, options.pinnedTo),
    ctx: { actor: `agent:${principal.agentId}`, ip: '127.0.0.1' },
    proxyToken: async () => token,
    ip: '127.0.0.1',
    actingUser: options.pinnedTo ?? options.user,
    onBehalfOf: options.pinnedTo !== undefined,
  };
  const server = new McpServer({ name: 'nexus', version: 'test' }, { capabilities: { tools: {} } });
  registerTools(server, {
    connections: c.connections,
    userSecrets: c.userSecrets,
    audit: c.audit,
    mayUse: agentMayUse,
    proxy: inProcessProxy(world.broker.app),
    startConnection: inProcessConnect(world.broker.app),
    defaultReturnUrl: `${world.url}/`,
    ...options.deps,
  });
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  // What mcp.routes.ts hands the SDK with each HTTP request: the caller, in `authInfo`.
  const authInfo = {
    token,
    clientId: principal.agentId,
    scopes: [...principal.scopes],
    extra: { [CALLER_KEY]: caller },
  };
  const send = clientSide.send.bind(clientSide);
  clientSide.send = (message, sendOptions) => send(message, { ...sendOptions, authInfo });
  await server.connect(serverSide);
  const client = new Client({ name: 'mcp-test', version: '1.0.0' });
  await client.connect(clientSide);
  return { client, close: () => client.close() };
}

/** A tool call's JSON answer and whether it is a tool error. */
export async function call(
  client: Client,
  name: string,
  args: Record<string, unknown> = {},
  options?: RequestOptions,
) {
  const result = (await client.callTool({ name, arguments: args }, undefined, options)) as CallToolResult;
  const first = result.content[0];
  assert.equal(first?.type, 'text');
  const text = (first as { text: string }).text;
  // The SDK answers arguments its schema refuses with plain text, not JSON.
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = { message: text };
  }
  // biome-ignore lint/suspicious/noExplicitAny: a tool's JSON answer, read by the assertions
  return { isError: result.isError === true, text, body: body as Record<string, any> };
}

/** The `mcp.tool_call` audit events, oldest first. */
export async function toolAudit(world: McpWorld) {
  await world.broker.container.audit.flush();
  const res = await world.broker.request({ method: 'GET', url: '/audit?event_type=mcp.tool_call&limit=500' });
  assert.equal(res.statusCode, 200, res.body);
  return json<{
    events: { actor: string; resource_id: string; outcome: string; details: Record<string, unknown> }[];
  }>(res).events.reverse();
}

export { CAPTURE_RETURN_URL };
