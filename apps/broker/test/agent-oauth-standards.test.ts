import assert from 'node:assert/strict';
import type { webcrypto } from 'node:crypto';
import { createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import * as client from 'openid-client';
import { createAgentWithToken, json, startBroker, type TestBroker } from './harness.ts';
import { type OidcFixture, startOidcProvider } from './oidc-fixture.ts';

/**
 * Issue #17, "standards that third-party clients discover": a stock OAuth client (openid-client, not
 * our code) finds the broker through its RFC 8414 metadata document, authenticates with
 * client_secret_basic, client_secret_post and private_key_jwt, introspects tokens (RFC 7662) and
 * exchanges a user's token (RFC 8693) naming its targets. The broker listens on a real port; the
 * user's IdP is a real OpenID provider (oidc-provider).
 */

const AUDIENCE = 'https://nexus.example.test/standards';
const RETURN = 'http://localhost:3000/done';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_TYPE = 'urn:ietf:params:oauth:token-type:jwt';

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** openid-client's answer to an error response: its `error` code and HTTP status. */
const oauthError =
  (error: string, status = 400) =>
  (e: unknown) => {
    assert.ok(e instanceof client.ResponseBodyError, String(e));
    assert.deepEqual([e.error, e.status], [error, status], JSON.stringify(e.cause));
    return true;
  };

describe('OAuth standards, driven by openid-client', () => {
  let idp: OidcFixture;
  let broker: TestBroker;
  let issuer: string;
  let assistant: { id: string; agent_id: string; client_secret: string };
  let other: { agent_id: string; client_secret: string };
  let aliceConnection: string;
  let bobConnection: string;
  let aliceToken: string;
  /** openid-client configurations of the assistant agent, one per client authentication method. */
  const configs: Record<
    'client_secret_basic' | 'client_secret_post' | 'private_key_jwt',
    client.Configuration
  > = {} as never;
  let otherConfig: client.Configuration;

  const call = (options: Parameters<TestBroker['request']>[0]) => broker.request(options);
  const discover = (clientId: string, auth: client.ClientAuth) =>
    client.discovery(new URL(issuer), clientId, undefined, auth, {
      algorithm: 'oauth2',
      execute: [client.allowInsecureRequests],
    });
  const exchange = (config: client.Configuration, extra: Record<string, string> | [string, string][] = {}) =>
    client.genericGrantRequest(
      config,
      TOKEN_EXCHANGE,
      new URLSearchParams([
        ['subject_token', aliceToken],
        ['subject_token_type', JWT_TYPE],
        ...(Array.isArray(extra) ? extra : Object.entries(extra)),
      ]),
    );

  async function connect(workspace: string): Promise<string> {
    const started = json<{ state: string; connection_id: string }>(
      await call({
        method: 'POST',
        url: '/v1/request-connection',
        payload: { user_id: workspace, provider_name: 'crm', scopes: ['contacts.read'], return_url: RETURN },
      }),
    );
    await call({
      method: 'POST',
      url: '/v1/capture-credential',
      key: null,
      payload: { state: started.state, credentials: { api_key: `k-${workspace}` } },
    });
    return started.connection_id;
  }

  before(async () => {
    idp = await startOidcProvider();
    const port = await freePort();
    issuer = `http://127.0.0.1:${port}`;
    broker = await startBroker({ env: { BASE_URL: issuer } });
    await broker.app.listen({ port, host: '127.0.0.1' });

    await call({
      method: 'POST',
      url: '/providers',
      payload: { profile: { name: 'crm', auth_type: 'api_key' } },
    });
    await call({ method: 'POST', url: '/admin/v1/scopes', payload: { name: 'crm:read' } });
    const trusted = await call({
      method: 'POST',
      url: '/admin/v1/trusted-issuers',
      payload: {
        issuer: idp.issuer,
        use_discovery: true,
        audience: AUDIENCE,
        tenant_claim: 'tenant',
        clearance_claim: 'clearance',
      },
    });
    assert.equal(trusted.statusCode, 201, trusted.body);
    aliceConnection = await connect('alice');
    bobConnection = await connect('bob');

    const keys = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
      'sign',
      'verify',
    ])) as webcrypto.CryptoKeyPair;
    const publicJwk = await crypto.subtle.exportKey('jwk', keys.publicKey);
    const created = await call({
      method: 'POST',
      url: '/admin/v1/agents',
      payload: {
        agent_id: 'assistant',
        allowed_scopes: ['crm:read', 'contacts.read'],
        allowed_providers: ['crm'],
        allowed_workspaces: ['*'],
        jwks: { keys: [{ ...publicJwk, kid: 'assistant-1', alg: 'ES256', use: 'sig' }] },
      },
    });
    assert.equal(created.statusCode, 201, created.body);
    assistant = json(created);
    other = json(
      await call({
        method: 'POST',
        url: '/admin/v1/agents',
        payload: { agent_id: 'other', allowed_scopes: ['crm:read'], allowed_workspaces: ['*'] },
      }),
    );
    configs.client_secret_basic = await discover(
      'assistant',
      client.ClientSecretBasic(assistant.client_secret),
    );
    configs.client_secret_post = await discover(
      'assistant',
      client.ClientSecretPost(assistant.client_secret),
    );
    configs.private_key_jwt = await discover(
      'assistant',
      client.PrivateKeyJwt({ key: keys.privateKey, kid: 'assistant-1' }),
    );
    otherConfig = await discover('other', client.ClientSecretBasic(other.client_secret));
    aliceToken = await idp.signWithProviderKey({
      sub: 'alice',
      aud: AUDIENCE,
      iat: Math.floor(Date.now() / 1000),
      exp: Math.floor(Date.now() / 1000) + 900,
      permissions: ['crm:read', 'contacts.read'],
      tenant: 'acme',
      clearance: 2,
    });
  });
  after(async () => {
    await broker?.close();
    await idp?.close();
  });

  it('publishes RFC 8414 metadata that openid-client discovers: introspection, token exchange, every auth method and algorithm', () => {
    const meta = configs.client_secret_basic.serverMetadata();
    assert.equal(meta.issuer, issuer);
    assert.equal(meta.introspection_endpoint, `${issuer}/oauth/introspect`);
    assert.deepEqual(meta.grant_types_supported, ['client_credentials', TOKEN_EXCHANGE]);
    const methods = ['client_secret_basic', 'client_secret_post', 'private_key_jwt'];
    assert.deepEqual(meta.token_endpoint_auth_methods_supported, methods);
    assert.deepEqual(meta.introspection_endpoint_auth_methods_supported, methods);
    const algorithms = ['ES256', 'ES384', 'RS256', 'PS256', 'EdDSA'];
    assert.deepEqual(meta.token_endpoint_auth_signing_alg_values_supported, algorithms);
    assert.deepEqual(meta.introspection_endpoint_auth_signing_alg_values_supported, algorithms);
    assert.deepEqual(meta.token_exchange_requested_token_types_supported, [JWT_TYPE]);
    assert.ok((meta.token_exchange_subject_token_types_supported as string[]).includes(JWT_TYPE));
    assert.deepEqual(meta.token_exchange_actor_token_types_supported, [
      'urn:ietf:params:oauth:token-type:access_token',
      JWT_TYPE,
    ]);
  });

  for (const method of ['client_secret_basic', 'client_secret_post', 'private_key_jwt'] as const) {
    it(`exchanges a user's token and introspects the result with ${method}`, async () => {
      const config = configs[method];
      const exchanged = await exchange(config, { scope: 'crm:read', audience: issuer });
      assert.equal(exchanged.issued_token_type, JWT_TYPE);
      assert.equal(exchanged.token_type, 'n_a');
      assert.equal(exchanged.scope, 'crm:read');

      const session = await client.tokenIntrospection(config, exchanged.access_token);
      assert.equal(session.active, true);
      assert.equal(session.client_id, 'assistant');
      assert.equal(session.sub, 'alice');
      assert.equal(session.acting_for, 'alice');
      assert.deepEqual(session.act, { sub: assistant.id, client_id: 'assistant' });
      assert.equal(session.clearance_level, 2, 'a number stays a number');

      // Its own access token too (client_credentials, also through openid-client).
      const own = await client.clientCredentialsGrant(config, { scope: 'crm:read' });
      const access = await client.tokenIntrospection(config, own.access_token);
      assert.equal(access.active, true);
      assert.equal(access.token_type, 'Bearer');
      assert.equal(access.client_id, 'assistant');
      assert.equal(access.sub, assistant.id);
      assert.equal(access.scope, 'crm:read');
    });
  }

  it("answers active: false to an agent introspecting another agent's tokens (RFC 7662 §2.2)", async () => {
    const exchanged = await exchange(configs.client_secret_basic, { scope: 'crm:read' });
    assert.deepEqual(await client.tokenIntrospection(otherConfig, exchanged.access_token), { active: false });
    const own = await client.clientCredentialsGrant(configs.client_secret_post);
    assert.deepEqual(await client.tokenIntrospection(otherConfig, own.access_token), { active: false });
    // The operator still sees everything.
    const admin = json(
      await call({
        method: 'POST',
        url: '/oauth/introspect',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams({ token: exchanged.access_token }).toString(),
      }),
    );
    assert.equal(admin.active, true);
  });

  it('refuses a client that fails authentication at the introspection endpoint with 401 invalid_client', async () => {
    const wrong = await discover('assistant', client.ClientSecretPost(other.client_secret));
    // A 401 carries a WWW-Authenticate challenge (RFC 6749 §5.2), which openid-client raises as such.
    const failure = await client.tokenIntrospection(wrong, 'anything').then(
      () => assert.fail('introspection with a wrong secret succeeded'),
      (e: unknown) => e,
    );
    assert.ok(failure instanceof client.WWWAuthenticateChallengeError, String(failure));
    assert.equal(failure.status, 401);
    assert.equal(((await failure.response.json()) as { error: string }).error, 'invalid_client');
  });

  it('binds the session to a connection named as the resource, and refuses targets it cannot issue for', async () => {
    const config = configs.client_secret_post;
    const bound = await exchange(config, {
      scope: 'crm:read contacts.read',
      resource: `urn:nexus:connection:${aliceConnection}`,
    });
    assert.equal(bound.scope, 'crm:read contacts.read');
    assert.equal(bound.connection_id, aliceConnection);
    assert.equal(bound.downscoped, false, 'an API-key provider cannot narrow, and the answer says so');
    assert.equal(decodeJwt(bound.access_token).scope, 'crm:read contacts.read');

    // Provider scopes need a connection; without one they are refused as before.
    await assert.rejects(exchange(config, { scope: 'contacts.read' }), oauthError('invalid_scope'));
    const refused: [string, Record<string, string> | [string, string][]][] = [
      ['another audience', { scope: 'crm:read', audience: 'https://api.example.test' }],
      ['another resource', { scope: 'crm:read', resource: 'https://api.example.test/v1' }],
      [
        "another user's connection",
        { scope: 'contacts.read', resource: `urn:nexus:connection:${bobConnection}` },
      ],
      [
        'a connection that does not exist',
        { scope: 'contacts.read', resource: `urn:nexus:connection:${crypto.randomUUID()}` },
      ],
      [
        'two connections',
        [
          ['scope', 'contacts.read'],
          ['resource', `urn:nexus:connection:${aliceConnection}`],
          ['resource', `urn:nexus:connection:${bobConnection}`],
        ],
      ],
    ];
    for (const [label, extra] of refused)
      await assert.rejects(exchange(config, extra), oauthError('invalid_target'), label);
  });
});

