/**
 * Issue #17, part "openid without discovery": a provider registered the original's Google way
 * (`auth_url`, `token_url`, the scope `openid`, no `enable_discovery`) connects, against a real
 * OpenID provider (oidc-provider on loopback), on SQLite and PostgreSQL. Its id_token is verified
 * when the broker can pin an issuer from the operator's configuration (a discovery document at the
 * origin of auth_url or token_url, the configured issuer's, or issuer + params.jwks_uri) and
 * discarded unread when it cannot; registration says which. A forged id_token shows the check is
 * real where it applies and that nothing reads the token where it does not.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { generateKeyPair, SignJWT } from 'jose';
import { json, startBroker, type TestBroker } from './harness.ts';
import { clients, RETURN } from './oauth-scenario.ts';
import { type OidcFixture, startOidcProvider } from './oidc-fixture.ts';

type Warning = { code: string; message: string };

describe('issue #17: openid for a provider registered without discovery', () => {
  let broker: TestBroker;
  /** Issuer at the origin: its discovery document is where the original looked. */
  let rootIdp: OidcFixture;
  /** Issuer under /oidc: nothing at the origin of its URLs. */
  let mountedIdp: OidcFixture;
  /** Answers 503 to everything: a provider whose discovery document cannot be read right now. */
  let down: { server: Server; url: string };
  let clock = Date.now();
  let flows = 0;

  before(async () => {
    rootIdp = await startOidcProvider({ clients });
    mountedIdp = await startOidcProvider({ clients, issuer: 'http://127.0.0.1:{port}/oidc' });
    const server = createServer((_req, res) => res.writeHead(503).end('down'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    down = { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
    broker = await startBroker({ env: { NEXUS_UPSTREAM_TIMEOUT_SECONDS: '2' }, now: () => clock });
  });
  after(async () => {
    await broker?.close();
    await rootIdp?.close();
    await mountedIdp?.close();
    await new Promise((resolve) => down?.server.close(resolve));
  });

  async function register(profile: Record<string, unknown>): Promise<Warning[]> {
    const res = await broker.request({
      method: 'POST',
      url: '/providers',
      payload: { profile: { client_id: 'client-post', client_secret: 'client-post-secret', ...profile } },
    });
    assert.equal(res.statusCode, 201, res.body);
    return json<{ warnings: Warning[] }>(res).warnings;
  }

  /**
   * request-connection → the provider's own pages → the broker's callback. `forge` may replace the
   * token answer's id_token (given the flow's nonce) before the broker reads it.
   */
  async function connect(
    provider: string,
    idp: OidcFixture,
    forge?: (nonce: string) => string | Promise<string>,
  ): Promise<{ status: string | null; error: string | null; connectionId: string }> {
    const started = await broker.request({
      method: 'POST',
      url: '/v1/request-connection',
      // A user per flow: a second connection of the same user would supersede the first.
      payload: { user_id: `u-oidc-${++flows}`, provider_name: provider, scopes: null, return_url: RETURN },
    });
    assert.equal(started.statusCode, 200, started.body);
    const { authUrl, connection_id } = json<{ authUrl: string; connection_id: string }>(started);
    const nonce = new URL(authUrl).searchParams.get('nonce');
    assert.ok(nonce, 'openid requests carry a nonce');
    const callback = await idp.consent(authUrl);
    const forged = forge === undefined ? undefined : await forge(nonce);
    if (forged !== undefined) idp.setTokenResponseRewrite((body) => ({ ...body, id_token: forged }));
    try {
      const res = await broker.request({
        method: 'GET',
        url: callback.pathname + callback.search,
        key: null,
      });
      assert.equal(res.statusCode, 302, res.body);
      const back = new URL(res.headers.location as string);
      return {
        status: back.searchParams.get('status'),
        error: back.searchParams.get('error'),
        connectionId: connection_id,
      };
    } finally {
      idp.setTokenResponseRewrite(undefined);
    }
  }

  /** What the vault holds and what an agent gets: never an id_token. */
  async function assertNoIdToken(connectionId: string): Promise<void> {
    const row = await broker.container.connectionsStore.find(connectionId);
    const stored = await broker.container.credentialStore.read(row!);
    assert.equal(stored.kind, 'oauth2');
    assert.equal((stored as Record<string, unknown>).id_token, undefined, 'no id_token stored');
    const token = await broker.request({ method: 'GET', url: `/v1/token/${connectionId}` });
    assert.equal(token.statusCode, 200, token.body);
    assert.ok(!token.body.includes('id_token'), token.body);
  }

  /**
   * An id_token with the flow's nonce and the right claims, naming the provider's own key id but
   * signed by a key the provider never published.
   */
  const forger = (idp: OidcFixture) => async (nonce: string) => {
    const { privateKey } = await generateKeyPair('RS256');
    const jwks = (await (await fetch(idp.endpoints.jwks)).json()) as { keys: { kid: string }[] };
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ nonce, sub: 'test-user' })
      .setProtectedHeader({ alg: 'RS256', kid: jwks.keys[0]!.kid })
      .setIssuer(idp.issuer)
      .setAudience('client-post')
      .setIssuedAt(now)
      .setExpirationTime(now + 600)
      .sign(privateKey);
  };

  it('verifies id_tokens against the issuer found at the origin of auth_url, and refuses a forged one', async () => {
    const warnings = await register({
      name: 'google-style',
      auth_url: rootIdp.endpoints.authorization,
      token_url: rootIdp.endpoints.token,
      scopes: ['openid', 'email'],
    });
    assert.equal(warnings.length, 1, JSON.stringify(warnings));
    assert.equal(warnings[0]!.code, 'id_token_verified');
    assert.ok(warnings[0]!.message.includes(rootIdp.issuer), warnings[0]!.message);

    const ok = await connect('google-style', rootIdp);
    assert.equal(ok.status, 'success', ok.error ?? '');
    await assertNoIdToken(ok.connectionId);

    // The same claims signed by another key: the discovered key set refuses it.
    const forged = await connect('google-style', rootIdp, forger(rootIdp));
    assert.equal(forged.status, 'failed');
    assert.equal(forged.error, 'id_token_invalid');

    // A refresh answer's id_token is not read either (nothing uses it): the refresh works.
    clock += 31_000;
    const refreshed = await broker.request({ method: 'POST', url: `/v1/refresh/${ok.connectionId}` });
    assert.equal(refreshed.statusCode, 200, refreshed.body);
    assert.ok(!refreshed.body.includes('id_token'));
    await assertNoIdToken(ok.connectionId);
  });

  it('discards the id_token unread when no discovery document is found, and the connection works', async () => {
    const warnings = await register({
      name: 'mounted-no-doc',
      auth_url: mountedIdp.endpoints.authorization,
      token_url: mountedIdp.endpoints.token,
      scopes: ['openid', 'email'],
    });
    assert.deepEqual(
      warnings.map((w) => w.code),
      ['id_token_discarded'],
    );
    assert.ok(warnings[0]!.message.includes(new URL(mountedIdp.issuer).origin), warnings[0]!.message);

    const ok = await connect('mounted-no-doc', mountedIdp);
    assert.equal(ok.status, 'success', ok.error ?? '');
    await assertNoIdToken(ok.connectionId);
    // Not even parsed: garbage in its place changes nothing.
    const garbage = await connect('mounted-no-doc', mountedIdp, () => 'not-a-jwt');
    assert.equal(garbage.status, 'success', garbage.error ?? '');
    await assertNoIdToken(garbage.connectionId);

    clock += 31_000;
    const refreshed = await broker.request({ method: 'POST', url: `/v1/refresh/${ok.connectionId}` });
    assert.equal(refreshed.statusCode, 200, refreshed.body);
    await assertNoIdToken(ok.connectionId);
  });

  it('verifies against a configured issuer with params.jwks_uri, or the issuer’s own document', async () => {
    const configured = await register({
      name: 'mounted-jwks',
      issuer: mountedIdp.issuer,
      auth_url: mountedIdp.endpoints.authorization,
      token_url: mountedIdp.endpoints.token,
      scopes: ['openid'],
      params: { jwks_uri: mountedIdp.endpoints.jwks },
    });
    assert.deepEqual(
      configured.map((w) => w.code),
      ['id_token_verified'],
    );
    assert.ok(configured[0]!.message.includes('params.jwks_uri'), configured[0]!.message);
    const ok = await connect('mounted-jwks', mountedIdp);
    assert.equal(ok.status, 'success', ok.error ?? '');
    await assertNoIdToken(ok.connectionId);
    const forged = await connect('mounted-jwks', mountedIdp, forger(mountedIdp));
    assert.equal(forged.status, 'failed');
    assert.equal(forged.error, 'id_token_invalid');

    const issuerOnly = await register({
      name: 'mounted-issuer',
      issuer: mountedIdp.issuer,
      auth_url: mountedIdp.endpoints.authorization,
      token_url: mountedIdp.endpoints.token,
      scopes: ['openid'],
    });
    assert.deepEqual(
      issuerOnly.map((w) => w.code),
      ['id_token_verified'],
    );
    const viaIssuer = await connect('mounted-issuer', mountedIdp);
    assert.equal(viaIssuer.status, 'success', viaIssuer.error ?? '');

    // A key set without an issuer names nobody: refused at registration.
    const refused = await broker.request({
      method: 'POST',
      url: '/providers',
      payload: {
        profile: {
          name: 'jwks-no-issuer',
          client_id: 'client-post',
          client_secret: 'x',
          auth_url: mountedIdp.endpoints.authorization,
          token_url: mountedIdp.endpoints.token,
          params: { jwks_uri: mountedIdp.endpoints.jwks },
        },
      },
    });
    assert.equal(refused.statusCode, 400, refused.body);
    assert.ok(refused.body.includes('params.jwks_uri'), refused.body);
  });

  it('never fetches from an address the egress guard refuses: the next hint is used', async () => {
    // auth_url on a private address (only browsers open it); token_url's origin has the document.
    const warnings = await register({
      name: 'private-auth-url',
      auth_url: 'https://10.20.30.40/authorize',
      token_url: rootIdp.endpoints.token,
      scopes: ['openid'],
    });
    assert.deepEqual(
      warnings.map((w) => w.code),
      ['id_token_verified'],
    );
    assert.ok(warnings[0]!.message.includes(rootIdp.issuer), warnings[0]!.message);
  });

  it('refuses a consent while the discovery document cannot be read, instead of skipping the check', async () => {
    const count = async () =>
      (await broker.container.db.kysely.selectFrom('connections').select('id').execute()).length;
    const warnings = await register({
      name: 'unreachable-doc',
      auth_url: `${down.url}/authorize`,
      token_url: `${down.url}/token`,
      scopes: ['openid', 'email'],
    });
    assert.deepEqual(
      warnings.map((w) => w.code),
      ['id_token_undecided'],
    );
    const before = await count();
    const res = await broker.request({
      method: 'POST',
      url: '/v1/request-connection',
      payload: { user_id: 'u-down', provider_name: 'unreachable-doc', return_url: RETURN },
    });
    assert.equal(res.statusCode, 422, res.body);
    assert.equal(json(res).error, 'discovery_failed');
    assert.equal(await count(), before, 'a refusal writes nothing');
    // Without openid nothing needs the document.
    const plain = await broker.request({
      method: 'POST',
      url: '/v1/request-connection',
      payload: { user_id: 'u-down', provider_name: 'unreachable-doc', scopes: ['email'], return_url: RETURN },
    });
    assert.equal(plain.statusCode, 200, plain.body);
  });
});
