import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SecretBytes } from '../src/config/secret-value.ts';
import { signState } from '../src/modules/consent/state.ts';
import { json, startBroker, type TestBroker } from './harness.ts';

const RETURN = 'http://localhost:3000/connected?session=s1';

describe('consent handshake (no identity provider needed)', () => {
  let broker: TestBroker;
  let clock = Date.now();
  before(async () => {
    broker = await startBroker({ env: { ALLOWED_RETURN_DOMAINS: 'app.example.com' }, now: () => clock });
    const created = await broker.request({
      method: 'POST',
      url: '/providers',
      payload: {
        profile: {
          name: 'acme',
          client_id: 'acme-client',
          client_secret: 'acme-secret',
          auth_url: 'https://idp.example.com/authorize',
          token_url: 'https://idp.example.com/token',
          scopes: ['read', 'write'],
          params: { access_type: 'offline', prompt: 'consent' },
        },
      },
    });
    assert.equal(created.statusCode, 201, created.body);
    const { id } = json<{ id: string }>(created);
    await broker.request({
      method: 'POST',
      url: `/providers/${id}/aliases`,
      payload: { alias: 'acme-prod' },
    });
    await broker.request({
      method: 'POST',
      url: '/providers',
      payload: { profile: { name: 'keyed', auth_type: 'api_key' } },
    });
  });
  after(() => broker.close());

  const start = (payload: Record<string, unknown>) =>
    broker.request({ method: 'POST', url: '/v1/request-connection', payload });

  it('builds an authorization URL with PKCE S256, signed state, default scopes and extra params', async () => {
    const res = await start({ user_id: 'user-1', provider_name: 'acme-prod', return_url: RETURN });
    assert.equal(res.statusCode, 200, res.body);
    const body = json<{
      authUrl: string;
      state: string;
      scopes: string[];
      provider_id: string;
      connection_id: string;
    }>(res);
    assert.deepEqual(body.scopes, ['read', 'write']);
    const url = new URL(body.authUrl);
    assert.equal(url.origin + url.pathname, 'https://idp.example.com/authorize');
    const q = url.searchParams;
    assert.equal(q.get('response_type'), 'code');
    assert.equal(q.get('client_id'), 'acme-client');
    assert.equal(q.get('redirect_uri'), `${broker.container.config.http.baseUrl}/auth/callback`);
    assert.equal(q.get('scope'), 'read write');
    assert.equal(q.get('state'), body.state);
    assert.equal(q.get('code_challenge_method'), 'S256');
    assert.match(q.get('code_challenge') ?? '', /^[A-Za-z0-9_-]{43}$/);
    assert.equal(q.get('access_type'), 'offline');
    assert.equal(q.get('prompt'), 'consent');
    assert.equal(q.get('nonce'), null, 'no nonce without openid');
    assert.ok(!body.authUrl.includes('acme-secret'));

    const check = await broker.request({ method: 'GET', url: `/v1/check-connection/${body.connection_id}` });
    assert.deepEqual(json(check), { connection_id: body.connection_id, status: 'pending' });
    const token = await broker.request({ method: 'GET', url: `/v1/token/${body.connection_id}` });
    assert.equal(token.statusCode, 409);
    assert.equal(json(token).error, 'connection_not_active');
  });

  it('accepts the provider by id, name or alias, and explicit scopes', async () => {
    const byName = json<{ provider_id: string }>(
      await start({ user_id: 'u', provider_name: 'acme', return_url: RETURN }),
    );
    const byId = await start({
      user_id: 'u',
      provider_id: byName.provider_id,
      scopes: ['read'],
      return_url: RETURN,
    });
    assert.deepEqual(json(byId).scopes, ['read']);
    const spec = await broker.request({
      method: 'POST',
      url: '/auth/consent-spec',
      payload: {
        workspace_id: 'w',
        provider_id: 'acme-prod',
        scopes: [],
        return_url: 'https://app.example.com/cb',
      },
    });
    assert.equal(spec.statusCode, 200, spec.body);
    assert.deepEqual(Object.keys(json(spec)).sort(), ['authUrl', 'provider_id', 'scopes', 'state']);
  });

  it('rejects bad requests with clear codes and creates nothing', async () => {
    const cases: [Record<string, unknown>, number, string][] = [
      [
        { user_id: 'u', provider_name: 'acme', return_url: 'https://evil.example.net/cb' },
        400,
        'return_url_not_allowed',
      ],
      [
        { user_id: 'u', provider_name: 'acme', return_url: 'https://app.example.com.evil.net/cb' },
        400,
        'return_url_not_allowed',
      ],
      [{ user_id: 'u', provider_name: 'nope', return_url: RETURN }, 404, 'provider_not_found'],
      [
        { user_id: 'u', provider_name: 'acme', provider_id: 'acme', return_url: RETURN },
        400,
        'invalid_request',
      ],
      [{ provider_name: 'acme', return_url: RETURN }, 400, 'invalid_request'],
      [{ user_id: 'u', provider_name: 'acme', return_url: 'ftp://x/y' }, 400, 'invalid_request'],
      [
        { user_id: 'u', provider_name: 'acme', return_url: RETURN, scopes: ['has space'] },
        400,
        'invalid_request',
      ],
    ];
    for (const [payload, status, code] of cases) {
      const res = await start(payload);
      assert.equal(res.statusCode, status, JSON.stringify(payload));
      assert.equal(json(res).error, code, JSON.stringify(payload));
    }
    const unauthenticated = await broker.request({
      method: 'POST',
      url: '/v1/request-connection',
      key: null,
      payload: { user_id: 'u', provider_name: 'acme', return_url: RETURN },
    });
    assert.equal(unauthenticated.statusCode, 401);
  });

  it('points static-credential providers at the hosted capture page', async () => {
    const res = await start({ user_id: 'u', provider_name: 'keyed', return_url: RETURN });
    const { authUrl, state } = json<{ authUrl: string; state: string }>(res);
    const url = new URL(authUrl);
    assert.equal(url.pathname, '/connect/capture');
    assert.equal(url.searchParams.get('state'), state);
  });

  it('answers a tampered or foreign state with a plain page, never a redirect', async () => {
    const { state } = json<{ state: string }>(
      await start({ user_id: 'u', provider_name: 'acme', return_url: RETURN }),
    );
    const foreign = signState(new SecretBytes(new Uint8Array(32).fill(7)), {
      flowId: 'a'.repeat(24),
      expiresAt: clock + 60_000,
    });
    for (const bad of [`${state.slice(0, -3)}xyz`, foreign, 'garbage', '']) {
      const res = await broker.request({
        method: 'GET',
        url: `/auth/callback?code=abc&state=${encodeURIComponent(bad)}`,
        key: null,
      });
      assert.equal(res.statusCode, 400, bad);
      assert.match(res.headers['content-type'] as string, /text\/html/);
      assert.match(res.headers['content-security-policy'] as string, /default-src 'none'/);
      assert.equal(res.headers.location, undefined);
    }
  });

  it("passes on a provider's standard error code, never one posing as the broker's own", async () => {
    // Review (2026-12-07): any [a-z_] code was passed on, so the provider (or whoever held the
    // authorization URL) could end a consent with user_mismatch or state_reused.
    for (const [sent, passed] of [
      ['login_required', 'login_required'],
      ['user_mismatch', 'authorization_failed'],
      ['state_reused', 'authorization_failed'],
      ['made_up_code', 'authorization_failed'],
    ] as const) {
      const { state } = json<{ state: string }>(
        await start({ user_id: 'u', provider_name: 'acme', return_url: RETURN }),
      );
      const res = await broker.request({
        method: 'GET',
        url: `/auth/callback?error=${sent}&state=${encodeURIComponent(state)}`,
        key: null,
      });
      assert.equal(res.statusCode, 302, res.body);
      assert.equal(new URL(res.headers.location as string).searchParams.get('error'), passed, sent);
    }
  });

  it('passes a provider error back to the return URL, then refuses the replayed state', async () => {
    const { state, connection_id } = json<{ state: string; connection_id: string }>(
      await start({ user_id: 'u', provider_name: 'acme', return_url: RETURN }),
    );
    const first = await broker.request({
      method: 'GET',
      url: `/auth/callback?error=access_denied&state=${encodeURIComponent(state)}`,
      key: null,
    });
    assert.equal(first.statusCode, 302);
    const location = new URL(first.headers.location as string);
    assert.equal(location.origin + location.pathname, 'http://localhost:3000/connected');
    assert.equal(location.searchParams.get('session'), 's1');
    assert.equal(location.searchParams.get('status'), 'failed');
    assert.equal(location.searchParams.get('error'), 'access_denied');
    assert.equal(
      json(await broker.request({ method: 'GET', url: `/v1/check-connection/${connection_id}` })).status,
      'failed',
    );

    const replay = await broker.request({
      method: 'GET',
      url: `/auth/callback?code=abc&state=${encodeURIComponent(state)}`,
      key: null,
    });
    assert.equal(replay.statusCode, 302);
    assert.equal(new URL(replay.headers.location as string).searchParams.get('error'), 'state_reused');
  });

  it('expires a state and its pending connection after 10 minutes', async () => {
    const { state, connection_id } = json<{ state: string; connection_id: string }>(
      await start({ user_id: 'u', provider_name: 'acme', return_url: RETURN }),
    );
    clock += 10 * 60_000 + 1;
    const res = await broker.request({
      method: 'GET',
      url: `/auth/callback?code=abc&state=${encodeURIComponent(state)}`,
      key: null,
    });
    assert.equal(res.statusCode, 302);
    assert.equal(new URL(res.headers.location as string).searchParams.get('error'), 'state_expired');
    assert.equal(
      json(await broker.request({ method: 'GET', url: `/v1/check-connection/${connection_id}` })).status,
      'expired',
    );
  });

  it('revokes a pending connection idempotently', async () => {
    const { connection_id } = json<{ connection_id: string }>(
      await start({ user_id: 'u', provider_name: 'acme', return_url: RETURN }),
    );
    const first = json<{ status: string; already_revoked: boolean; provider_revoked: boolean }>(
      await broker.request({ method: 'DELETE', url: `/v1/connections/${connection_id}` }),
    );
    assert.equal(first.status, 'revoked');
    assert.equal(first.already_revoked, false);
    assert.equal(first.provider_revoked, false);
    const second = json<{ already_revoked: boolean }>(
      await broker.request({ method: 'DELETE', url: `/connections/${connection_id}` }),
    );
    assert.equal(second.already_revoked, true);
    assert.equal(
      (
        await broker.request({
          method: 'DELETE',
          url: '/v1/connections/00000000-0000-4000-8000-000000000000',
        })
      ).statusCode,
      404,
    );
  });
});