describe('agent OAuth details (issue #17)', () => {
  let broker: TestBroker;
  let idp: OidcFixture;
  const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
  const call = (options: Parameters<TestBroker['request']>[0]) => broker.request(options);

  before(async () => {
    idp = await startOidcProvider();
    broker = await startBroker();
    await call({ method: 'POST', url: '/admin/v1/scopes', payload: { name: 'crm:read' } });
  });
  after(async () => {
    await broker?.close();
    await idp?.close();
  });

  it('introspects with a bearer token: its own session tokens only; never two authentications at once', async () => {
    const agents: Record<string, { id: string; secret: string; token: string }> = {};
    for (const name of ['reader', 'stranger'])
      agents[name] = await createAgentWithToken(broker, name, { allowed_scopes: ['crm:read'] });
    const opened = json<{ session_token: string }>(
      await call({
        method: 'POST',
        url: '/v1/agent-sessions',
        key: null,
        headers: { authorization: `Bearer ${agents.reader!.token}` },
        payload: { scopes: ['crm:read'] },
      }),
    );
    // A session token not acting for anyone is about its agent: `sub` is the agent's id, as in
    // its access tokens; `client_id` its agent_id.
    const claims = decodeJwt(opened.session_token);
    assert.deepEqual([claims.sub, claims.client_id], [agents.reader!.id, 'reader']);
    const introspect = (bearer: string, form: Record<string, string> = {}) =>
      call({
        method: 'POST',
        url: '/oauth/introspect',
        key: null,
        headers: { ...FORM, authorization: `Bearer ${bearer}` },
        payload: new URLSearchParams({ token: opened.session_token, ...form }).toString(),
      });
    assert.equal(json(await introspect(agents.reader!.token)).active, true);
    assert.deepEqual(json(await introspect(agents.stranger!.token)), { active: false });
    const twice = await introspect(agents.reader!.token, {
      client_id: 'reader',
      client_secret: agents.reader!.secret,
    });
    assert.equal(twice.statusCode, 400, twice.body);
    const nobody = await call({
      method: 'POST',
      url: '/oauth/introspect',
      key: null,
      headers: FORM,
      payload: new URLSearchParams({ token: opened.session_token }).toString(),
    });
    assert.equal(nobody.statusCode, 401, nobody.body);
  });

  it('says whom a workspace refusal is about, and which scopes it refused', async () => {
    await call({
      method: 'POST',
      url: '/admin/v1/trusted-issuers',
      payload: { issuer: idp.issuer, enable_discovery: true, audience: AUDIENCE },
    });
    const { token } = await createAgentWithToken(broker, 'bob-only', {
      allowed_scopes: ['crm:read'],
      allowed_workspaces: ['bob'],
    });
    const userToken = await idp.signWithProviderKey({
      sub: 'alice',
      aud: AUDIENCE,
      exp: Math.floor(Date.now() / 1000) + 600,
      permissions: ['crm:read'],
    });
    const res = await call({
      method: 'POST',
      url: '/v1/agent-sessions/obo',
      key: null,
      headers: { authorization: `Bearer ${token}` },
      payload: { user_token: userToken, scopes: ['crm:read'] },
    });
    assert.equal(res.statusCode, 400, res.body);
    assert.deepEqual(json(res).details, { gate: 'acting_for', refused: ['crm:read'], acting_for: 'alice' });
  });

  it('keeps a numeric clearance level a number in tokens, and text in the session API (its contract)', async () => {
    const issuers = json<{ trusted_issuers: { id: string }[] }>(
      await call({ method: 'GET', url: '/admin/v1/trusted-issuers' }),
    ).trusted_issuers;
    await call({
      method: 'PATCH',
      url: `/admin/v1/trusted-issuers/${issuers[0]!.id}`,
      payload: { clearance_claim: 'clearance' },
    });
    const { token } = await createAgentWithToken(broker, 'cleared', {
      allowed_scopes: ['crm:read'],
      allowed_workspaces: ['*'],
    });
    const userToken = await idp.signWithProviderKey({
      sub: 'carol',
      aud: AUDIENCE,
      exp: Math.floor(Date.now() / 1000) + 600,
      permissions: ['crm:read'],
      clearance: 2,
    });
    const res = await call({
      method: 'POST',
      url: '/v1/agent-sessions/obo',
      key: null,
      headers: { authorization: `Bearer ${token}` },
      payload: { user_token: userToken, scopes: ['crm:read'] },
    });
    assert.equal(res.statusCode, 201, res.body);
    const session = json<{ clearance_level: unknown; session_token: string }>(res);
    assert.equal(session.clearance_level, '2');
    assert.equal(decodeJwt(session.session_token).clearance_level, 2);
  });

  it('accepts enable_discovery and use_discovery for trusted issuers and providers, documented as enable_discovery', async () => {
    const issuers = json<{
      trusted_issuers: { id: string; enable_discovery: boolean; use_discovery: boolean }[];
    }>(await call({ method: 'GET', url: '/admin/v1/trusted-issuers' })).trusted_issuers;
    assert.deepEqual([issuers[0]!.enable_discovery, issuers[0]!.use_discovery], [true, true]);
    const conflicting = await call({
      method: 'POST',
      url: '/admin/v1/trusted-issuers',
      payload: {
        issuer: 'https://other-idp.example.test',
        enable_discovery: true,
        use_discovery: false,
        audience: AUDIENCE,
      },
    });
    assert.equal(conflicting.statusCode, 400, conflicting.body);

    const provider = await call({
      method: 'POST',
      url: '/providers',
      payload: {
        profile: {
          name: 'discovered',
          client_id: 'client-post',
          client_secret: 'client-post-secret',
          issuer: idp.issuer,
          use_discovery: true,
        },
      },
    });
    assert.equal(provider.statusCode, 201, provider.body);
    const view = json(await call({ method: 'GET', url: `/providers/${json(provider).id}` }));
    assert.equal(view.enable_discovery, true);
    const both = await call({
      method: 'POST',
      url: '/providers',
      payload: {
        profile: { name: 'both', issuer: idp.issuer, enable_discovery: false, use_discovery: true },
      },
    });
    assert.equal(both.statusCode, 400, both.body);
  });
});

