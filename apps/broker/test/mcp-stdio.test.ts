/**
 * Issue #22, part 1: `nexus mcp`, Nexus's MCP server over stdio, driven by the official SDK client
 * (StdioClientTransport spawning the CLI from source). It relays to the broker's `/mcp` as the
 * agent configured in its environment (client credentials), so the grants and the audit are the
 * broker's: the same tools, the same refusals, the calls audited under that agent.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { baseEnv, NEXUS_BIN, runCli, show } from './cli-helpers.ts';
import { DIALECT } from './harness.ts';
import { call, type McpWorld, startMcpWorld, toolAudit } from './mcp-fixture.ts';

describe(`nexus mcp over stdio (${DIALECT})`, () => {
  let w: McpWorld;
  const clients: Client[] = [];

  /** `nexus mcp` as an MCP client host would start it, for one agent and the user it acts for. */
  async function stdioClient(agent: 'a' | 'b', user: string, env: Record<string, string> = {}) {
    const { agentId, secret } = w.agents[agent];
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [NEXUS_BIN, 'mcp'],
      env: {
        ...baseEnv(),
        NEXUS_FROM_SOURCE: '1',
        NEXUS_URL: w.url,
        NEXUS_CLIENT_ID: agentId,
        NEXUS_CLIENT_SECRET: secret,
        NEXUS_USER_ID: user,
        ...env,
      },
      stderr: 'pipe',
    });
    const client = new Client({ name: 'stdio-test', version: '1.0.0' });
    clients.push(client);
    await client.connect(transport);
    return client;
  }

  before(async () => {
    w = await startMcpWorld();
  });
  after(async () => {
    for (const c of clients) await c.close().catch(() => undefined);
    await w?.close();
  });

  it('lists the tools and calls each one as the configured agent', async () => {
    const a = await stdioClient('a', 'user-1');
    const { tools } = await a.listTools();
    assert.equal(tools.length, 5);

    const listed = await call(a, 'list_connections');
    assert.deepEqual(
      listed.body.connections.map((c: { connection_id: string }) => c.connection_id),
      [w.connections['user-1']],
    );
    const status = await call(a, 'connection_status', { connection_id: w.connections['user-1'] });
    assert.equal(status.body.status, 'active');
    const proxied = await call(a, 'http_request', { provider: 'echo', path: '/via-stdio' });
    assert.equal(proxied.body.status, 200, proxied.text);
    assert.equal(JSON.parse(proxied.body.body).reached, '/api/via-stdio');
    assert.ok(!proxied.text.includes(w.apiKeys['user-1']));
    const connect = await call(a, 'connect', { provider: 'echo', return_url: 'http://localhost:3000/done' });
    assert.equal(connect.body.status, 'pending', connect.text);
    assert.match(connect.body.authorization_url, /state=/);
    const secret = await call(a, 'get_secret', { name: 'api-key' });
    assert.equal(secret.body.value, w.secretValue);
  });

  it("enforces the other agent's grant, and audits the calls under each agent", async () => {
    const b = await stdioClient('b', 'user-2');
    const foreign = await call(b, 'connection_status', { connection_id: w.connections['user-1'] });
    assert.equal(foreign.body.error, 'connection_not_found');
    const secret = await call(b, 'get_secret', { name: 'api-key', user_id: 'user-1' });
    assert.equal(secret.body.error, 'user_secret_not_found');
    const listed = await call(b, 'list_connections');
    assert.deepEqual(
      listed.body.connections.map((c: { connection_id: string }) => c.connection_id),
      [w.connections['user-2']],
    );

    const events = await toolAudit(w);
    const tools = (actor: string) =>
      events.filter((e) => e.actor === actor).map((e) => [e.resource_id, e.details.acting_user, e.outcome]);
    assert.deepEqual(tools('agent:mcp-a'), [
      ['list_connections', 'user-1', 'success'],
      ['connection_status', 'user-1', 'success'],
      ['http_request', 'user-1', 'success'],
      ['connect', 'user-1', 'success'],
      ['get_secret', 'user-1', 'success'],
    ]);
    assert.deepEqual(tools('agent:mcp-b'), [
      ['connection_status', 'user-2', 'denied'],
      ['get_secret', 'user-1', 'denied'],
      ['list_connections', 'user-2', 'success'],
    ]);
  });

  it('lists every configuration problem at once and exits 2, writing nothing to stdout', async () => {
    const result = await runCli(['mcp'], {
      ...baseEnv(),
      NEXUS_FROM_SOURCE: '1',
      NEXUS_URL: 'ftp://nexus',
      NEXUS_CLIENT_ID: 'a',
    });
    assert.equal(result.code, 2, show(result));
    assert.equal(result.stdout, '');
    assert.match(result.stderr, /NEXUS_URL: /);
    assert.match(result.stderr, /NEXUS_CLIENT_ID and NEXUS_CLIENT_SECRET \(or NEXUS_AGENT_TOKEN\): required/);
  });

  it('refuses a credential with a line break in it, without quoting it', async () => {
    const token = 'eyJhbGciOi.first-line\nsecond-line';
    const result = await runCli(['mcp'], {
      ...baseEnv(),
      NEXUS_FROM_SOURCE: '1',
      NEXUS_URL: 'http://127.0.0.1:1',
      NEXUS_AGENT_TOKEN: token,
    });
    assert.equal(result.code, 2, show(result));
    assert.equal(result.stdout, '');
    assert.match(result.stderr, /NEXUS_AGENT_TOKEN: printable ASCII without spaces or line breaks/);
    assert.ok(!result.stderr.includes('first-line'), 'the token is not quoted');
  });

  it('a wrong client secret: the tool calls fail, nothing runs', async () => {
    await assert.rejects(stdioClient('a', 'user-1', { NEXUS_CLIENT_SECRET: 'nxs_wrong' }));
  });
});
