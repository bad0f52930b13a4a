/**
 * The consent handshake and token vault against a real OpenID provider (oidc-provider on
 * loopback): PKCE required, rotating refresh tokens whose reuse revokes the whole grant.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { json } from './harness.ts';
import { clients, RETURN, Scenario, type Token } from './oauth-scenario.ts';
import { type OidcFixture, startOidcProvider } from './oidc-fixture.ts';

describe('OAuth consent and token vault against a real OpenID provider', () => {
  const s = new Scenario();
  const refreshTokensSeen = new Set<string>();
  before(() => s.start());
  // A failed test must not leave a fault behind for the next one.
  afterEach(() => s.idp.setTokenEndpointFault('none'));
  after(async () => {
    // No response of any route, in this whole suite, carried a refresh token.
    for (const token of refreshTokensSeen) {
      for (const res of s.responses) {
        assert.ok(
          !res.body.includes(token),
          `refresh token leaked in a response body: ${res.body.slice(0, 120)}`,
        );
        assert.ok(!JSON.stringify(res.headers).includes(token), 'refresh token leaked in headers');
      }
    }
    assert.ok(refreshTokensSeen.size >= 3, 'the scan saw real refresh tokens');
    await s.close();
  });
  const remember = async (id: string) => {
    const stored = await s.stored(id);
    if (stored.refresh_token) refreshTokensSeen.add(stored.refresh_token);
    return stored;
  };

  it('connects through the provider’s pages (discovery, PKCE, openid) and serves only the access token', async () => {
    const id = await s.connect('idp-discovered');
    const stored = await remember(id);
    assert.ok(stored.refresh_token, 'the vault holds a refresh token');
    const token = await s.token(id);
    assert.equal(token.strategy.type, 'oauth2');
    assert.equal(token.access_token, stored.access_token);
    assert.deepEqual(Object.keys(token.credentials).sort(), ['access_token', 'token_type']);
    assert.ok(token.expires_at);
    assert.equal(json(await s.call({ method: 'GET', url: `/v1/check-connection/${id}` })).status, 'active');
    const resolved = json<Token>(
      await s.call(
        { method: 'GET', url: '/v1/resolve?workspace_id=user-1&provider_name=idp-discovered' },
        200,
      ),
    );
    assert.equal(resolved.access_token, stored.access_token);
    // The verifier is gone once used.
    const flows = await s.broker.container.db.kysely
      .selectFrom('consent_flows')
      .select('verifier')
      .where('connection_id', '=', id)
      .execute();
    assert.deepEqual(
      flows.map((f) => f.verifier),
      [null],
    );
  });

  it('uses client_secret_basic for a provider configured with explicit URLs', async () => {
    const id = await s.connect('idp-basic', 'user-2');
    await remember(id);
    assert.ok((await s.token(id)).access_token);
  });

  it('refreshes on demand with rotation, and 50 concurrent refreshes make exactly one upstream call', async () => {
    const id = await s.connect('idp-basic', 'user-3');
    const before = await remember(id);
    const base = s.idp.counts.refresh_token;
    const results = await Promise.all(
      Array.from({ length: 50 }, () => s.call({ method: 'POST', url: `/v1/refresh/${id}` })),
    );
    assert.deepEqual([...new Set(results.map((r) => r.statusCode))], [200]);
    assert.equal(s.idp.counts.refresh_token - base, 1, 'exactly one refresh reached the provider');
    const tokens = new Set(results.map((r) => json<Token>(r).access_token));
    assert.equal(tokens.size, 1, 'every caller got the same new token');
    const after = await remember(id);
    assert.notEqual(after.access_token, before.access_token);
    assert.notEqual(
      after.refresh_token,
      before.refresh_token,
      'the provider rotated the refresh token and we kept the new one',
    );
    // The connection still works: a later refresh spends the new refresh token successfully.
    // (Forced refreshes of one connection are at least 30 s apart: decision 0012.)
    s.clock += 3_000;
    const damped = await s.call({ method: 'POST', url: `/v1/refresh/${id}` }, 200);
    assert.equal(json<Token>(damped).access_token, [...tokens][0], 'within 30 s: the fresh token again');
    assert.equal(s.idp.counts.refresh_token - base, 1, 'and no call to the provider');
    s.clock += 28_000;
    await s.call({ method: 'POST', url: `/v1/refresh/${id}` }, 200);
    assert.equal(s.idp.counts.refresh_token - base, 2);
    await remember(id);
  });

  it('refreshes an expired access token when it is read', async () => {
    const id = await s.connect('idp-discovered', 'user-4');
    const before = await remember(id);
    const base = s.idp.counts.refresh_token;
    s.clock += 2 * 3600_000;
    const token = await s.token(id);
    assert.equal(s.idp.counts.refresh_token - base, 1);
    assert.notEqual(token.access_token, before.access_token);
    s.clock -= 2 * 3600_000;
    await remember(id);
  });

  it('answers 502 and keeps the connection active when the provider is down', async () => {
    const id = await s.connect('idp-basic', 'user-5');
    const before = await remember(id);
    for (const fault of ['refuse', 'error500', 'slow'] as const) {
      s.idp.setTokenEndpointFault(fault, 4_000);
      // Past the floor between two attempts on a failing connection (15 s, doubling per failure).
      s.clock += 61_000;
      const base = s.idp.counts.token_requests;
      const res = await s.call({ method: 'POST', url: `/v1/refresh/${id}` });
      assert.equal(res.statusCode, 502, `${fault}: ${res.body}`);
      assert.equal(s.idp.counts.token_requests, base + 1, `${fault}: one attempt reached the token endpoint`);
      assert.equal(json(res).error, 'provider_unavailable');
      assert.equal(
        json(await s.call({ method: 'GET', url: `/v1/check-connection/${id}` })).status,
        'active',
        fault,
      );
      // Agents retrying at once do not reach the provider again: the answer says when to retry.
      s.clock += 3_000;
      const again = await s.call({ method: 'POST', url: `/v1/refresh/${id}` });
      assert.equal(again.statusCode, 502, again.body);
      assert.ok(json<{ details: { retry_after_seconds: number } }>(again).details.retry_after_seconds > 0);
      assert.equal(s.idp.counts.token_requests, base + 1, `${fault}: the retry did not reach the provider`);
    }
    s.idp.setTokenEndpointFault('none');
    assert.equal((await remember(id)).refresh_token, before.refresh_token, 'the refresh token was not spent');
    s.clock += 61_000;
    await s.call({ method: 'POST', url: `/v1/refresh/${id}` }, 200);
    await remember(id);
  });

  it('moves to attention_required on invalid_grant and answers 409 with a JSON body', async () => {
    const id = await s.connect('idp-basic', 'user-6');
    await remember(id);
    await s.idp.revokeAllGrants();
    s.clock += 3_000;
    const res = await s.call({ method: 'POST', url: `/v1/refresh/${id}` });
    assert.equal(res.statusCode, 409);
    assert.equal(json(res).error, 'attention_required');
    assert.equal((json(res).details as { status: string }).status, 'attention_required');
    assert.equal(
      json(await s.call({ method: 'GET', url: `/v1/check-connection/${id}` })).status,
      'attention_required',
    );
    assert.equal((await s.call({ method: 'GET', url: `/v1/token/${id}` })).statusCode, 409);
  });

  it('supersedes the older connection of the same workspace and provider', async () => {
    const first = await s.connect('idp-basic', 'user-7');
    await remember(first);
    const second = await s.connect('idp-basic', 'user-7');
    await remember(second);
    assert.equal(
      json(await s.call({ method: 'GET', url: `/v1/check-connection/${first}` })).status,
      'revoked',
    );
    assert.equal(
      json(await s.call({ method: 'GET', url: `/v1/check-connection/${second}` })).status,
      'active',
    );
  });

  it('refuses a replayed callback after success', async () => {
    const started = json<{ authUrl: string }>(
      await s.call(
        {
          method: 'POST',
          url: '/v1/request-connection',
          payload: { user_id: 'user-8', provider_name: 'idp-basic', return_url: RETURN },
        },
        200,
      ),
    );
    const callback = await s.idp.consent(started.authUrl);
    await s.call({ method: 'GET', url: callback.pathname + callback.search, key: null }, 302);
    const replay = await s.call({ method: 'GET', url: callback.pathname + callback.search, key: null }, 302);
    assert.equal(new URL(replay.headers.location as string).searchParams.get('error'), 'state_reused');
  });

  it('revokes at the provider (RFC 7009), then locally, idempotently', async () => {
    const id = await s.connect('idp-discovered', 'user-9');
    await remember(id);
    const base = s.idp.counts.revocation;
    const res = json<{ status: string; provider_revoked: boolean; already_revoked: boolean }>(
      await s.call({ method: 'DELETE', url: `/v1/connections/${id}` }, 200),
    );
    assert.equal(res.status, 'revoked');
    assert.equal(res.provider_revoked, true);
    assert.ok(s.idp.counts.revocation - base >= 1);
    assert.equal((await s.call({ method: 'GET', url: `/v1/token/${id}` })).statusCode, 409);
    assert.equal(
      json(await s.call({ method: 'DELETE', url: `/v1/connections/${id}` }, 200)).already_revoked,
      true,
    );
    const row = await s.broker.container.connectionsStore.find(id);
    assert.equal(row?.credentials, null, 'revoked tokens are erased');
  });

  it('audits every token read without the token', async () => {
    const page = json<{ events: { event_type: string; details: unknown }[] }>(
      await s.call({ method: 'GET', url: '/audit?event_type=connection.token_read&limit=500' }, 200),
    );
    assert.ok(page.events.length >= 5);
    for (const token of refreshTokensSeen) assert.ok(!JSON.stringify(page).includes(token));
  });
});

describe('a provider that does not rotate refresh tokens', () => {
  const s = new Scenario();
  before(() => s.start({ rotate: false }));
  after(() => s.close());

  it('keeps the same refresh token across two refreshes', async () => {
    const id = await s.connect('idp-basic');
    const first = await s.stored(id);
    for (let i = 0; i < 2; i++) {
      s.clock += 31_000; // past the floor between forced refreshes
      await s.call({ method: 'POST', url: `/v1/refresh/${id}` }, 200);
      assert.equal((await s.stored(id)).refresh_token, first.refresh_token);
    }
    assert.equal(s.idp.counts.refresh_token, 2);
  });
});

describe('id_token validation', () => {
  let s: Scenario;
  let other: OidcFixture;
  before(async () => {
    s = new Scenario();
    await s.start();
    other = await startOidcProvider({ clients });
  });
  after(async () => {
    await s.close();
    await other.close();
  });

  async function failedCallback(
    provider: string,
    tamper?: (connectionId: string) => Promise<void>,
    idp: OidcFixture = s.idp,
  ) {
    const started = json<{ authUrl: string; connection_id: string }>(
      await s.call(
        {
          method: 'POST',
          url: '/v1/request-connection',
          payload: { user_id: 'v', provider_name: provider, return_url: RETURN },
        },
        200,
      ),
    );
    await tamper?.(started.connection_id);
    const callback = await idp.consent(started.authUrl);
    const res = await s.call({ method: 'GET', url: callback.pathname + callback.search, key: null }, 302);
    const back = new URL(res.headers.location as string);
    assert.equal(back.searchParams.get('status'), 'failed');
    assert.equal(
      json(await s.call({ method: 'GET', url: `/v1/check-connection/${started.connection_id}` })).status,
      'failed',
    );
    return back.searchParams.get('error');
  }

  it('rejects an id_token whose nonce does not match the flow', async () => {
    const error = await failedCallback('idp-discovered', async (connectionId) => {
      await s.broker.container.db.kysely
        .updateTable('consent_flows')
        .set({ nonce: 'not-the-nonce-we-sent' })
        .where('connection_id', '=', connectionId)
        .execute();
    });
    assert.equal(error, 'id_token_invalid');
  });

  it('rejects an id_token from another issuer than the provider’s', async () => {
    // Discovery pins the issuer to the first provider; the endpoints point at another one.
    const res = await s.call({
      method: 'POST',
      url: '/providers',
      payload: {
        profile: {
          name: 'impostor',
          client_id: 'client-post',
          client_secret: 'client-post-secret',
          issuer: s.idp.issuer,
          enable_discovery: true,
          auth_url: other.endpoints.authorization,
          token_url: other.endpoints.token,
          scopes: ['openid'],
        },
      },
    });
    assert.equal(res.statusCode, 201, res.body);
    const error = await failedCallback('impostor', undefined, other);
    assert.ok(['id_token_invalid', 'authorization_failed'].includes(error ?? ''), String(error));
  });

  it('connects openid for a provider without discovery: its issuer is found at the origin of auth_url (issue #17)', async () => {
    await s.call(
      {
        method: 'POST',
        url: '/providers',
        payload: {
          profile: {
            name: 'no-discovery',
            client_id: 'client-post',
            client_secret: 'x',
            auth_url: s.idp.endpoints.authorization,
            token_url: s.idp.endpoints.token,
          },
        },
      },
      201,
    );
    const res = await s.call({
      method: 'POST',
      url: '/v1/request-connection',
      payload: { user_id: 'v', provider_name: 'no-discovery', scopes: ['openid'], return_url: RETURN },
    });
    // Once refused (openid_not_verifiable); compat-openid-no-discovery.test.ts covers the flow.
    assert.equal(res.statusCode, 200, res.body);
    assert.ok(new URL(json<{ authUrl: string }>(res).authUrl).searchParams.get('nonce'));
  });
});