describe('failed client authentication at the introspection endpoint', () => {
  let broker: TestBroker;
  before(async () => {
    broker = await startBroker({ env: { RATE_LIMIT_ENABLED: 'true', RATE_LIMIT_AUTH_FAILURES_RPM: '3' } });
  });
  after(async () => broker?.close());

  it("is counted against the client's credential family, and never refuses that client's valid secret", async () => {
    const created = json<{ client_secret: string }>(
      await broker.request({
        method: 'POST',
        url: '/admin/v1/agents',
        payload: { agent_id: 'prober', allowed_scopes: [] },
      }),
    );
    // A secret of the right shape with a made-up id: a credential family of its own.
    const guessed = `nxs_${'0'.repeat(16)}_${'A'.repeat(43)}`;
    const introspect = (secret: string) =>
      broker.request({
        method: 'POST',
        url: '/oauth/introspect',
        key: null,
        remoteAddress: '192.0.2.77',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: `Basic ${Buffer.from(`prober:${secret}`).toString('base64')}`,
        },
        payload: 'token=not-a-token',
      });
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await introspect(guessed)).statusCode);
    assert.deepEqual(statuses, [401, 401, 401, 429, 429]);
    const valid = await introspect(created.client_secret);
    assert.equal(valid.statusCode, 200, valid.body);
    assert.deepEqual(json(valid), { active: false });
  });
});
