/**
 * Values learnt at consent from an API answer (issue #20, decision 0015: `params.learnt.<name>.from:
 * api`), against a real OpenID provider mounted under `/acme` with an Atlassian-like
 * `accessible-resources` route that answers only a valid access token of the provider: the value
 * read at `0.id` is stored with the connection and fills the proxy's base URL; an empty list, a
 * value that does not fit, or a refused call fails the consent with nothing kept. On SQLite and
 * PostgreSQL (DIALECT). (A file beside connection-params.test.ts, which is near the size limit.)
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { json, startBroker, type TestBroker } from './harness.ts';
import { clients, REDIRECT, RETURN } from './oauth-scenario.ts';
import { type OidcFixture, startOidcProvider } from './oidc-fixture.ts';

describe('values learnt from an API at consent (issue #20)', { timeout: 120_000 }, () => {
  let broker: TestBroker;
  let idp: OidcFixture;
  let origin: string;
  const client = clients[0]!;

  const call = async (options: Parameters<TestBroker['request']>[0], expect?: number) => {
    const res = await broker.request(options);
    if (expect !== undefined)
      assert.equal(res.statusCode, expect, `${options.method} ${options.url}: ${res.body}`);
    return res;
  };
  /** request-connection, then the provider's own pages back to the callback: the connection and outcome. */
  const connect = async (user: string) => {
    const started = json<{ authUrl: string; connection_id: string }>(
      await call(
        {
          method: 'POST',
          url: '/v1/request-connection',
          payload: { user_id: user, provider_name: 'site-learnt', return_url: RETURN },
        },
        200,
      ),
    );
    const callback = await idp.consent(started.authUrl);
    assert.equal(callback.origin + callback.pathname, REDIRECT);
    const res = await call({ method: 'GET', url: callback.pathname + callback.search, key: null }, 302);
    return { id: started.connection_id, outcome: new URL(res.headers.location as string).searchParams };
  };

  before(async () => {
    idp = await startOidcProvider({ clients, issuer: 'http://127.0.0.1:{port}/acme' });
    origin = new URL(idp.issuer).origin;
    broker = await startBroker({ env: { NEXUS_EGRESS_ALLOWED_CIDRS: '127.0.0.1/32' } });
    await call(
      {
        method: 'POST',
        url: '/providers',
        payload: {
          profile: {
            name: 'site-learnt',
            client_id: client.client_id,
            client_secret: client.client_secret,
            auth_url: idp.endpoints.authorization,
            token_url: idp.endpoints.token,
            api_base_url: `${origin}/{cloud_id}`,
            scopes: ['openid', 'offline_access'],
            params: {
              prompt: 'consent',
              learnt: {
                cloud_id: {
                  from: 'api',
                  url: idp.endpoints.accessible_resources,
                  path: '0.id',
                  pattern: '^[a-z]{2,20}$',
                },
              },
            },
          },
        },
      },
      201,
    );
  });
  afterEach(() => idp.setAccessibleResources([]));
  after(async () => {
    await broker?.close();
    await idp?.close();
  });

  it('reads the value with the new access token, stores it and proxies to the URL it fills', async () => {
    // The route answers only a valid access token: the broker's read below proves it sent one.
    const anonymous = await fetch(idp.endpoints.accessible_resources);
    assert.equal(anonymous.status, 401);
    idp.setAccessibleResources([{ id: 'acme', name: 'Acme', scopes: ['read:me'] }, { id: 'other' }]);

    const { id, outcome } = await connect('user-1');
    assert.equal(outcome.get('status'), 'success', outcome.toString());
    const token = json<{ connection_config: unknown }>(
      await call({ method: 'GET', url: `/v1/token/${id}` }, 200),
    );
    assert.deepEqual(token.connection_config, { cloud_id: 'acme' }, 'the first site listed');
    // The proxy's base URL is `${origin}/acme`: /me there is the provider's userinfo.
    const proxied = await call(
      { method: 'GET', url: '/proxy/site-learnt/me', headers: { 'x-nexus-connection-id': id } },
      200,
    );
    assert.equal(json<{ sub: string }>(proxied).sub, 'test-user');
  });

  it('fails the consent, keeping nothing, when the value is missing, does not fit, or the call is refused', async () => {
    const cases: [readonly unknown[] | number, string][] = [
      [[], 'is missing from the answer of GET'],
      [[{ name: 'no id' }], 'is missing from the answer of GET'],
      [[{ id: 'https://attacker.example.com' }], 'does not match the pattern'],
      [403, 'answered 403'],
    ];
    for (const [answer, reason] of cases) {
      idp.setAccessibleResources(answer);
      const { id, outcome } = await connect(`user-2-${cases.findIndex((c) => c[0] === answer)}`);
      assert.equal(outcome.get('status'), 'failed', JSON.stringify(answer));
      assert.equal(outcome.get('error'), 'learnt_value_invalid');
      const row = await broker.container.connectionsStore.find(id);
      assert.equal(row?.status, 'failed');
      assert.equal(row?.credentials, null, 'no tokens kept');
      assert.equal(row?.connection_config, null);
      await broker.container.audit.flush();
      const events = json<{ events: { event_type: string; details: { detail?: string } | null }[] }>(
        await call({ method: 'GET', url: `/audit?resource=connection:${id}` }, 200),
      ).events;
      const detail = events.find((e) => e.event_type === 'connection.failed')?.details?.detail ?? '';
      assert.ok(detail.startsWith('learnt value cloud_id ') && detail.includes(reason), detail);
      assert.ok(!detail.includes('attacker'), 'the audit names the value, never what was read');
    }
  });
});
