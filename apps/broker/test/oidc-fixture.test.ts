/**
 * Self-test of the OpenID provider fixture (oidc-fixture.ts), driven with oauth4webapi as a client would.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as oauth from 'oauth4webapi';
import {
  DEFAULT_ACCOUNT_ID,
  type OidcFixture,
  type OidcFixtureClient,
  startOidcProvider,
} from './oidc-fixture.ts';

const REDIRECT_URI = 'http://127.0.0.1:9/callback';
const POST_CLIENT = {
  client_id: 'nexus-post',
  client_secret: 'nexus-post-secret',
  token_endpoint_auth_method: 'client_secret_post',
  redirect_uris: [REDIRECT_URI],
} satisfies OidcFixtureClient;
const BASIC_CLIENT = {
  client_id: 'nexus-basic',
  client_secret: 'nexus-basic-secret',
  token_endpoint_auth_method: 'client_secret_basic',
  redirect_uris: [REDIRECT_URI],
} satisfies OidcFixtureClient;

const REQUEST_TIMEOUT_MS = 5_000;
const insecure = { [oauth.allowInsecureRequests]: true } as const;
const requestOptions = () => ({ ...insecure, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });

interface Rp {
  as: oauth.AuthorizationServer;
  client: oauth.Client;
  auth: oauth.ClientAuth;
}

async function discover(fixture: OidcFixture): Promise<oauth.AuthorizationServer> {
  const issuer = new URL(fixture.issuer);
  const response = await oauth.discoveryRequest(issuer, { ...requestOptions(), algorithm: 'oidc' });
  return oauth.processDiscoveryResponse(issuer, response);
}

function rpFor(as: oauth.AuthorizationServer, client: typeof POST_CLIENT | typeof BASIC_CLIENT): Rp {
  return {
    as,
    client: { client_id: client.client_id },
    auth:
      client.token_endpoint_auth_method === 'client_secret_post'
        ? oauth.ClientSecretPost(client.client_secret)
        : oauth.ClientSecretBasic(client.client_secret),
  };
}

/** Builds an authorization URL like the broker would, runs consent() and validates the response. */
async function authorize(
  fixture: OidcFixture,
  rp: Rp,
  { pkce = true, scope = 'openid email api:read', accountId = DEFAULT_ACCOUNT_ID } = {},
): Promise<{ params: URLSearchParams; verifier: string }> {
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const url = new URL(rp.as.authorization_endpoint ?? fixture.endpoints.authorization);
  url.searchParams.set('client_id', rp.client.client_id);
  url.searchParams.set('redirect_uri', REDIRECT_URI);
  url.searchParams.set('response_type', 'code');
  url.searchParams.set('scope', scope);
  url.searchParams.set('state', state);
  if (pkce) {
    url.searchParams.set('code_challenge', await oauth.calculatePKCECodeChallenge(verifier));
    url.searchParams.set('code_challenge_method', 'S256');
  }
  const redirect = await fixture.consent(url.href, accountId);
  assert.equal(`${redirect.origin}${redirect.pathname}`, REDIRECT_URI);
  assert.equal(redirect.searchParams.get('state'), state);
  const params = oauth.validateAuthResponse(rp.as, rp.client, redirect, state);
  return { params, verifier };
}

async function exchange(
  rp: Rp,
  params: URLSearchParams,
  verifier: string,
): Promise<oauth.TokenEndpointResponse> {
  const response = await oauth.authorizationCodeGrantRequest(
    rp.as,
    rp.client,
    rp.auth,
    params,
    REDIRECT_URI,
    verifier,
    requestOptions(),
  );
  return oauth.processAuthorizationCodeResponse(rp.as, rp.client, response);
}

async function refresh(rp: Rp, refreshToken: string): Promise<oauth.TokenEndpointResponse> {
  const response = await oauth.refreshTokenGrantRequest(
    rp.as,
    rp.client,
    rp.auth,
    refreshToken,
    requestOptions(),
  );
  return oauth.processRefreshTokenResponse(rp.as, rp.client, response);
}

