/**
 * Issue #18, provider listing: `GET /v1/providers` (and `/v1/providers/metadata`) show an agent
 * only the providers its grant names; admin keys, whatever their scope allows of the agent API,
 * see every provider.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createAgentWithToken, json, startBroker, type TestBroker } from './harness.ts';

type Listing = Record<string, Record<string, { id: string }>>;
const names = (listing: Listing) =>
  Object.values(listing)
    .flatMap((byName) => Object.keys(byName))
    .sort();

describe('GET /v1/providers lists what the caller may use', () => {
  let broker: TestBroker;
  const robotKey = `robot-${randomBytes(20).toString('hex')}`;
  const ids = new Map<string, string>();
  before(async () => {
    broker = await startBroker();
    const profiles = [
      { name: 'alpha', auth_type: 'api_key' },
      { name: 'beta', auth_type: 'api_key' },
      {
        name: 'gamma',
        client_id: 'c',
        client_secret: 's',
        auth_url: 'https://g.example/a',
        token_url: 'https://g.example/t',
      },
    ];
    for (const profile of profiles) {
      const res = await broker.request({ method: 'POST', url: '/providers', payload: { profile } });
      assert.equal(res.statusCode, 201, res.body);
      ids.set(profile.name, json<{ id: string }>(res).id);
    }
  });
  after(() => broker.close());

  const list = async (url: string, token: string) => {
    const res = await broker.request({
      method: 'GET',
      url,
      key: null,
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(res.statusCode, 200, res.body);
    return names(json<Listing>(res));
  };

  it('an agent sees the providers of its grant, by id or name, and nothing else', async () => {
    const one = await createAgentWithToken(broker, 'lister-one', { allowed_providers: ['alpha'] });
    const two = await createAgentWithToken(broker, 'lister-two', {
      allowed_providers: [ids.get('beta')!, 'gamma'],
    });
    for (const url of ['/v1/providers', '/v1/providers/metadata']) {
      assert.deepEqual(await list(url, one.token), ['alpha'], url);
      assert.deepEqual(await list(url, two.token), ['beta', 'gamma'], url);
    }
  });

  it('an empty grant lists nothing; "*" lists everything', async () => {
    const none = await createAgentWithToken(broker, 'lister-none', { allowed_providers: [] });
    const all = await createAgentWithToken(broker, 'lister-all', { allowed_providers: ['*'] });
    assert.deepEqual(await list('/v1/providers', none.token), []);
    assert.deepEqual(await list('/v1/providers', all.token), ['alpha', 'beta', 'gamma']);
  });

  it('admin keys see every provider, on the agent API and the admin one', async () => {
    for (const url of ['/v1/providers', '/v1/providers/metadata', '/providers/metadata']) {
      const res = await broker.request({ method: 'GET', url });
      assert.equal(res.statusCode, 200, res.body);
      assert.deepEqual(names(json<Listing>(res)), ['alpha', 'beta', 'gamma'], url);
    }
  });

  it('an admin key of scope agent sees every provider too', async () => {
    const opsKey = `ops-${randomBytes(20).toString('hex')}`;
    const scoped = await startBroker({ env: { API_KEYS: `ops:${opsKey},robot@agent:${robotKey}` } });
    try {
      const profile = { name: 'delta', auth_type: 'api_key' };
      const refused = await scoped.request({
        method: 'POST',
        url: '/providers',
        key: robotKey,
        payload: { profile },
      });
      assert.equal(refused.statusCode, 403, 'an agent-scoped key cannot register providers');
      const created = await scoped.request({
        method: 'POST',
        url: '/providers',
        key: opsKey,
        payload: { profile },
      });
      assert.equal(created.statusCode, 201, created.body);
      const listed = await scoped.request({ method: 'GET', url: '/v1/providers', key: robotKey });
      assert.equal(listed.statusCode, 200, listed.body);
      assert.deepEqual(names(json<Listing>(listed)), ['delta']);
    } finally {
      await scoped.close();
    }
  });
});
