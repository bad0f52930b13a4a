/**
 * A broker and a real OpenID provider (oidc-provider on loopback) wired together, with helpers to
 * connect an account through the provider's own pages and to read what the vault holds.
 */
import assert from 'node:assert/strict';
import type { LightMyRequestResponse } from 'fastify';
import { json, startBroker, type TestBroker } from './harness.ts';
import { type OidcFixture, type OidcFixtureOptions, startOidcProvider } from './oidc-fixture.ts';

export const REDIRECT = 'http://127.0.0.1:8080/auth/callback';
export const RETURN = 'http://localhost:3000/connected';
export const clients = [
  {
    client_id: 'client-post',
    client_secret: 'client-post-secret',
    token_endpoint_auth_method: 'client_secret_post' as const,
    redirect_uris: [REDIRECT],
  },
  {
    client_id: 'client-basic',
    client_secret: 'client-basic-secret',
    token_endpoint_auth_method: 'client_secret_basic' as const,
    redirect_uris: [REDIRECT],
  },
];

export type Token = {
  access_token: string;
  credentials: Record<string, string>;
  strategy: { type: string };
  expires_at: string | null;
};

/** A broker, an identity provider, and every response the broker gave (to scan for refresh tokens). */
export class Scenario {
  broker!: TestBroker;
  idp!: OidcFixture;
  clock = Date.now();
  responses: LightMyRequestResponse[] = [];

  async start(options: { rotate?: boolean; env?: Record<string, string>; idp?: OidcFixtureOptions } = {}) {
    this.idp = await startOidcProvider({
      clients,
      rotateRefreshTokens: options.rotate ?? true,
      ...options.idp,
    });
    this.broker = await startBroker({
      env: { NEXUS_UPSTREAM_TIMEOUT_SECONDS: '2', ...options.env },
      now: () => this.clock,
    });
    await this.call(
      {
        method: 'POST',
        url: '/providers',
        payload: {
          profile: {
            name: 'idp-discovered',
            client_id: 'client-post',
            client_secret: 'client-post-secret',
            issuer: this.idp.issuer,
            enable_discovery: true,
            scopes: ['openid', 'email'],
            params: { revocation_endpoint: this.idp.endpoints.revocation },
          },
        },
      },
      201,
    );
    await this.call(
      {
        method: 'POST',
        url: '/providers',
        payload: {
          profile: {
            name: 'idp-basic',
            auth_header: 'client_secret_basic',
            client_id: 'client-basic',
            client_secret: 'client-basic-secret',
            auth_url: this.idp.endpoints.authorization,
            token_url: this.idp.endpoints.token,
            scopes: ['api:read'],
          },
        },
      },
      201,
    );
  }

  async call(
    options: Parameters<TestBroker['request']>[0],
    expect?: number,
  ): Promise<LightMyRequestResponse> {
    const res = await this.broker.request(options);
    this.responses.push(res);
    if (expect !== undefined)
      assert.equal(res.statusCode, expect, `${options.method} ${options.url}: ${res.body}`);
    return res;
  }

  /** request-connection → the provider's login and consent pages → our callback. */
  async connect(provider: string, workspace = 'user-1'): Promise<string> {
    const started = json<{ authUrl: string; connection_id: string }>(
      await this.call(
        {
          method: 'POST',
          url: '/v1/request-connection',
          payload: { user_id: workspace, provider_name: provider, return_url: RETURN },
        },
        200,
      ),
    );
    const callback = await this.idp.consent(started.authUrl);
    assert.equal(callback.origin + callback.pathname, REDIRECT);
    const res = await this.call({ method: 'GET', url: callback.pathname + callback.search, key: null }, 302);
    const back = new URL(res.headers.location as string);
    assert.equal(back.searchParams.get('status'), 'success', back.toString());
    assert.equal(back.searchParams.get('connection_id'), started.connection_id);
    return started.connection_id;
  }

  async token(id: string): Promise<Token> {
    return json<Token>(await this.call({ method: 'GET', url: `/v1/token/${id}` }, 200));
  }

  /** What the vault holds, read the way only the broker can (for assertions). */
  async stored(id: string): Promise<{ access_token: string; refresh_token?: string }> {
    const row = await this.broker.container.connectionsStore.find(id);
    // Wherever TOKEN_STORE put them: the column, or the secret backend.
    const creds = await this.broker.container.credentialStore.read(row!);
    assert.equal(creds.kind, 'oauth2');
    return creds as { access_token: string; refresh_token?: string };
  }

  /**
   * A refresh sent straight to the provider with `refreshToken`, as `client` (default: the
   * `idp-discovered` provider's): 200 while the token is live, 400 `invalid_grant` once revoked.
   */
  async refreshAtProvider(
    refreshToken: string,
    client: (typeof clients)[number] = clients[0]!,
  ): Promise<{ status: number; error: string | undefined }> {
    const res = await fetch(this.idp.endpoints.token, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: refreshToken,
        client_id: client.client_id,
        client_secret: client.client_secret,
      }),
    });
    const body = (await res.json()) as { error?: string };
    return { status: res.status, error: body.error };
  }

  async close() {
    await this.broker?.close();
    await this.idp?.close();
  }
}
