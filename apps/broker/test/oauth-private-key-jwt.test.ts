import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { json, startBroker, type TestBroker } from './harness.ts';
import { REDIRECT, RETURN } from './oauth-scenario.ts';
import { type OidcFixture, startOidcProvider } from './oidc-fixture.ts';

/**
 * Code exchange, refresh and revocation with `private_key_jwt` (RFC 7523 client assertions) against
 * a real OpenID provider that knows only the clients' public keys.
 */

const pem = (key: KeyObject) => key.export({ format: 'pem', type: 'pkcs8' }) as string;
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const ecJwk = { ...ec.privateKey.export({ format: 'jwk' }), kid: 'nexus-ec-1' };

describe('private_key_jwt client authentication', () => {
  let idp: OidcFixture;
  let broker: TestBroker;

  before(async () => {
    idp = await startOidcProvider({
      clients: [
        {
          client_id: 'client-jwt-rsa',
          token_endpoint_auth_method: 'private_key_jwt',
          jwks: { keys: [{ ...rsa.publicKey.export({ format: 'jwk' }), use: 'sig', alg: 'RS256' }] },
          redirect_uris: [REDIRECT],
        },
        {
          client_id: 'client-jwt-ec',
          token_endpoint_auth_method: 'private_key_jwt',
          jwks: {
            keys: [
              { ...ec.publicKey.export({ format: 'jwk' }), kid: 'nexus-ec-1', use: 'sig', alg: 'ES256' },
            ],
          },
          redirect_uris: [REDIRECT],
        },
      ],
    });
    broker = await startBroker({ env: { NEXUS_UPSTREAM_TIMEOUT_SECONDS: '5' } });
  });
  after(async () => {
    await broker.close();
    await idp.close();
  });

  async function register(profile: Record<string, unknown>) {
    return broker.request({ method: 'POST', url: '/providers', payload: { profile } });
  }

  async function connect(provider: string, workspace: string): Promise<string> {
    const started = json<{ authUrl: string; connection_id: string }>(
      await broker.request({
        method: 'POST',
        url: '/v1/request-connection',
        payload: { user_id: workspace, provider_name: provider, return_url: RETURN },
      }),
    );
    const callback = await idp.consent(started.authUrl);
    const res = await broker.request({ method: 'GET', url: callback.pathname + callback.search, key: null });
    assert.equal(res.statusCode, 302);
    const back = new URL(res.headers.location as string);
    assert.equal(back.searchParams.get('status'), 'success', back.toString());
    return started.connection_id;
  }

  it('exchanges the code, refreshes and revokes with an RSA key in PEM (token endpoint as audience)', async () => {
    const created = await register({
      name: 'jwt-rsa',
      auth_header: 'private_key_jwt',
      client_id: 'client-jwt-rsa',
      client_secret: pem(rsa.privateKey),
      auth_url: idp.endpoints.authorization,
      token_url: idp.endpoints.token,
      scopes: ['api:read'],
      params: { revocation_endpoint: idp.endpoints.revocation },
    });
    assert.equal(created.statusCode, 201, created.body);
    const view = await broker.request({ method: 'GET', url: `/providers/${json(created).id}` });
    assert.equal(json(view).auth_header, 'private_key_jwt');
    assert.ok(!view.body.includes('PRIVATE KEY'), 'the key is never returned');

    const id = await connect('jwt-rsa', 'pkjwt-1');
    const first = json<{ access_token: string }>(
      await broker.request({ method: 'GET', url: `/v1/token/${id}` }),
    );
    assert.ok(first.access_token);
    const base = idp.counts.refresh_token;
    const refreshed = await broker.request({ method: 'POST', url: `/v1/refresh/${id}` });
    assert.equal(refreshed.statusCode, 200, refreshed.body);
    assert.equal(idp.counts.refresh_token - base, 1);
    assert.notEqual(json<{ access_token: string }>(refreshed).access_token, first.access_token);

    const revoked = await broker.request({ method: 'DELETE', url: `/v1/connections/${id}` });
    assert.equal(revoked.statusCode, 200, revoked.body);
    assert.equal(
      json<{ provider_revoked: boolean }>(revoked).provider_revoked,
      true,
      'the provider accepted the signed assertion at its revocation endpoint',
    );
  });

  it('works with a discovered provider and an EC key given as a JWK with its kid', async () => {
    const created = await register({
      name: 'jwt-ec',
      auth_header: 'private_key_jwt',
      client_id: 'client-jwt-ec',
      client_secret: JSON.stringify(ecJwk),
      issuer: idp.issuer,
      enable_discovery: true,
      scopes: ['openid', 'email'],
    });
    assert.equal(created.statusCode, 201, created.body);
    const id = await connect('jwt-ec', 'pkjwt-2');
    const token = await broker.request({ method: 'GET', url: `/v1/token/${id}` });
    assert.equal(token.statusCode, 200, token.body);
  });

  it('fails the consent cleanly when the provider does not know the key', async () => {
    const stranger = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const created = await register({
      name: 'jwt-wrong-key',
      auth_header: 'private_key_jwt',
      client_id: 'client-jwt-rsa',
      client_secret: pem(stranger.privateKey),
      auth_url: idp.endpoints.authorization,
      token_url: idp.endpoints.token,
    });
    assert.equal(created.statusCode, 201, created.body);
    const started = json<{ authUrl: string; connection_id: string }>(
      await broker.request({
        method: 'POST',
        url: '/v1/request-connection',
        payload: { user_id: 'pkjwt-3', provider_name: 'jwt-wrong-key', return_url: RETURN },
      }),
    );
    const callback = await idp.consent(started.authUrl);
    const res = await broker.request({ method: 'GET', url: callback.pathname + callback.search, key: null });
    assert.equal(res.statusCode, 302);
    const back = new URL(res.headers.location as string);
    assert.equal(back.searchParams.get('status'), 'failed');
    const check = await broker.request({
      method: 'GET',
      url: `/v1/check-connection/${started.connection_id}`,
    });
    assert.notEqual(json<{ status: string }>(check).status, 'active');
  });

  it('refuses keys it cannot sign with, naming client_secret and never echoing the key', async () => {
    const weak = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const secp256k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' });
    const cases: [string, string][] = [
      ['not-a-key', 'shared-secret-not-a-key'],
      ['public-pem', rsa.publicKey.export({ format: 'pem', type: 'spki' }) as string],
      ['public-jwk', JSON.stringify(ec.publicKey.export({ format: 'jwk' }))],
      ['weak-rsa', pem(weak.privateKey)],
      ['odd-curve', pem(secp256k1.privateKey)],
    ];
    for (const [name, secret] of cases) {
      const res = await register({
        name: `bad-${name}`,
        auth_header: 'private_key_jwt',
        client_id: 'c',
        client_secret: secret,
        auth_url: 'https://a.example/auth',
        token_url: 'https://a.example/token',
      });
      assert.equal(res.statusCode, 400, `${name}: ${res.body}`);
      const body = json<{ error: string; details: { path: string }[] }>(res);
      assert.equal(body.error, 'invalid_provider');
      assert.ok(
        body.details.some((d) => d.path === 'client_secret'),
        `${name}: ${res.body}`,
      );
      const material = secret.length > 80 ? secret.slice(40, 80) : secret;
      assert.ok(!res.body.includes(material), `${name}: key material is not echoed`);
      const list = await broker.request({ method: 'GET', url: '/providers' });
      assert.ok(!list.body.includes(`bad-${name}`), `${name} was not created`);
    }
  });

  it('asks for a new credential when switching between a shared secret and private_key_jwt', async () => {
    const created = await register({
      name: 'switching',
      client_id: 'c',
      client_secret: 'plain-shared-secret',
      auth_url: 'https://a.example/auth',
      token_url: 'https://a.example/token',
    });
    assert.equal(created.statusCode, 201, created.body);
    const url = `/providers/${json(created).id}`;
    const keepOld = await broker.request({
      method: 'PATCH',
      url,
      payload: { profile: { auth_header: 'private_key_jwt' } },
    });
    assert.equal(keepOld.statusCode, 400, keepOld.body);
    assert.ok(json<{ details: { path: string }[] }>(keepOld).details.some((d) => d.path === 'client_secret'));

    const withKey = await broker.request({
      method: 'PATCH',
      url,
      payload: { profile: { auth_header: 'private_key_jwt', client_secret: pem(rsa.privateKey) } },
    });
    assert.equal(withKey.statusCode, 200, withKey.body);
    const back = await broker.request({
      method: 'PATCH',
      url,
      payload: { profile: { auth_header: 'client_secret_basic' } },
    });
    assert.equal(back.statusCode, 400, 'the private key is never sent as a shared secret');
  });
});
