/**
 * Security review, MCP defect 2: a caller pinned to one person (an on-behalf-of session, a trusted
 * issuer's token) reaches that person's connections only, whatever the person's id. A person whose
 * id was the text "*" used to keep the agent's wildcard grant (`allowed_workspaces: ['*']`) and
 * reached every user's connections; the upstream received another user's credential.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { NexusError } from '../src/errors/nexus-error.ts';
import { createMcpIssuerAuth } from '../src/modules/mcp/mcp-issuer.ts';
import { createAgentWithToken, DIALECT } from './harness.ts';
import { call, httpClient, type McpWorld, startMcpWorld, toolClient } from './mcp-fixture.ts';

const IDP = 'https://login.example.test';

describe(`MCP: a caller pinned to a person reaches that person only (${DIALECT})`, () => {
  let w: McpWorld;
  let desk: { token: string };

  /** An on-behalf-of session of `desk` for `user`, opened by the service itself (any verifier). */
  async function oboSession(user: string) {
    const agent = await w.broker.container.agents.authenticateToken(desk.token);
    const opened = await w.broker.container.sessions.open({ actor: 'agent:desk' }, agent!, {
      scopes: ['mcp'],
      ttlSeconds: 300,
      obo: { user_id: user, tenant_id: null, clearance_level: null, issuer: IDP },
    });
    return opened.session_token!;
  }

  before(async () => {
    w = await startMcpWorld();
    const scope = await w.broker.request({
      method: 'POST',
      url: '/admin/v1/scopes',
      payload: { name: 'mcp' },
    });
    assert.equal(scope.statusCode, 201, scope.body);
    // The issuer the sessions' users come from: a session lasts while it is trusted.
    const trusted = await w.broker.request({
      method: 'POST',
      url: '/admin/v1/trusted-issuers',
      payload: { issuer: IDP, jwks_uri: `${IDP}/jwks`, audience: 'https://desk.example.test' },
    });
    assert.equal(trusted.statusCode, 201, trusted.body);
    // An agent serving every person, each pinned to their own connections.
    desk = await createAgentWithToken(w.broker, 'desk', {
      allowed_scopes: ['mcp'],
      allowed_providers: ['*'],
      allowed_workspaces: ['*'],
    });
  });
  after(async () => {
    await w?.close();
  });

  it("pinned to user-1 with a wildcard grant: user-1's connections, and another's is not found", async () => {
    const { client } = await httpClient(w, desk.token, {
      headers: { 'x-nexus-session': await oboSession('user-1') },
    });
    try {
      const own = await call(client, 'connection_status', { connection_id: w.connections['user-1'] });
      assert.equal(own.body.status, 'active', own.text);
      const other = await call(client, 'connection_status', { connection_id: w.connections['user-2'] });
      assert.equal(other.body.error, 'connection_not_found');
    } finally {
      await client.close();
    }
  });

  it('no on-behalf-of session opens for the user "*", the wildcard of grants', async () => {
    await assert.rejects(oboSession('*'), (error: NexusError) => {
      assert.equal(error.code, 'invalid_scope');
      assert.deepEqual(error.details, { gate: 'acting_for', refused: ['mcp'], acting_for: '*' });
      return true;
    });
  });

  it('a caller pinned to "*" finds no one\'s connections, and the upstream receives nothing', async () => {
    const tools = await toolClient(w, desk.token, { pinnedTo: '*' });
    try {
      const status = await call(tools.client, 'connection_status', {
        connection_id: w.connections['user-2'],
      });
      assert.equal(status.body.error, 'connection_not_found', status.text);
      const before = w.upstream.seen.length;
      const proxied = await call(tools.client, 'http_request', {
        provider: 'echo',
        path: '/as-user-2',
        connection_id: w.connections['user-2'],
      });
      assert.equal(proxied.body.error, 'connection_not_found', proxied.text);
      assert.equal(w.upstream.seen.length, before, 'nothing sent upstream');
      const listed = await call(tools.client, 'list_connections', { user_id: '*' });
      assert.deepEqual(listed.body.connections, [], listed.text);
    } finally {
      await tools.close();
    }
  });

  it('a trusted issuer\'s token for the user "*" is refused (401), whatever its verifier let through', async () => {
    const auth = createMcpIssuerAuth({
      entries: [{ issuer: IDP, agentId: 'desk', clientIds: [] }],
      resource: w.url,
      // A verifier that takes "*" for a user id (token-exchange's refuses it too, since the review).
      verify: async () => ({
        ok: true,
        issuerId: 'idp',
        issuerVersion: 1,
        issuer: IDP,
        userId: '*',
        tenantId: null,
        permissions: ['mcp'],
        clearance: null,
        expiresAt: Date.now() + 300_000,
        scopes: [],
        clientId: null,
      }),
      agents: w.broker.container.agents,
    });
    const token = ['{"alg":"none"}', JSON.stringify({ iss: IDP, sub: '*' }), '']
      .map((part) => Buffer.from(part).toString('base64url'))
      .join('.');
    const refused = await auth.authenticate(token, {} as never).then(
      () => undefined,
      (error: unknown) => error,
    );
    assert.ok(refused instanceof NexusError, 'refused');
    assert.equal(refused.status, 401);
    assert.match(refused.message, /"\*"\) names no single person/);
  });
});
