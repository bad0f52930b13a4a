/**
 * Issue #22, part 2: an MCP client acting for a person holds one token, from the developer's
 * identity provider (a real oidc-provider, a trusted issuer listed in NEXUS_MCP_ISSUERS), and
 * presents it to `/mcp` as its bearer token: no Nexus agent token. The listed agent's grant and
 * scopes apply beside the person's permissions, the tools act for that person only, and the
 * person's token never reaches an upstream.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import { createAgentWithToken, DIALECT } from './harness.ts';
import {
  CAPTURE_RETURN_URL,
  call,
  httpClient,
  type McpWorld,
  startMcpWorld,
  toolAudit,
} from './mcp-fixture.ts';
import { type OidcFixture, startOidcProvider } from './oidc-fixture.ts';

/** The audience the issuers' on-behalf-of tokens carry: not the `/mcp` resource. */
const OBO_AUDIENCE = 'https://nexus.example.test/obo';

describe(`MCP with a trusted issuer's token as the bearer token (${DIALECT})`, () => {
  let w: McpWorld;
  /** Trusted, and listed for MCP (with its client). */
  let idp: OidcFixture;
  /** Trusted for on-behalf-of, not listed for MCP. */
  let other: OidcFixture;
  /** Listed for MCP, but not a trusted issuer. */
  let stranger: OidcFixture;
  let resource: string;

  const personToken = (fixture: OidcFixture, accountId: string, permissions: string[], aud = resource) =>
    fixture.issueUserToken({ resource: aud, accountId, claims: { permissions } });
  const initialize = (token: string, headers: Record<string, string> = {}) =>
    fetch(`${w.url}/mcp`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: `Bearer ${token}`,
        ...headers,
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } },
      }),
    });
  const assertInvalidToken = async (res: Response) => {
    assert.equal(res.status, 401, await res.clone().text());
    const challenge = res.headers.get('www-authenticate') ?? '';
    assert.match(challenge, /error="invalid_token"/);
    assert.ok(challenge.includes(`resource_metadata="${resource}/.well-known/oauth-protected-resource"`));
  };

  before(async () => {
    [idp, other, stranger] = await Promise.all([
      startOidcProvider(),
      startOidcProvider(),
      startOidcProvider(),
    ]);
    const client = idp.clients.find((c) => c.token_endpoint_auth_method === 'client_secret_post')!;
    w = await startMcpWorld({
      env: { NEXUS_MCP_ISSUERS: `${idp.issuer} desk ${client.client_id}, ${stranger.issuer} desk` },
    });
    resource = w.url;
    for (const fixture of [idp, other]) {
      const trusted = await w.broker.request({
        method: 'POST',
        url: '/admin/v1/trusted-issuers',
        payload: { issuer: fixture.issuer, enable_discovery: true, audience: OBO_AUDIENCE },
      });
      assert.equal(trusted.statusCode, 201, trusted.body);
    }
    // The agent the listed issuers' MCP clients act as: its grant reaches both users.
    await createAgentWithToken(w.broker, 'desk', {
      allowed_scopes: ['mcp'],
      allowed_providers: ['*'],
      allowed_workspaces: ['user-1', 'user-2'],
    });
  });
  after(async () => {
    await w?.close();
    await Promise.all([idp?.close(), other?.close(), stranger?.close()]);
  });

  it('advertises the issuers listed for MCP as authorization servers', async () => {
    const res = await fetch(`${w.url}/.well-known/oauth-protected-resource`);
    const metadata = (await res.json()) as { resource: string; authorization_servers: string[] };
    assert.equal(metadata.resource, resource);
    assert.deepEqual(metadata.authorization_servers.sort(), [resource, idp.issuer, stranger.issuer].sort());
  });

  it("lists and uses the person's own connections only, as the listed agent", async () => {
    const token = await personToken(idp, 'user-1', ['mcp']);
    const { client } = await httpClient(w, token);
    try {
      const listed = await call(client, 'list_connections');
      assert.deepEqual(
        listed.body.connections.map((c: { connection_id: string }) => c.connection_id),
        [w.connections['user-1']],
      );
      // The agent's grant reaches user-2; the person's does not.
      const theirs = await call(client, 'list_connections', { user_id: 'user-2' });
      assert.equal(theirs.body.error, 'not_found');
      const status = await call(client, 'connection_status', { connection_id: w.connections['user-2'] });
      assert.equal(status.isError, true);
      assert.equal(status.body.error, 'connection_not_found');
      const viaId = await call(client, 'http_request', {
        provider: 'echo',
        path: '/theirs',
        connection_id: w.connections['user-2'],
      });
      assert.equal(viaId.body.error, 'connection_not_found');
      const own = await call(client, 'connection_status', { connection_id: w.connections['user-1'] });
      assert.equal(own.body.status, 'active', own.text);

      const before = w.upstream.seen.length;
      const proxied = await call(client, 'http_request', { provider: 'echo', path: '/mine' });
      assert.equal(proxied.body.status, 200, proxied.text);
      const seen = w.upstream.seen.slice(before);
      assert.equal(seen.length, 1);
      assert.equal(seen[0]!.headers['x-api-key'], w.apiKeys['user-1']);
      // The person's token went nowhere upstream.
      assert.ok(!JSON.stringify(seen[0]!.headers).includes(token.split('.')[2]!));
    } finally {
      await client.close();
    }
    const events = (await toolAudit(w)).filter((e) => e.actor === 'agent:desk');
    assert.deepEqual(
      events.map((e) => [e.resource_id, e.details.acting_user, e.outcome, e.details.via, e.details.issuer]),
      [
        ['list_connections', 'user-1', 'success', 'trusted_issuer', idp.issuer],
        ['list_connections', 'user-2', 'denied', 'trusted_issuer', idp.issuer],
        ['connection_status', 'user-1', 'denied', 'trusted_issuer', idp.issuer],
        ['http_request', 'user-1', 'denied', 'trusted_issuer', idp.issuer],
        ['connection_status', 'user-1', 'success', 'trusted_issuer', idp.issuer],
        ['http_request', 'user-1', 'success', 'trusted_issuer', idp.issuer],
      ],
    );
  });

  it("keeps one person's MCP session from another person of the same agent", async () => {
    const opened = await initialize(await personToken(idp, 'user-1', ['mcp']));
    assert.equal(opened.status, 200, await opened.clone().text());
    const session = opened.headers.get('mcp-session-id')!;
    await opened.body?.cancel();
    const stolen = await fetch(`${w.url}/mcp`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: `Bearer ${await personToken(idp, 'user-2', ['mcp'])}`,
        'mcp-session-id': session,
        'mcp-protocol-version': '2025-06-18',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }),
    });
    assert.equal(stolen.status, 404);
  });

  it('connect starts a connection for the person, as the listed agent (through request-connection)', async () => {
    const { client } = await httpClient(w, await personToken(idp, 'user-2', ['mcp']));
    try {
      const started = await call(client, 'connect', { provider: 'echo', return_url: CAPTURE_RETURN_URL });
      assert.equal(started.isError, false, started.text);
      assert.equal(started.body.status, 'pending');
      assert.match(started.body.authorization_url, /\/connect\/capture\?state=/);
      const status = await call(client, 'connection_status', { connection_id: started.body.connection_id });
      assert.equal(status.body.status, 'pending', status.text);
      // Another person, though the agent's grant reaches them: not there for this caller.
      const theirs = await call(client, 'connect', {
        provider: 'echo',
        user_id: 'user-1',
        return_url: CAPTURE_RETURN_URL,
      });
      assert.equal(theirs.body.error, 'not_found');
    } finally {
      await client.close();
    }
  });

  it('refuses a token for another audience, an expired one, and one from an unknown issuer (401)', async () => {
    // Issued for the on-behalf-of audience: good for an exchange, not for /mcp.
    await assertInvalidToken(await initialize(await personToken(idp, 'user-1', ['mcp'], OBO_AUDIENCE)));
    const t = Math.floor(Date.now() / 1000);
    const expired = await idp.signWithProviderKey({
      sub: 'user-1',
      aud: resource,
      client_id: decodeJwt(await personToken(idp, 'user-1', ['mcp'])).client_id,
      permissions: ['mcp'],
      iat: t - 600,
      exp: t - 300,
    });
    await assertInvalidToken(await initialize(expired));
    // Listed for MCP, but no trusted issuer: its keys are never fetched.
    await assertInvalidToken(await initialize(await personToken(stranger, 'user-1', ['mcp'])));
  });

  it('refuses a trusted issuer that is not listed for MCP (401)', async () => {
    const token = await personToken(other, 'user-1', ['mcp']);
    await assertInvalidToken(await initialize(token));
    // The same issuer's token still works where it is trusted: an agent's on-behalf-of exchange.
    const scope = await w.broker.request({
      method: 'POST',
      url: '/admin/v1/scopes',
      payload: { name: 'mcp' },
    });
    assert.equal(scope.statusCode, 201, scope.body);
    const agent = await createAgentWithToken(w.broker, 'exchanger', {
      allowed_scopes: ['mcp'],
      allowed_workspaces: ['user-1'],
    });
    const exchanged = await w.broker.request({
      method: 'POST',
      url: '/v1/agent-sessions/obo',
      key: null,
      headers: { authorization: `Bearer ${agent.token}` },
      payload: { user_token: await personToken(other, 'user-1', ['mcp'], OBO_AUDIENCE), scopes: ['mcp'] },
    });
    assert.equal(exchanged.statusCode, 201, exchanged.body);
  });

  it('refuses a token without the mcp scope (403 insufficient_scope)', async () => {
    const res = await initialize(await personToken(idp, 'user-2', ['reports']));
    assert.equal(res.status, 403);
    const challenge = res.headers.get('www-authenticate') ?? '';
    assert.match(challenge, /error="insufficient_scope", scope="mcp"/);
    assert.ok(challenge.includes(`resource_metadata="${resource}/.well-known/oauth-protected-resource"`));
    const body = (await res.json()) as { error: string; message: string };
    assert.equal(body.error, 'insufficient_scope');
    assert.match(body.message, /token lacks the mcp scope/);
  });
});
