/**
 * Issue #22, part 2: `/mcp` as an OAuth-protected resource. Discovery runs as an MCP client runs
 * it (the SDK's own auth flow): 401 with `resource_metadata`, the protected-resource metadata
 * (RFC 9728), the authorization-server metadata (RFC 8414), a client-credentials token for this
 * resource (RFC 8707), then the call. Tokens for another audience, expired ones and ones without
 * the `mcp` scope are refused, each with the challenge RFC 6750 describes.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import {
  discoverOAuthProtectedResourceMetadata,
  extractWWWAuthenticateParams,
} from '@modelcontextprotocol/sdk/client/auth.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { checkResourceAllowed } from '@modelcontextprotocol/sdk/shared/auth-utils.js';
import { SignJWT } from 'jose';
import { createAgentWithToken, DIALECT, json } from './harness.ts';
import { type McpWorld, startMcpWorld } from './mcp-fixture.ts';

const INITIALIZE = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } },
};

describe(`/mcp as an OAuth-protected resource (${DIALECT})`, () => {
  let w: McpWorld;
  const post = (headers: Record<string, string>) =>
    fetch(`${w.url}/mcp`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        ...headers,
      },
      body: JSON.stringify(INITIALIZE),
    });
  /** An access token signed with the broker's own key, with claims of the test's choosing. */
  async function mint(claims: { aud: string; exp: number; scope: string }) {
    const signer = await w.broker.container.signingKeys.signer();
    const iat = Math.floor(Date.now() / 1000) - 60;
    return new SignJWT({ client_id: 'mcp-a', scope: claims.scope })
      .setProtectedHeader({ alg: signer.alg, kid: signer.kid, typ: 'at+jwt' })
      .setIssuer(w.url)
      .setAudience(claims.aud)
      .setSubject(w.agents.a.id)
      .setIssuedAt(iat)
      .setExpirationTime(claims.exp)
      .setJti(randomUUID())
      .sign(signer.privateKey);
  }

  before(async () => {
    w = await startMcpWorld();
  });
  after(async () => {
    await w?.close();
  });

  it('publishes protected-resource metadata naming the broker as authorization server', async () => {
    const res = await fetch(`${w.url}/.well-known/oauth-protected-resource`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), {
      resource: w.url,
      authorization_servers: [w.url],
      bearer_methods_supported: ['header'],
      scopes_supported: ['mcp'],
      resource_name: 'Nexus',
    });
  });

  it('answers 401 with WWW-Authenticate naming the resource metadata', async () => {
    const res = await post({});
    assert.equal(res.status, 401);
    assert.equal(
      res.headers.get('www-authenticate'),
      `Bearer scope="mcp", resource_metadata="${w.url}/.well-known/oauth-protected-resource"`,
    );
  });

  it('an MCP client discovers, gets a token for this resource, and calls', async () => {
    const server = new URL(`${w.url}/mcp`);
    // 1. The first call is refused; the challenge names the resource metadata and the scope.
    const refused = await post({});
    const challenge = extractWWWAuthenticateParams(refused);
    assert.equal(refused.status, 401);
    assert.equal(challenge.scope, 'mcp');
    // 2. The protected-resource metadata, read and checked by the SDK (RFC 9728).
    const prm = await discoverOAuthProtectedResourceMetadata(server, {
      resourceMetadataUrl: challenge.resourceMetadataUrl!,
    });
    // The resource the client asks a token for, as the SDK chooses it (the metadata's, if it covers /mcp).
    assert.ok(checkResourceAllowed({ requestedResource: server, configuredResource: prm.resource }));
    // 3. The authorization server's metadata (RFC 8414). The SDK's own auth() cannot be used past
    // this point: its schema requires an authorization_endpoint, which a client-credentials-only
    // server does not have (RFC 8414 §2: required only when a grant uses it).
    const as = (await (
      await fetch(`${prm.authorization_servers![0]}/.well-known/oauth-authorization-server`)
    ).json()) as {
      token_endpoint: string;
      grant_types_supported: string[];
    };
    assert.ok(as.grant_types_supported.includes('client_credentials'));
    // 4. A token for this resource (RFC 8707), with the scope the challenge named.
    const tokenRes = await fetch(as.token_endpoint, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`mcp-a:${w.agents.a.secret}`).toString('base64')}`,
      },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        scope: challenge.scope!,
        resource: prm.resource,
      }),
    });
    assert.equal(tokenRes.status, 200);
    const { access_token } = (await tokenRes.json()) as { access_token: string };
    // 5. The call, with the official client.
    const client = new Client({ name: 'discovering-client', version: '1.0.0' });
    try {
      await client.connect(
        new StreamableHTTPClientTransport(server, {
          requestInit: { headers: { authorization: `Bearer ${access_token}` } },
        }),
      );
      assert.equal((await client.listTools()).tools.length, 5);
    } finally {
      await client.close();
    }
  });

  it('refuses a token for another audience, and an expired one', async () => {
    const exp = Math.floor(Date.now() / 1000) + 300;
    const control = await post({ authorization: `Bearer ${await mint({ aud: w.url, exp, scope: 'mcp' })}` });
    assert.equal(control.status, 200, 'a token minted the same way for this resource passes');
    for (const token of [
      await mint({ aud: 'https://other-resource.example', exp, scope: 'mcp' }),
      await mint({ aud: w.url, exp: Math.floor(Date.now() / 1000) - 5, scope: 'mcp' }),
    ]) {
      const res = await post({ authorization: `Bearer ${token}` });
      assert.equal(res.status, 401);
      assert.match(
        res.headers.get('www-authenticate') ?? '',
        /^Bearer error="invalid_token", scope="mcp", resource_metadata="/,
      );
    }
  });

  it('refuses a token without the mcp scope: 403 insufficient_scope naming scope and metadata', async () => {
    const narrow = await createAgentWithToken(w.broker, 'no-mcp-scope', {
      allowed_scopes: ['reports'],
      allowed_providers: ['*'],
      allowed_workspaces: ['user-1'],
    });
    const res = await post({ authorization: `Bearer ${narrow.token}` });
    assert.equal(res.status, 403);
    assert.equal(
      res.headers.get('www-authenticate'),
      `Bearer error="insufficient_scope", scope="mcp", resource_metadata="${w.url}/.well-known/oauth-protected-resource"`,
    );
    const body = (await res.json()) as { error: string; details: unknown };
    assert.equal(body.error, 'insufficient_scope');
    assert.deepEqual(body.details, {
      scope: 'mcp',
      resource_metadata: `${w.url}/.well-known/oauth-protected-resource`,
    });
  });

  it('takes the mcp scope from tokens already issued when the agent loses it', async () => {
    const agent = await createAgentWithToken(w.broker, 'mcp-then-not', {
      allowed_scopes: ['mcp'],
      allowed_providers: ['*'],
      allowed_workspaces: ['user-1'],
    });
    assert.equal((await post({ authorization: `Bearer ${agent.token}` })).status, 200);
    const patched = await w.broker.request({
      method: 'PATCH',
      url: '/admin/v1/agents/mcp-then-not',
      payload: { allowed_scopes: [] },
    });
    assert.equal(patched.statusCode, 200, patched.body);
    const res = await post({ authorization: `Bearer ${agent.token}` });
    assert.equal(res.status, 403, 'the token still says mcp; the agent no longer holds it');
    assert.equal(((await res.json()) as { error: string }).error, 'insufficient_scope');
  });

  it('issues client-credentials tokens only for this broker as resource (RFC 8707)', async () => {
    const login = (resource: string) =>
      w.broker.request({
        method: 'POST',
        url: '/oauth/token',
        key: null,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams({
          grant_type: 'client_credentials',
          client_id: 'mcp-a',
          client_secret: w.agents.a.secret,
          resource,
        }).toString(),
      });
    assert.equal((await login(`${w.url}/mcp`)).statusCode, 200);
    assert.equal((await login(`${w.url}/`)).statusCode, 200);
    const foreign = await login('https://other-resource.example/mcp');
    assert.equal(foreign.statusCode, 400, foreign.body);
    assert.equal(json(foreign).error, 'invalid_target');
  });
});
