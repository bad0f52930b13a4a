/**
 * Issue #22, part 2: an MCP client acting for a person. The person's token comes from the
 * developer's identity provider (a real oidc-provider, registered as a trusted issuer); the agent
 * exchanges it for an on-behalf-of session and presents it in `X-Nexus-Session` on `/mcp`. Both
 * gates hold: the session needs `mcp` among the user's permissions and the agent's scopes, and the
 * tools then act for that user only.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createAgentWithToken, DIALECT, json } from './harness.ts';
import { call, httpClient, type McpWorld, startMcpWorld, toolAudit } from './mcp-fixture.ts';
import { type OidcFixture, startOidcProvider } from './oidc-fixture.ts';

const AUDIENCE = 'https://nexus.example.test/mcp-obo';

describe(`MCP on behalf of a person (${DIALECT})`, () => {
  let w: McpWorld;
  let idp: OidcFixture;
  let agent: { token: string };

  /** The agent's on-behalf-of session for a user token, with the given scopes. */
  async function session(agentToken: string, userToken: string, scopes: string[]) {
    const res = await w.broker.request({
      method: 'POST',
      url: '/v1/agent-sessions/obo',
      key: null,
      headers: { authorization: `Bearer ${agentToken}` },
      payload: { user_token: userToken, scopes },
    });
    assert.equal(res.statusCode, 201, res.body);
    return json<{ session_token: string }>(res).session_token;
  }
  const userToken = (accountId: string, permissions: string[]) =>
    idp.issueUserToken({ resource: AUDIENCE, accountId, claims: { permissions } });
  const initialize = (headers: Record<string, string>) =>
    fetch(`${w.url}/mcp`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        ...headers,
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } },
      }),
    });

  before(async () => {
    [w, idp] = await Promise.all([startMcpWorld(), startOidcProvider()]);
    for (const name of ['mcp', 'reports'])
      assert.equal(
        (await w.broker.request({ method: 'POST', url: '/admin/v1/scopes', payload: { name } })).statusCode,
        201,
      );
    const trusted = await w.broker.request({
      method: 'POST',
      url: '/admin/v1/trusted-issuers',
      payload: { issuer: idp.issuer, use_discovery: true, audience: AUDIENCE },
    });
    assert.equal(trusted.statusCode, 201, trusted.body);
    // The agent may act for both users; the session narrows it to one.
    agent = await createAgentWithToken(w.broker, 'assistant', {
      allowed_scopes: ['mcp', 'reports'],
      allowed_providers: ['*'],
      allowed_workspaces: ['user-1', 'user-2'],
    });
  });
  after(async () => {
    await w?.close();
    await idp?.close();
  });

  it("acts for the session's user only, even where the agent's grant reaches further", async () => {
    const sessionToken = await session(agent.token, await userToken('user-1', ['mcp']), ['mcp']);
    const { client } = await httpClient(w, agent.token, { headers: { 'x-nexus-session': sessionToken } });
    try {
      const listed = await call(client, 'list_connections');
      assert.deepEqual(
        listed.body.connections.map((c: { connection_id: string }) => c.connection_id),
        [w.connections['user-1']],
      );
      const other = await call(client, 'list_connections', { user_id: 'user-2' });
      assert.equal(other.isError, true);
      assert.equal(other.body.error, 'not_found');
      const proxied = await call(client, 'http_request', { provider: 'echo', path: '/obo' });
      assert.equal(proxied.body.status, 200, proxied.text);
    } finally {
      await client.close();
    }
    const events = (await toolAudit(w)).filter((e) => e.actor === 'agent:assistant');
    assert.deepEqual(
      events.map((e) => [e.resource_id, e.details.acting_user, e.outcome]),
      [
        ['list_connections', 'user-1', 'success'],
        ['list_connections', 'user-2', 'denied'],
        ['http_request', 'user-1', 'success'],
      ],
    );
  });

  it('refuses a session without the mcp scope (403 insufficient_scope), and a session that is not valid', async () => {
    // The user holds `reports` but not `mcp`: a session can be opened, but not used on /mcp.
    const narrow = await session(agent.token, await userToken('user-2', ['reports']), ['reports']);
    const refused = await initialize({ authorization: `Bearer ${agent.token}`, 'x-nexus-session': narrow });
    assert.equal(refused.status, 403);
    assert.match(refused.headers.get('www-authenticate') ?? '', /error="insufficient_scope", scope="mcp"/);
    assert.equal(((await refused.json()) as { error: string }).error, 'insufficient_scope');

    const garbage = await initialize({
      authorization: `Bearer ${agent.token}`,
      'x-nexus-session': 'not-a-session',
    });
    assert.equal(garbage.status, 401);
    // Another agent's session does not pass for this one.
    const other = await createAgentWithToken(w.broker, 'other-assistant', {
      allowed_scopes: ['mcp'],
      allowed_workspaces: ['user-1'],
    });
    const theirs = await session(other.token, await userToken('user-1', ['mcp']), ['mcp']);
    const stolen = await initialize({ authorization: `Bearer ${agent.token}`, 'x-nexus-session': theirs });
    assert.equal(stolen.status, 401);
  });
});
