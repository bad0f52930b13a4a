/**
 * Providers registered from an OpenID issuer (enable_discovery), against a real OpenID provider
 * (oidc-provider on loopback), and every way discovery can fail: each failure is 422
 * discovery_failed and registers nothing.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { json, startBroker, type TestBroker } from './harness.ts';
import { clients, REDIRECT, RETURN } from './oauth-scenario.ts';
import { type OidcFixture, startOidcProvider } from './oidc-fixture.ts';

type Answer = { status: number; type: string; body: string };

/**
 * A loopback HTTP server standing in for a misconfigured issuer: it answers
 * /.well-known/openid-configuration with whatever the test sets, and counts the requests.
 */
async function startIssuerServer(): Promise<{
  url: string;
  hits: number;
  answer: (a: Answer) => void;
  close: () => Promise<void>;
}> {
  let current: Answer = { status: 503, type: 'text/plain', body: 'not ready' };
  const state = { hits: 0 };
  const server: Server = createServer((req, res) => {
    if (req.url !== '/.well-known/openid-configuration') {
      res.writeHead(404).end();
      return;
    }
    state.hits++;
    res.writeHead(current.status, { 'content-type': current.type }).end(current.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    get hits() {
      return state.hits;
    },
    answer: (a: Answer) => {
      current = a;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** A valid discovery document for `issuer`. */
const documentFor = (issuer: string, extra: Record<string, unknown> = {}): Answer => ({
  status: 200,
  type: 'application/json',
  body: JSON.stringify({
    issuer,
    authorization_endpoint: `${issuer}/auth`,
    token_endpoint: `${issuer}/token`,
    jwks_uri: `${issuer}/jwks`,
    response_types_supported: ['code'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: ['RS256'],
    ...extra,
  }),
});

/** A loopback URL nothing listens on. */
async function closedPortUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

const discovered = (name: string, issuer: string, extra: Record<string, unknown> = {}) => ({
  name,
  client_id: 'client-post',
  client_secret: 'client-post-secret',
  issuer,
  enable_discovery: true,
  scopes: ['openid', 'email'],
  ...extra,
});

describe('providers registered by OpenID discovery', () => {
  let broker: TestBroker;
  let idp: OidcFixture;
  let stub: Awaited<ReturnType<typeof startIssuerServer>>;
  before(async () => {
    idp = await startOidcProvider({ clients });
    stub = await startIssuerServer();
    broker = await startBroker({ env: { NEXUS_UPSTREAM_TIMEOUT_SECONDS: '5' } });
  });
  after(async () => {
    await broker?.close();
    await idp?.close();
    await stub?.close();
  });

  /** What a refused registration must not change. */
  const snapshot = async () => ({
    list: (await broker.request({ method: 'GET', url: '/providers' })).body,
    audit: json<{ events: { seq: number }[] }>(await broker.request({ method: 'GET', url: '/audit?limit=1' }))
      .events[0]?.seq,
    secrets: await broker.container.secrets.list('', { limit: 1000 }),
  });

  /** POSTs the profile, expects 422 discovery_failed naming the issuer, and that nothing changed. */
  async function refusedDiscovery(profile: Record<string, unknown>): Promise<string> {
    const before = await snapshot();
    const res = await broker.request({ method: 'POST', url: '/providers', payload: { profile } });
    if (res.statusCode === 201)
      await broker.request({ method: 'DELETE', url: `/providers/${json<{ id: string }>(res).id}` });
    assert.equal(res.statusCode, 422, res.body);
    const body = json<{ error: string; message: string }>(res);
    assert.equal(body.error, 'discovery_failed');
    assert.ok(body.message.includes(String(profile.issuer)), `the message names the issuer: ${body.message}`);
    assert.ok(!res.body.includes(String(profile.client_secret)), 'no client secret in the answer');
    assert.deepEqual(await snapshot(), before, 'a failed discovery changed something');
    assert.equal(
      (await broker.request({ method: 'GET', url: `/providers/by-name/${profile.name}` })).statusCode,
      404,
    );
    return body.message;
  }

  it('registers a provider from its issuer alone and connects through the discovered endpoints', async () => {
    const res = await broker.request({
      method: 'POST',
      url: '/providers',
      payload: { profile: discovered('idp', idp.issuer) },
    });
    assert.equal(res.statusCode, 201, res.body);
    const { id } = json<{ id: string }>(res);
    const view = json(await broker.request({ method: 'GET', url: `/providers/${id}` }));
    assert.equal(view.issuer, idp.issuer);
    assert.equal(view.enable_discovery, true);
    assert.equal(view.auth_url, undefined, 'endpoints are discovered, not copied into the profile');
    assert.equal(view.token_url, undefined);

    // The authorization URL points at the discovered endpoint, with a nonce for openid.
    const started = await broker.request({
      method: 'POST',
      url: '/v1/request-connection',
      payload: { user_id: 'user-1', provider_name: 'idp', return_url: RETURN },
    });
    assert.equal(started.statusCode, 200, started.body);
    const { authUrl, connection_id } = json<{ authUrl: string; connection_id: string }>(started);
    const url = new URL(authUrl);
    assert.equal(url.origin + url.pathname, idp.endpoints.authorization);
    assert.ok(url.searchParams.get('nonce'), 'openid requests carry a nonce');

    // The discovered token endpoint and keys complete the flow (the id_token is verified).
    const callback = await idp.consent(authUrl);
    assert.equal(callback.origin + callback.pathname, REDIRECT);
    const back = await broker.request({ method: 'GET', url: callback.pathname + callback.search, key: null });
    assert.equal(back.statusCode, 302, back.body);
    assert.equal(new URL(back.headers.location as string).searchParams.get('status'), 'success');
    assert.equal(idp.counts.authorization_code, 1);
    const token = await broker.request({ method: 'GET', url: `/v1/token/${connection_id}` });
    assert.equal(token.statusCode, 200, token.body);
    assert.ok(json<{ access_token: string }>(token).access_token);
  });

  it('refuses an issuer nothing answers at', async () => {
    await refusedDiscovery(discovered('unreachable', await closedPortUrl()));
  });

  it('refuses a document whose issuer is not the one registered (OIDC Discovery §4.3)', async () => {
    // The same provider, known under another name for the same host: its document says localhost.
    const other = await startOidcProvider({ clients, issuer: 'http://localhost:{port}' });
    try {
      await refusedDiscovery(discovered('mismatch', `http://127.0.0.1:${other.port}`));
      // And the control: registered under the issuer its document states, it is accepted.
      const ok = await broker.request({
        method: 'POST',
        url: '/providers',
        payload: { profile: discovered('mismatch-fixed', other.issuer) },
      });
      assert.equal(ok.statusCode, 201, ok.body);
      await broker.request({ method: 'DELETE', url: `/providers/${json<{ id: string }>(ok).id}` });
    } finally {
      await other.close();
    }
    stub.answer(documentFor('https://someone-else.example.com'));
    await refusedDiscovery(discovered('mismatch-stub', stub.url));
  });

  it('refuses a discovery answer that is not JSON', async () => {
    for (const answer of [
      { status: 200, type: 'text/html', body: '<!doctype html><title>Welcome</title><h1>Our website</h1>' },
      { status: 200, type: 'application/json', body: '{"issuer": "truncated' },
      { status: 200, type: 'application/json', body: '["not", "an", "object"]' },
    ]) {
      stub.answer(answer);
      await refusedDiscovery(discovered('not-json', stub.url));
    }
  });

  it('refuses an error status from the discovery endpoint', async () => {
    for (const status of [404, 500, 503, 302]) {
      stub.answer({ ...documentFor(stub.url), status });
      await refusedDiscovery(discovered(`status-${status}`, stub.url));
    }
  });

  it('refuses a document without an authorization or token endpoint', async () => {
    for (const missing of ['authorization_endpoint', 'token_endpoint']) {
      stub.answer(documentFor(stub.url, { [missing]: undefined }));
      const message = await refusedDiscovery(discovered(`no-${missing.replace('_', '-')}`, stub.url));
      assert.match(message, /authorization_endpoint|token_endpoint/);
    }
  });

  it('refuses a document whose authorization endpoint the browser should not be sent to', async () => {
    // Opened by the user's browser (the connect page redirects there): held to the rules of an
    // auth_url the operator types. Before, "not a url" registered and then failed each consent
    // with a 500, and javascript: or plain http were handed to the browser.
    for (const [i, endpoint] of [
      'not a url',
      'javascript:alert(document.domain)//',
      'http://203.0.113.9/authorize',
      'https://user:pass@idp.example/authorize',
      'https://idp.example/authorize#frag',
    ].entries()) {
      stub.answer(documentFor(stub.url, { authorization_endpoint: endpoint }));
      const message = await refusedDiscovery(discovered(`bad-authz-${i}`, stub.url));
      assert.match(message, /authorization_endpoint: must/, endpoint);
    }
  });

  it('does not remember a failure: registering again once the issuer answers succeeds', async () => {
    stub.answer({ status: 503, type: 'text/plain', body: 'down for maintenance' });
    await refusedDiscovery(discovered('flaky', stub.url));
    stub.answer(documentFor(stub.url));
    const res = await broker.request({
      method: 'POST',
      url: '/providers',
      payload: { profile: discovered('flaky', stub.url) },
    });
    assert.equal(res.statusCode, 201, res.body);
    await broker.request({ method: 'DELETE', url: `/providers/${json<{ id: string }>(res).id}` });
  });

  it('does not fetch the document for a profile that is invalid anyway', async () => {
    stub.answer(documentFor(stub.url));
    const hits = stub.hits;
    const { client_secret: _, ...withoutSecret } = discovered('invalid-first', stub.url);
    const res = await broker.request({
      method: 'POST',
      url: '/providers',
      payload: { profile: withoutSecret },
    });
    assert.equal(res.statusCode, 400, res.body);
    assert.equal(json(res).error, 'invalid_provider');
    assert.equal(stub.hits, hits, 'no request reached the issuer');
  });

  it('checks the issuer again on PUT and PATCH when it changes, and refuses a broken one', async () => {
    stub.answer(documentFor(stub.url));
    const created = await broker.request({
      method: 'POST',
      url: '/providers',
      payload: { profile: discovered('moving', stub.url) },
    });
    assert.equal(created.statusCode, 201, created.body);
    const { id } = json<{ id: string }>(created);
    const before = (await broker.request({ method: 'GET', url: `/providers/${id}` })).body;

    const unreachable = await closedPortUrl();
    // A new issuer moves where the client secret goes: the change carries it (issue #18).
    for (const [method, profile] of [
      ['PATCH', { issuer: unreachable, client_secret: 'client-post-secret' }],
      ['PUT', discovered('moving', unreachable)],
    ] as const) {
      const res = await broker.request({ method, url: `/providers/${id}`, payload: { profile } });
      assert.equal(res.statusCode, 422, `${method}: ${res.body}`);
      assert.equal(json(res).error, 'discovery_failed');
      assert.equal((await broker.request({ method: 'GET', url: `/providers/${id}` })).body, before, method);
    }

    // Moving to a working issuer is accepted.
    const moved = await broker.request({
      method: 'PATCH',
      url: `/providers/${id}`,
      payload: { profile: { issuer: idp.issuer, client_secret: 'client-post-secret' } },
    });
    assert.equal(moved.statusCode, 200, moved.body);
    assert.equal(json(moved).issuer, idp.issuer);
  });

  it('does not fetch the document again for a change that keeps the issuer', async () => {
    stub.answer(documentFor(stub.url));
    const created = await broker.request({
      method: 'POST',
      url: '/providers',
      payload: { profile: discovered('steady', stub.url) },
    });
    assert.equal(created.statusCode, 201, created.body);
    const { id } = json<{ id: string }>(created);
    // The issuer is down now, which must not block an unrelated edit.
    stub.answer({ status: 500, type: 'text/plain', body: 'down' });
    const hits = stub.hits;
    const res = await broker.request({
      method: 'PATCH',
      url: `/providers/${id}`,
      payload: { profile: { description: 'edited while the issuer is down' } },
    });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(stub.hits, hits);
  });

  it('turns discovery on for a provider registered with explicit URLs', async () => {
    const created = await broker.request({
      method: 'POST',
      url: '/providers',
      payload: {
        profile: {
          name: 'explicit',
          client_id: 'client-basic',
          client_secret: 'client-basic-secret',
          auth_header: 'client_secret_basic',
          auth_url: idp.endpoints.authorization,
          token_url: idp.endpoints.token,
        },
      },
    });
    assert.equal(created.statusCode, 201, created.body);
    const { id } = json<{ id: string }>(created);
    const broken = await broker.request({
      method: 'PATCH',
      url: `/providers/${id}`,
      payload: {
        profile: {
          enable_discovery: true,
          issuer: await closedPortUrl(),
          client_secret: 'client-basic-secret',
        },
      },
    });
    assert.equal(broken.statusCode, 422, broken.body);
    assert.equal(
      json(await broker.request({ method: 'GET', url: `/providers/${id}` })).enable_discovery,
      false,
    );
    const res = await broker.request({
      method: 'PATCH',
      url: `/providers/${id}`,
      payload: {
        profile: {
          enable_discovery: true,
          issuer: idp.issuer,
          auth_url: null,
          token_url: null,
          client_secret: 'client-basic-secret',
        },
      },
    });
    assert.equal(res.statusCode, 200, res.body);
    const view = json(res);
    assert.equal(view.enable_discovery, true);
    assert.equal(view.auth_url, undefined);
  });
});
