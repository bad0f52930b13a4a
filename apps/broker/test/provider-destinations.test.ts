/**
 * Issue #18, "no admin path to a stored secret": an admin key alone must not be able to point a
 * provider's token endpoint (or revocation endpoint, issuer, discovery, client authentication or
 * API base URL) somewhere new and have the broker send the client secret and users' tokens there.
 * Against a real OpenID provider with a connected account, and a trap server that records every
 * request it gets.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { assertProblem, json } from './harness.ts';
import { Scenario } from './oauth-scenario.ts';

const SECRET = 'client-basic-secret';

async function startTrap(): Promise<{ url: string; hits: string[]; close(): Promise<void> }> {
  const hits: string[] = [];
  const server = http.createServer((req, res) => {
    hits.push(`${req.method} ${req.url}`);
    res.writeHead(500).end();
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    hits,
    close: () =>
      new Promise<void>((done) => {
        server.closeAllConnections();
        server.close(() => done());
      }),
  };
}

describe('changing where a provider sends its secrets', { timeout: 120_000 }, () => {
  const s = new Scenario();
  let trap: Awaited<ReturnType<typeof startTrap>>;
  let basicId: string;
  let connectionId: string;

  before(async () => {
    await s.start();
    trap = await startTrap();
    basicId = json<{ id: string }>(
      await s.call({ method: 'GET', url: '/providers/by-name/idp-basic' }, 200),
    ).id;
    connectionId = await s.connect('idp-basic');
  });
  after(async () => {
    await s.close();
    await trap?.close();
  });

  const provider = async (id = basicId) =>
    json<Record<string, unknown> & { version: number; params: Record<string, unknown> }>(
      await s.call({ method: 'GET', url: `/providers/${id}` }, 200),
    );
  const patch = (profile: Record<string, unknown>, id = basicId) =>
    s.call({ method: 'PATCH', url: `/providers/${id}`, payload: { profile } });
  const eventsOf = async (id: string) =>
    s.broker.container.audit.query({ resourceType: 'provider', resourceId: id, limit: 100 });

  it('without the client secret every destination change is refused with 400, and nothing changes or is sent', async () => {
    const before = await provider();
    const changes: [Record<string, unknown>, string][] = [
      [{ token_url: `${trap.url}/token` }, 'token_url'],
      [{ params: { revocation_endpoint: `${trap.url}/revoke` } }, 'params.revocation_endpoint'],
      [{ auth_header: 'client_secret_post' }, 'auth_header'],
      [{ api_base_url: `${trap.url}/api` }, 'api_base_url'],
      // What a connection may fill into a URL's placeholders.
      [
        {
          params: {
            connection_parameters: { host: { title: 'Host', pattern: '^.+$', default: 'evil.example' } },
          },
        },
        'params.connection_parameters',
      ],
      // Fetched with each new access token.
      [
        {
          params: {
            learnt: { org: { from: 'api', url: `${trap.url}/me`, path: 'org', pattern: '^[a-z]+$' } },
          },
        },
        'params.learnt',
      ],
      // Discovery would learn the endpoints from the trap: refused before it is even fetched.
      [{ issuer: trap.url, enable_discovery: true }, 'issuer'],
    ];
    for (const [change, field] of changes) {
      const res = await patch(change);
      const body = assertProblem<{ error: string; details: { fields: string[] } }>(
        res,
        400,
        'provider_secret_required',
        JSON.stringify(change),
      );
      assert.ok(body.details.fields.includes(field), JSON.stringify(body.details));
    }
    const replaced = await s.call({
      method: 'PUT',
      url: `/providers/${basicId}`,
      payload: {
        profile: {
          name: 'idp-basic',
          auth_header: 'client_secret_basic',
          client_id: 'client-basic',
          auth_url: s.idp.endpoints.authorization,
          token_url: `${trap.url}/token`,
          scopes: ['api:read'],
        },
      },
    });
    assertProblem(replaced, 400, 'provider_secret_required');

    assert.deepEqual(await provider(), before, 'the provider is unchanged');
    assert.equal((await s.broker.container.providers.loadForUse(basicId)).clientSecret, SECRET);
    // The refresh path still talks to the real provider only.
    await s.call({ method: 'POST', url: `/connections/${connectionId}/refresh` }, 200);
    assert.deepEqual(trap.hits, [], 'the trap never heard from the broker');
    const actions = (await eventsOf(basicId)).map((e) => e.event_type);
    assert.deepEqual(actions, ['provider.created'], 'a refused change is not an update');
  });

  it('a client secret that is not the stored one vouches for nothing while a connection holds tokens: 409', async () => {
    const before = await provider();
    const res = await patch({ token_url: `${trap.url}/token`, client_secret: 'a-secret-of-my-own' });
    const body = assertProblem<{ error: string; details: { fields: string[] } }>(
      res,
      409,
      'provider_destination_locked',
    );
    assert.deepEqual(body.details.fields, ['token_url']);
    assert.deepEqual(await provider(), before);
    assert.equal(
      (await s.broker.container.providers.loadForUse(basicId)).clientSecret,
      SECRET,
      'the stored secret was not replaced',
    );
    assert.deepEqual(trap.hits, []);
  });

  it('the current client secret vouches: accepted and audited as provider.destination_changed, never with the secret', async () => {
    const before = await provider();
    const res = await patch({ api_base_url: 'https://api.example.com/v1', client_secret: SECRET });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(json<{ version: number }>(res).version, before.version + 1);
    const [last] = (await eventsOf(basicId)).filter((e) => e.event_type === 'provider.destination_changed');
    assert.ok(last, 'a distinct audit action');
    assert.equal(last.details?.basis, 'current_client_secret');
    assert.deepEqual(last.details?.destination_fields, ['api_base_url']);
    const everything = JSON.stringify(await s.broker.container.audit.query({ limit: 1000 }));
    assert.ok(!everything.includes(SECRET), 'no audit row holds the client secret');
    // The connection still works with the real provider.
    assert.equal((await s.call({ method: 'GET', url: `/v1/token/${connectionId}` })).statusCode, 200);
  });

  it('changes that move no secret need nothing and stay provider.updated', async () => {
    const res = await patch({ description: 'the test identity provider', scopes: ['api:read', 'api:write'] });
    assert.equal(res.statusCode, 200, res.body);
    const events = await eventsOf(basicId);
    assert.equal(events[0]?.event_type, 'provider.updated', JSON.stringify(events[0]));
    assert.deepEqual(events[0]?.details?.changed, ['description', 'scopes']);
  });

  it('a provider that has not connected anyone may take a new endpoint with a new secret, but not without one', async () => {
    const created = await s.call(
      {
        method: 'POST',
        url: '/providers',
        payload: {
          profile: {
            name: 'not-yet-used',
            client_id: 'c',
            client_secret: 'first-secret',
            auth_url: 'https://old.example/authorize',
            token_url: 'https://old.example/token',
          },
        },
      },
      201,
    );
    const id = json<{ id: string }>(created).id;
    const moved = await patch({ token_url: 'https://new.example/token', client_secret: 'second-secret' }, id);
    assert.equal(moved.statusCode, 200, moved.body);
    const [event] = await eventsOf(id);
    assert.equal(event?.event_type, 'provider.destination_changed');
    assert.equal(event?.details?.basis, 'no_stored_credentials');
    assert.equal((await s.broker.container.providers.loadForUse(id)).clientSecret, 'second-secret');
    const again = await patch({ token_url: 'https://newer.example/token' }, id);
    assertProblem(again, 400, 'provider_secret_required', 'the stored secret would go there');
  });

  it('a provider without a client secret: free with no credentials stored, locked while a connection holds some, free after revocation', async () => {
    const created = await s.call(
      {
        method: 'POST',
        url: '/providers',
        payload: {
          profile: { name: 'static-api', auth_type: 'api_key', api_base_url: 'https://api.one.example' },
        },
      },
      201,
    );
    const id = json<{ id: string }>(created).id;
    assert.equal((await patch({ api_base_url: 'https://api.two.example' }, id)).statusCode, 200);

    const started = json<{ state: string; connection_id: string }>(
      await s.call(
        {
          method: 'POST',
          url: '/v1/request-connection',
          payload: {
            user_id: 'user-static',
            provider_name: 'static-api',
            return_url: 'http://localhost:3000/x',
          },
        },
        200,
      ),
    );
    await s.call(
      {
        method: 'POST',
        url: '/v1/capture-credential',
        key: null,
        payload: { state: started.state, credentials: { api_key: 'sk_user_static_key_123' } },
      },
      200,
    );
    const before = await provider(id);
    const locked = await patch({ api_base_url: `${trap.url}/api` }, id);
    assertProblem(locked, 409, 'provider_destination_locked');
    assert.deepEqual(await provider(id), before);

    await s.call({ method: 'DELETE', url: `/connections/${started.connection_id}` }, 200);
    const freed = await patch({ api_base_url: 'https://api.three.example' }, id);
    assert.equal(freed.statusCode, 200, freed.body);
    assert.deepEqual(trap.hits, []);
  });
});