async function login(fixture: OidcFixture, rp: Rp, accountId = DEFAULT_ACCOUNT_ID) {
  const { params, verifier } = await authorize(fixture, rp, { accountId });
  return exchange(rp, params, verifier);
}

async function assertOAuthError(promise: Promise<unknown>, error: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof oauth.ResponseBodyError, `expected an OAuth error response, got ${String(err)}`);
    assert.equal(err.error, error);
    return true;
  });
}

function rawTokenRequest(fixture: OidcFixture, signal: AbortSignal): Promise<Response> {
  return fetch(fixture.endpoints.token, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'refresh_token',
      refresh_token: 'not-a-token',
      client_id: POST_CLIENT.client_id,
      client_secret: POST_CLIENT.client_secret,
    }),
    signal,
  });
}

describe('OpenID provider fixture', () => {
  let fixture: OidcFixture;
  let as: oauth.AuthorizationServer;
  let post: Rp;
  let basic: Rp;

  before(async () => {
    fixture = await startOidcProvider({ clients: [POST_CLIENT, BASIC_CLIENT] });
    as = await discover(fixture);
    post = rpFor(as, POST_CLIENT);
    basic = rpFor(as, BASIC_CLIENT);
  });
  after(() => fixture.close());

  test('listens on loopback and its discovery document matches', () => {
    assert.match(fixture.issuer, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(fixture.issuer, `http://127.0.0.1:${fixture.port}`);
    assert.equal(as.issuer, fixture.issuer);
    assert.equal(as.authorization_endpoint, fixture.endpoints.authorization);
    assert.equal(as.token_endpoint, fixture.endpoints.token);
    assert.equal(as.jwks_uri, fixture.endpoints.jwks);
    assert.equal(as.revocation_endpoint, fixture.endpoints.revocation);
    assert.equal(as.userinfo_endpoint, fixture.endpoints.userinfo);
    assert.deepEqual(as.code_challenge_methods_supported, ['S256']);
    for (const scope of ['openid', 'profile', 'email', 'offline_access', 'api:read']) {
      assert.ok(as.scopes_supported?.includes(scope), scope);
    }
  });

  test('consent through the login and consent pages, code exchange with client_secret_post', async () => {
    const initial = { ...fixture.counts };
    const tokens = await login(fixture, post, 'alice');
    assert.ok(tokens.access_token);
    assert.ok(tokens.refresh_token);
    assert.ok(tokens.id_token);
    assert.equal(tokens.token_type, 'bearer');
    assert.equal(tokens.expires_in, 3600);
    assert.deepEqual(new Set(tokens.scope?.split(' ')), new Set(['openid', 'email', 'api:read']));
    const claims = oauth.getValidatedIdTokenClaims(tokens);
    assert.equal(claims?.sub, 'alice');
    assert.equal(claims?.iss, fixture.issuer);
    assert.equal(claims?.aud, POST_CLIENT.client_id);
    const header = JSON.parse(Buffer.from(tokens.id_token.split('.')[0] ?? '', 'base64url').toString());
    assert.equal(header.alg, 'RS256');
    assert.equal(fixture.counts.authorization_code, initial.authorization_code + 1);
    assert.equal(fixture.counts.refresh_token, initial.refresh_token);

    const userinfo = await oauth.userInfoRequest(as, post.client, tokens.access_token, requestOptions());
    const info = await oauth.processUserInfoResponse(as, post.client, 'alice', userinfo);
    assert.equal(info.email, 'alice@example.test');
  });

  test('code exchange with client_secret_basic; a code works only once', async () => {
    const { params, verifier } = await authorize(fixture, basic);
    const tokens = await exchange(basic, params, verifier);
    assert.ok(tokens.access_token && tokens.refresh_token && tokens.id_token);
    assert.equal(oauth.getValidatedIdTokenClaims(tokens)?.sub, DEFAULT_ACCOUNT_ID);
    await assertOAuthError(exchange(basic, params, verifier), 'invalid_grant');
  });

  test('the wrong PKCE verifier is refused', async () => {
    const { params } = await authorize(fixture, post);
    await assertOAuthError(exchange(post, params, oauth.generateRandomCodeVerifier()), 'invalid_grant');
  });

  test('an authorization request without PKCE is rejected', async () => {
    const initial = fixture.counts.authorization_code;
    await assert.rejects(authorize(fixture, post, { pkce: false }), (err: unknown) => {
      assert.ok(err instanceof oauth.AuthorizationResponseError, String(err));
      assert.equal(err.error, 'invalid_request');
      assert.match(err.error_description ?? '', /PKCE/);
      return true;
    });
    assert.equal(fixture.counts.authorization_code, initial);
  });

  test('refresh rotates; reusing the old refresh token fails and revokes the whole grant', async () => {
    const tokens = await login(fixture, post);
    const first = tokens.refresh_token ?? assert.fail('no refresh token');
    const initial = fixture.counts.refresh_token;

    const refreshed = await refresh(post, first);
    const second = refreshed.refresh_token ?? assert.fail('no rotated refresh token');
    assert.notEqual(second, first);
    assert.ok(refreshed.access_token);
    assert.notEqual(refreshed.access_token, tokens.access_token);
    assert.equal(fixture.counts.refresh_token, initial + 1);

    await assertOAuthError(refresh(post, first), 'invalid_grant');
    await assertOAuthError(refresh(post, second), 'invalid_grant');
    assert.equal(fixture.counts.refresh_token, initial + 3, 'failed refresh grants are counted too');

    // The grant's access tokens are gone as well.
    const userinfo = await oauth.userInfoRequest(as, post.client, refreshed.access_token, requestOptions());
    assert.equal(userinfo.status, 401);
    await userinfo.body?.cancel();
  });

  test('revocation endpoint revokes a refresh token and is counted', async () => {
    const tokens = await login(fixture, basic);
    const initial = fixture.counts.revocation;
    const response = await oauth.revocationRequest(
      as,
      basic.client,
      basic.auth,
      tokens.refresh_token ?? '',
      requestOptions(),
    );
    await oauth.processRevocationResponse(response);
    assert.equal(fixture.counts.revocation, initial + 1);
    await assertOAuthError(refresh(basic, tokens.refresh_token ?? ''), 'invalid_grant');
  });

  test('revokeAllGrants() revokes every grant of one account only', async () => {
    const bob1 = await login(fixture, post, 'bob');
    const bob2 = await login(fixture, basic, 'bob');
    const carol = await login(fixture, post, 'carol');
    await fixture.revokeAllGrants('bob');
    await assertOAuthError(refresh(post, bob1.refresh_token ?? ''), 'invalid_grant');
    await assertOAuthError(refresh(basic, bob2.refresh_token ?? ''), 'invalid_grant');
    assert.ok((await refresh(post, carol.refresh_token ?? '')).refresh_token);
  });

  test('fault injection on the token and revocation endpoints', async () => {
    const tokens = await login(fixture, post);
    const refreshToken = tokens.refresh_token ?? assert.fail('no refresh token');
    const initial = { ...fixture.counts };
    try {
      fixture.setTokenEndpointFault('refuse');
      await assert.rejects(refresh(post, refreshToken), (err: unknown) => {
        assert.ok(err instanceof TypeError, String(err));
        return true;
      });
      await assert.rejects(
        oauth.revocationRequest(as, post.client, post.auth, refreshToken, requestOptions()),
        TypeError,
      );
      // Discovery and authorization keep working.
      await discover(fixture);
      const pending = await authorize(fixture, post);

      fixture.setTokenEndpointFault('error500');
      const response = await rawTokenRequest(fixture, AbortSignal.timeout(REQUEST_TIMEOUT_MS));
      assert.equal(response.status, 500);
      assert.deepEqual(await response.json(), { error: 'server_error' });
      await assert.rejects(refresh(post, refreshToken), (err: unknown) => {
        // oauth4webapi parses OAuth error bodies of 400/401 answers only; a 500 is "not conform".
        assert.ok(err instanceof oauth.OperationProcessingError, String(err));
        assert.equal(err.code, oauth.RESPONSE_IS_NOT_CONFORM);
        return true;
      });

      fixture.setTokenEndpointFault('slow', 2_000);
      await assert.rejects(rawTokenRequest(fixture, AbortSignal.timeout(300)), { name: 'TimeoutError' });

      fixture.setTokenEndpointFault('slow', 200);
      const started = Date.now();
      const slowTokens = await exchange(post, pending.params, pending.verifier);
      assert.ok(Date.now() - started >= 190);
      assert.ok(slowTokens.access_token);

      assert.deepEqual(
        fixture.counts,
        {
          ...initial,
          authorization_code: initial.authorization_code + 1,
          token_requests: initial.token_requests + 5,
        },
        'only the request that reached the provider is counted as processed; every arrival as a request',
      );

      await fixture.setTokenEndpointFault('down');
      await assert.rejects(refresh(post, refreshToken), (err: unknown) => {
        assert.ok(err instanceof TypeError, String(err));
        assert.equal((err.cause as { code?: string }).code, 'ECONNREFUSED', 'nothing listens');
        return true;
      });
      await fixture.setTokenEndpointFault('none');
      const rotated = (await refresh(post, refreshToken)).refresh_token ?? assert.fail('no refresh token');
      assert.equal(
        fixture.counts.refresh_token,
        initial.refresh_token + 1,
        'the refresh token survived the faults',
      );

      // Processed, answer lost: the rotated token never arrives, and presenting the old one again
      // is reuse, which revokes the grant.
      await fixture.setTokenEndpointFault('answer_lost', 500);
      await assert.rejects(refresh(post, rotated));
      assert.equal(fixture.counts.refresh_token, initial.refresh_token + 2, 'the provider processed it');
      await fixture.setTokenEndpointFault('none');
      await assert.rejects(refresh(post, rotated), (err: unknown) => {
        assert.ok(err instanceof oauth.ResponseBodyError && err.error === 'invalid_grant', String(err));
        return true;
      });
      assert.equal(fixture.counts.refresh_reused, initial.refresh_reused + 1);
    } finally {
      await fixture.setTokenEndpointFault('none');
    }
  });
});

describe('OpenID provider fixture without refresh-token rotation', () => {
  let fixture: OidcFixture;
  let post: Rp;

  before(async () => {
    fixture = await startOidcProvider({
      rotateRefreshTokens: false,
      clients: [POST_CLIENT],
      accessTokenTtlSeconds: 120,
    });
    post = rpFor(await discover(fixture), POST_CLIENT);
  });
  after(() => fixture.close());

  test('the same refresh token works twice and counts.refresh_token counts both', async () => {
    const tokens = await login(fixture, post);
    assert.equal(tokens.expires_in, 120);
    const refreshToken = tokens.refresh_token ?? assert.fail('no refresh token');
    const one = await refresh(post, refreshToken);
    const two = await refresh(post, refreshToken);
    assert.equal(one.refresh_token, refreshToken);
    assert.equal(two.refresh_token, refreshToken);
    assert.notEqual(one.access_token, two.access_token);
    assert.equal(fixture.counts.refresh_token, 2);
    assert.equal(fixture.counts.authorization_code, 1);
  });
});

describe('OpenID provider fixture shutdown', () => {
  test('close() does not wait for a pending slow token request', async () => {
    const fixture = await startOidcProvider({ clients: [POST_CLIENT] });
    fixture.setTokenEndpointFault('slow'); // default 35 s
    const pending = rawTokenRequest(fixture, AbortSignal.timeout(10_000));
    const settled = pending.then(
      () => 'resolved',
      (err: unknown) => (err instanceof Error ? err.name : 'rejected'),
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    const started = Date.now();
    await fixture.close();
    assert.equal(await settled, 'TypeError', 'the pending request fails when the fixture closes');
    assert.ok(Date.now() - started < 2_000);
    assert.equal(fixture.counts.refresh_token, 0);
  });
});
