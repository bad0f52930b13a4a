/**
 * The provider registry over HTTP (issue #2): create, read, list, replace, patch, delete, aliases,
 * optimistic concurrency, the client secret never leaving the broker, and the audit trail.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { assertProblem, json, startBroker, type TestBroker } from './harness.ts';

type View = {
  id: string;
  name: string;
  auth_type: string;
  auth_header: string;
  client_id?: string;
  has_client_secret: boolean;
  auth_url?: string;
  token_url?: string;
  enable_discovery: boolean;
  scopes: string[];
  params: Record<string, unknown>;
  description?: string;
  category?: string;
  api_base_url?: string;
  aliases: string[];
  version: number;
  created_at: string;
  updated_at: string;
};

type AuditEvent = {
  seq: number;
  event_type: string;
  actor: string;
  resource_type: string;
  resource_id: string;
  details: Record<string, unknown>;
};

const oauth = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  client_id: `${name}-client`,
  client_secret: `${name}-secret-0123456789`,
  auth_url: 'https://idp.example.com/authorize',
  token_url: 'https://idp.example.com/token',
  scopes: ['read'],
  ...extra,
});

/** Every response of this file and every client secret sent, for the scan at the end. */
const responses: LightMyRequestResponse[] = [];
const sentSecrets = new Set<string>();

describe('provider registry', () => {
  let broker: TestBroker;
  let clock = Date.parse('2030-01-01T00:00:00Z');
  before(async () => {
    broker = await startBroker({ now: () => clock });
  });
  after(async () => {
    // No response of any route, in this whole file, carried a client secret it was sent.
    assert.ok(sentSecrets.size >= 20, `the scan saw real secrets (${sentSecrets.size})`);
    for (const secret of sentSecrets) {
      for (const res of responses) {
        assert.ok(!res.body.includes(secret), `client secret leaked: ${res.body.slice(0, 160)}`);
        assert.ok(!JSON.stringify(res.headers).includes(secret), 'client secret leaked in headers');
      }
    }
    await broker.close();
  });

  const call = async (options: Parameters<TestBroker['request']>[0]) => {
    const secret = (options.payload as { profile?: { client_secret?: unknown } } | undefined)?.profile
      ?.client_secret;
    if (typeof secret === 'string' && secret !== '') sentSecrets.add(secret);
    const res = await broker.request(options);
    responses.push(res);
    return res;
  };
  const create = async (profile: Record<string, unknown>): Promise<string> => {
    const res = await call({ method: 'POST', url: '/providers', payload: { profile } });
    assert.equal(res.statusCode, 201, res.body);
    return json<{ id: string }>(res).id;
  };
  const get = async (id: string): Promise<View> => {
    const res = await call({ method: 'GET', url: `/providers/${id}` });
    assert.equal(res.statusCode, 200, res.body);
    return json<View>(res);
  };
  const names = async () =>
    json<{ id: string; name: string }[]>(await call({ method: 'GET', url: '/providers' })).map((p) => p.name);
  const byName = (name: string) => call({ method: 'GET', url: `/providers/by-name/${name}` });
  const events = async (id: string): Promise<AuditEvent[]> => {
    const res = await call({ method: 'GET', url: `/audit?resource=provider:${id}&limit=500` });
    assert.equal(res.statusCode, 200, res.body);
    return json<{ events: AuditEvent[] }>(res).events.reverse();
  };
  /** The client secret the broker would send to the token endpoint. */
  const secretInUse = async (id: string) => (await broker.container.providers.loadForUse(id)).clientSecret;

  it('creates an oauth2 provider with the v1 defaults and reads it back by id', async () => {
    const res = await call({ method: 'POST', url: '/providers', payload: { profile: oauth('github') } });
    assert.equal(res.statusCode, 201, res.body);
    const created = json<{ id: string; message: string }>(res);
    assert.match(created.id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    assert.equal(created.message, 'provider created');

    const read = await call({ method: 'GET', url: `/providers/${created.id}` });
    assert.equal(read.statusCode, 200);
    assert.equal(read.headers.etag, '"1"');
    assert.deepEqual(json(read), {
      id: created.id,
      name: 'github',
      auth_type: 'oauth2',
      auth_header: 'client_secret_post',
      client_id: 'github-client',
      has_client_secret: true,
      auth_url: 'https://idp.example.com/authorize',
      token_url: 'https://idp.example.com/token',
      enable_discovery: false,
      scopes: ['read'],
      params: {},
      aliases: [],
      version: 1,
      created_at: new Date(clock).toISOString(),
      updated_at: new Date(clock).toISOString(),
    });
    assert.equal(await secretInUse(created.id), 'github-secret-0123456789');
  });

  it('treats "" and null as "not set" and stores each scope once', async () => {
    const id = await create(
      oauth('zero-values', {
        description: '',
        category: null,
        api_base_url: '',
        user_info_endpoint: null,
        scopes: ['read', 'write', 'read'],
        params: { access_type: 'offline' },
      }),
    );
    const view = await get(id);
    for (const field of ['description', 'category', 'api_base_url', 'user_info_endpoint'])
      assert.equal(field in view, false, field);
    assert.deepEqual(view.scopes, ['read', 'write']);
    assert.deepEqual(view.params, { access_type: 'offline' });
  });

  it('creates static-credential providers without any oauth2 field', async () => {
    const id = await create({
      name: 'static-key',
      auth_type: 'api_key',
      api_base_url: 'https://api.example.com',
      params: { auth_strategy: { type: 'query_param', config: { param_name: 'key' } } },
    });
    const view = await get(id);
    assert.equal(view.auth_type, 'api_key');
    assert.equal(view.has_client_secret, false);
    assert.equal(view.client_id, undefined);
    assert.deepEqual(view.params.auth_strategy, { type: 'query_param', config: { param_name: 'key' } });
    assert.equal(await secretInUse(id), undefined);
  });

  it('lists live providers as [{id, name}] sorted by name, and an empty registry as []', async () => {
    const other = await startBroker();
    try {
      const empty = await other.request({ method: 'GET', url: '/providers' });
      assert.equal(empty.statusCode, 200);
      assert.equal(empty.body, '[]');
      const ids: Record<string, string> = {};
      for (const name of ['zeta', 'alpha', 'mid']) {
        const res = await other.request({
          method: 'POST',
          url: '/providers',
          payload: { profile: { name, auth_type: 'api_key' } },
        });
        ids[name] = json<{ id: string }>(res).id;
      }
      const list = await other.request({ method: 'GET', url: '/providers' });
      assert.deepEqual(json(list), [
        { id: ids.alpha, name: 'alpha' },
        { id: ids.mid, name: 'mid' },
        { id: ids.zeta, name: 'zeta' },
      ]);
      await other.request({ method: 'DELETE', url: `/providers/${ids.mid}` });
      assert.deepEqual(
        json<{ name: string }[]>(await other.request({ method: 'GET', url: '/providers' })).map(
          (p) => p.name,
        ),
        ['alpha', 'zeta'],
      );
    } finally {
      await other.close();
    }
  });

  it('groups live providers by auth type in /providers/metadata', async () => {
    const id = await create(
      oauth('meta-oauth', {
        api_base_url: 'https://api.meta.example',
        description: 'Meta example',
        category: 'social',
        scopes: ['a', 'b'],
      }),
    );
    const keyed = await create({ name: 'meta-key', auth_type: 'api_key' });
    const res = await call({ method: 'GET', url: '/providers/metadata' });
    assert.equal(res.statusCode, 200);
    const metadata = json<Record<string, Record<string, unknown>>>(res);
    assert.deepEqual(metadata.oauth2?.['meta-oauth'], {
      id,
      api_base_url: 'https://api.meta.example',
      user_info_endpoint: '',
      scopes: ['a', 'b'],
      description: 'Meta example',
      category: 'social',
    });
    assert.deepEqual(metadata.api_key?.['meta-key'], {
      id: keyed,
      api_base_url: '',
      user_info_endpoint: '',
      scopes: [],
      description: '',
      category: '',
    });
    assert.equal(metadata.oauth2?.['meta-key'], undefined);
    await call({ method: 'DELETE', url: `/providers/${keyed}` });
    const after = json<Record<string, Record<string, unknown>>>(
      await call({ method: 'GET', url: '/providers/metadata' }),
    );
    assert.equal(after.api_key?.['meta-key'], undefined, 'deleted providers leave the metadata');
  });

  it('resolves a provider by id, by name and by alias', async () => {
    const id = await create(oauth('lookup'));
    await call({ method: 'POST', url: `/providers/${id}/aliases`, payload: { alias: 'lookup-prod' } });
    assert.equal((await get(id)).name, 'lookup');
    for (const ref of ['lookup', 'lookup-prod']) {
      const res = await byName(ref);
      assert.equal(res.statusCode, 200, ref);
      assert.deepEqual(json(res), { id });
    }
    const missing = await byName('no-such-provider');
    assertProblem(missing, 404, 'provider_not_found');
  });

  it('answers 404 provider_not_found for unknown and malformed ids on every route', async () => {
    const valid = { profile: oauth('never-created') };
    for (const id of [randomUUID(), 'not-a-uuid', '00000000-0000-0000-0000-000000000000']) {
      for (const [method, payload] of [
        ['GET', undefined],
        ['PUT', valid],
        ['PATCH', { profile: { description: 'x' } }],
        ['DELETE', undefined],
      ] as const) {
        const res = await call({ method, url: `/providers/${id}`, ...(payload ? { payload } : {}) });
        assertProblem(res, 404, 'provider_not_found', `${method} ${id}`);
      }
      for (const [method, url, payload] of [
        ['GET', `/providers/${id}/aliases`, undefined],
        ['POST', `/providers/${id}/aliases`, { alias: 'orphan' }],
        ['DELETE', `/providers/${id}/aliases/orphan`, undefined],
      ] as const) {
        const res = await call({ method, url, ...(payload ? { payload } : {}) });
        assertProblem(res, 404, 'provider_not_found', `${method} ${url}`);
      }
    }
    assert.ok(!(await names()).includes('never-created'), 'a PUT to an unknown id creates nothing');
  });

  it('adds, lists and removes aliases', async () => {
    const id = await create(oauth('google'));
    const first = await call({
      method: 'POST',
      url: `/providers/${id}/aliases`,
      payload: { alias: 'google-prod' },
    });
    assert.equal(first.statusCode, 201, first.body);
    assert.deepEqual(json(first), { aliases: ['google-prod'] });
    const second = await call({
      method: 'POST',
      url: `/providers/${id}/aliases`,
      payload: { alias: 'google-eu' },
    });
    assert.deepEqual(json(second), { aliases: ['google-eu', 'google-prod'] });
    assert.deepEqual(json(await call({ method: 'GET', url: `/providers/${id}/aliases` })), {
      aliases: ['google-eu', 'google-prod'],
    });
    assert.deepEqual((await get(id)).aliases, ['google-eu', 'google-prod']);
    assert.equal((await get(id)).version, 1, 'aliases do not change the profile version');

    const removed = await call({ method: 'DELETE', url: `/providers/${id}/aliases/google-eu` });
    assert.equal(removed.statusCode, 200);
    assert.deepEqual(json(removed), { message: 'alias removed' });
    assert.deepEqual((await get(id)).aliases, ['google-prod']);
    assert.equal((await byName('google-eu')).statusCode, 404);
    assert.equal((await byName('google-prod')).statusCode, 200);

    const again = await call({ method: 'DELETE', url: `/providers/${id}/aliases/google-eu` });
    assertProblem(again, 404, 'alias_not_found');
    // An alias belongs to its provider: it cannot be removed through another one.
    const other = await create(oauth('google-other'));
    const foreign = await call({ method: 'DELETE', url: `/providers/${other}/aliases/google-prod` });
    assertProblem(foreign, 404, 'alias_not_found');
    assert.deepEqual((await get(id)).aliases, ['google-prod']);
  });

  it('refuses an alias that is already a name or an alias: 409 alias_taken, nothing added', async () => {
    const a = await create(oauth('alias-a'));
    const b = await create(oauth('alias-b'));
    await call({ method: 'POST', url: `/providers/${a}/aliases`, payload: { alias: 'alias-a-prod' } });
    for (const [target, alias] of [
      [a, 'alias-a'], // its own name
      [b, 'alias-a'], // another provider's name
      [b, 'alias-a-prod'], // another provider's alias
      [a, 'alias-a-prod'], // its own alias, twice
    ] as const) {
      const res = await call({ method: 'POST', url: `/providers/${target}/aliases`, payload: { alias } });
      assertProblem(res, 409, 'alias_taken', alias);
      assert.deepEqual(json(res).details, { alias });
    }
    assert.deepEqual((await get(a)).aliases, ['alias-a-prod']);
    assert.deepEqual((await get(b)).aliases, []);
    assert.deepEqual(json(await byName('alias-a-prod')), { id: a });
  });

  it('refuses a name already used by a live provider or alias: 409 provider_name_taken', async () => {
    const taken = await create(oauth('taken'));
    await call({ method: 'POST', url: `/providers/${taken}/aliases`, payload: { alias: 'taken-alias' } });
    for (const name of ['taken', 'taken-alias']) {
      const res = await call({ method: 'POST', url: '/providers', payload: { profile: oauth(name) } });
      assertProblem(res, 409, 'provider_name_taken');
      assert.deepEqual(json(res).details, { name });
    }
    assert.equal((await names()).filter((n) => n === 'taken').length, 1);

    const mover = await create(oauth('mover'));
    for (const [method, payload] of [
      ['PATCH', { profile: { name: 'taken' } }],
      ['PATCH', { profile: { name: 'taken-alias' } }],
      ['PUT', { profile: { ...oauth('taken'), client_secret: undefined } }],
      ['PUT', { profile: { ...oauth('taken-alias'), client_secret: undefined } }],
    ] as const) {
      const res = await call({ method, url: `/providers/${mover}`, payload });
      assertProblem(res, 409, 'provider_name_taken', `${method} ${JSON.stringify(payload)}`);
    }
    const view = await get(mover);
    assert.equal(view.name, 'mover');
    assert.equal(view.version, 1);
  });

  it('replaces a profile with PUT: fields not sent are cleared, an omitted client_secret is kept', async () => {
    const id = await create(oauth('replace-me', { description: 'old', category: 'dev', scopes: ['a'] }));
    clock += 60_000;
    // Fields that say where secrets go stay: changing those needs the secret (provider-destinations.test.ts).
    const { client_secret: _, ...withoutSecret } = oauth('replace-me', {
      auth_url: 'https://idp.example.com/v2/authorize',
      scopes: ['b', 'c'],
    });
    const res = await call({ method: 'PUT', url: `/providers/${id}`, payload: { profile: withoutSecret } });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.headers.etag, '"2"');
    const view = json<View>(res);
    assert.deepEqual(view, await get(id), 'the response is the stored state');
    assert.equal(view.version, 2);
    assert.equal(view.auth_url, 'https://idp.example.com/v2/authorize');
    assert.deepEqual(view.scopes, ['b', 'c']);
    assert.equal(view.description, undefined);
    assert.equal(view.category, undefined);
    assert.equal(view.has_client_secret, true);
    assert.equal(await secretInUse(id), 'replace-me-secret-0123456789');
    assert.notEqual(view.updated_at, view.created_at);
    assert.equal(view.updated_at, new Date(clock).toISOString());

    const rotated = await call({
      method: 'PUT',
      url: `/providers/${id}`,
      payload: { profile: { ...withoutSecret, client_secret: 'rotated-secret-value' } },
    });
    assert.equal(rotated.statusCode, 200, rotated.body);
    assert.equal(await secretInUse(id), 'rotated-secret-value');
  });

  it('patches only the fields sent; null clears an optional field', async () => {
    const id = await create(oauth('patch-me', { description: 'first', category: 'dev' }));
    const res = await call({
      method: 'PATCH',
      url: `/providers/${id}`,
      payload: { profile: { description: 'second', scopes: ['x', 'y'] } },
    });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.headers.etag, '"2"');
    const view = json<View>(res);
    assert.equal(view.description, 'second');
    assert.deepEqual(view.scopes, ['x', 'y']);
    assert.equal(view.category, 'dev');
    assert.equal(view.client_id, 'patch-me-client');
    assert.equal(view.has_client_secret, true);
    assert.equal(view.version, 2);

    const cleared = json<View>(
      await call({ method: 'PATCH', url: `/providers/${id}`, payload: { profile: { category: null } } }),
    );
    assert.equal('category' in cleared, false);
    assert.equal(cleared.description, 'second');
    assert.equal(cleared.version, 3);
    assert.deepEqual(await get(id), cleared);

    await call({
      method: 'PATCH',
      url: `/providers/${id}`,
      payload: { profile: { client_secret: 'patched-secret-value' } },
    });
    assert.equal(await secretInUse(id), 'patched-secret-value');
  });

  it('renames a provider: the new name resolves, the old one is free again, aliases follow', async () => {
    const id = await create(oauth('old-name'));
    await call({ method: 'POST', url: `/providers/${id}/aliases`, payload: { alias: 'old-name-alias' } });
    const res = await call({
      method: 'PATCH',
      url: `/providers/${id}`,
      payload: { profile: { name: 'new-name' } },
    });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(json<View>(res).name, 'new-name');
    assert.deepEqual(json(await byName('new-name')), { id });
    assert.deepEqual(json(await byName('old-name-alias')), { id });
    assert.equal((await byName('old-name')).statusCode, 404);
    assert.notEqual(await create(oauth('old-name')), id);
  });

  it('drops the stored client secret when a provider becomes a static-credential type', async () => {
    const id = await create(oauth('becomes-static'));
    const res = await call({
      method: 'PATCH',
      url: `/providers/${id}`,
      payload: {
        profile: { auth_type: 'api_key', client_id: null, auth_url: null, token_url: null },
      },
    });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(json<View>(res).has_client_secret, false);
    assert.equal(await secretInUse(id), undefined);
    assert.deepEqual(await broker.container.secrets.list(`providers/${id}/`), []);
  });

  it('honours If-Match: a stale version gets 409 version_conflict and changes nothing', async () => {
    const id = await create(oauth('versioned'));
    const ok = await call({
      method: 'PATCH',
      url: `/providers/${id}`,
      headers: { 'if-match': '"1"' },
      payload: { profile: { description: 'v2' } },
    });
    assert.equal(ok.statusCode, 200, ok.body);
    assert.equal(ok.headers.etag, '"2"');

    for (const [method, payload] of [
      ['PATCH', { profile: { description: 'lost update' } }],
      ['PUT', { profile: { ...oauth('versioned'), description: 'lost update' } }],
      ['DELETE', undefined],
    ] as const) {
      const res = await call({
        method,
        url: `/providers/${id}`,
        headers: { 'if-match': '"1"' },
        ...(payload ? { payload } : {}),
      });
      assertProblem(res, 409, 'version_conflict', method);
      assert.deepEqual(json(res).details, { current_version: 2 }, method);
    }
    const unchanged = await get(id);
    assert.equal(unchanged.version, 2);
    assert.equal(unchanged.description, 'v2');

    // A weak tag, a list containing the current tag, and * all match.
    for (const [tag, version] of [
      ['W/"2"', 3],
      ['"1", "3"', 4],
      ['*', 5],
    ] as const) {
      const res = await call({
        method: 'PATCH',
        url: `/providers/${id}`,
        headers: { 'if-match': tag },
        payload: { profile: { description: `via ${tag}` } },
      });
      assert.equal(res.statusCode, 200, `${tag}: ${res.body}`);
      assert.equal(json<View>(res).version, version);
    }
    const deleted = await call({ method: 'DELETE', url: `/providers/${id}`, headers: { 'if-match': '"5"' } });
    assert.equal(deleted.statusCode, 200, deleted.body);
  });

  it('lets exactly one of several concurrent updates with the same If-Match through', async () => {
    const id = await create(oauth('contended'));
    const results = await Promise.all(
      ['a', 'b', 'c', 'd', 'e'].map((v) =>
        call({
          method: 'PATCH',
          url: `/providers/${id}`,
          headers: { 'if-match': '"1"' },
          payload: { profile: { description: v } },
        }),
      ),
    );
    const statuses = results.map((r) => r.statusCode).sort();
    assert.deepEqual(statuses, [200, 409, 409, 409, 409]);
    for (const r of results.filter((r) => r.statusCode === 409))
      assert.equal(json(r).error, 'version_conflict');
    const winner = json<View>(results.find((r) => r.statusCode === 200)!);
    const view = await get(id);
    assert.equal(view.version, 2);
    assert.equal(view.description, winner.description);
  });

  it('leaves the client secret alone when a PATCH loses a version race (409)', async () => {
    const id = await create(oauth('secret-race'));
    for (let round = 1; round <= 5; round++) {
      const results = await Promise.all(
        ['A', 'B'].map((s) =>
          call({
            method: 'PATCH',
            url: `/providers/${id}`,
            headers: { 'if-match': `"${round}"` },
            payload: { profile: { client_secret: `secret-${s}-${round}`, description: s } },
          }),
        ),
      );
      const winner = results.find((r) => r.statusCode === 200);
      assert.ok(winner, `round ${round}: ${results.map((r) => r.body).join(' | ')}`);
      assert.equal(
        await secretInUse(id),
        `secret-${json<View>(winner).description}-${round}`,
        `round ${round}: the secret in use is the one of the request that won`,
      );
    }
  });

  it('lets exactly one of several concurrent creates of the same name through', async () => {
    const results = await Promise.all(
      Array.from({ length: 5 }, () =>
        call({ method: 'POST', url: '/providers', payload: { profile: oauth('first-come') } }),
      ),
    );
    assert.deepEqual(
      results.map((r) => r.statusCode).sort(),
      [201, 409, 409, 409, 409],
      results.map((r) => r.body).join('\n'),
    );
    for (const r of results.filter((r) => r.statusCode === 409))
      assert.equal(json(r).error, 'provider_name_taken');
    assert.equal((await names()).filter((n) => n === 'first-come').length, 1);
    // The losers' client secrets were not left behind: every stored secret belongs to a live provider.
    const live = new Set(
      json<{ id: string }[]>(await call({ method: 'GET', url: '/providers' })).map((p) => p.id),
    );
    for (const path of await broker.container.secrets.list('providers/', { limit: 1000 }))
      assert.ok(live.has(path.split('/')[1]!), `orphan secret ${path}`);
  });

  it('never lets a name and an alias be claimed at the same time', async () => {
    const holder = await create(oauth('claim-holder'));
    for (let i = 0; i < 5; i++) {
      const wanted = `claimed-${i}`;
      const [alias, provider] = await Promise.all([
        call({ method: 'POST', url: `/providers/${holder}/aliases`, payload: { alias: wanted } }),
        call({ method: 'POST', url: '/providers', payload: { profile: oauth(wanted) } }),
      ]);
      assert.deepEqual(
        [alias.statusCode, provider.statusCode].sort(),
        [201, 409],
        `${wanted}: alias ${alias.statusCode}, provider ${provider.statusCode}`,
      );
    }
  });

  it('deletes softly: 404 afterwards, name, aliases and client secret released', async () => {
    const id = await create(oauth('doomed'));
    await call({ method: 'POST', url: `/providers/${id}/aliases`, payload: { alias: 'doomed-alias' } });
    assert.equal((await broker.container.secrets.list(`providers/${id}/`)).length, 1);

    const res = await call({ method: 'DELETE', url: `/providers/${id}` });
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(json(res), { id, message: 'provider deleted' });

    const read = await call({ method: 'GET', url: `/providers/${id}` });
    assertProblem(read, 404, 'provider_not_found');
    for (const ref of ['doomed', 'doomed-alias']) assert.equal((await byName(ref)).statusCode, 404, ref);
    assert.ok(!(await names()).includes('doomed'));
    const twice = await call({ method: 'DELETE', url: `/providers/${id}` });
    assertProblem(twice, 404, 'provider_not_found');
    assert.equal(
      (await call({ method: 'PATCH', url: `/providers/${id}`, payload: { profile: { description: 'x' } } }))
        .statusCode,
      404,
    );
    assert.deepEqual(await broker.container.secrets.list(`providers/${id}/`), []);
    await assert.rejects(secretInUse(id), /provider_not_found|No live provider/);

    // The name and the alias can be used again, by new providers.
    const reborn = await create(oauth('doomed'));
    assert.notEqual(reborn, id);
    const other = await create(oauth('adopter'));
    const adopted = await call({
      method: 'POST',
      url: `/providers/${other}/aliases`,
      payload: { alias: 'doomed-alias' },
    });
    assert.equal(adopted.statusCode, 201, adopted.body);
    assert.deepEqual(json(await byName('doomed-alias')), { id: other });
  });

  /** A static-credential provider with one active connection (credentials captured on the hosted page). */
  async function connectedStaticProvider(name: string): Promise<{ id: string; connection: string }> {
    const id = await create({ name, auth_type: 'api_key' });
    const started = json<{ state: string; connection_id: string }>(
      await call({
        method: 'POST',
        url: '/v1/request-connection',
        payload: { user_id: `${name}-user`, provider_name: name, return_url: 'http://localhost:3000/done' },
      }),
    );
    const captured = await call({
      method: 'POST',
      url: '/v1/capture-credential',
      payload: { state: started.state, credentials: { api_key: `${name}-api-key` } },
    });
    assert.equal(captured.statusCode, 200, captured.body);
    const token = await call({ method: 'GET', url: `/v1/token/${started.connection_id}` });
    assert.equal(token.statusCode, 200, token.body);
    return { id, connection: started.connection_id };
  }

  it('stops the connections of a deleted provider, also after its name is reused', async () => {
    const { id, connection } = await connectedStaticProvider('retired');
    assert.equal((await call({ method: 'DELETE', url: `/providers/${id}` })).statusCode, 200);
    for (const [method, url] of [
      ['GET', `/v1/token/${connection}`],
      ['POST', `/v1/refresh/${connection}`],
      ['GET', `/connections/${connection}/token`],
    ] as const) {
      const res = await call({ method, url });
      assertProblem(res, 409, 'connection_not_active', `${method} ${url}`);
      assert.ok(!res.body.includes('retired-api-key'));
    }
    const resolved = await call({
      method: 'GET',
      url: '/v1/resolve?workspace_id=retired-user&provider_name=retired',
    });
    assert.equal(resolved.statusCode, 404);
    // A new provider under the old name does not inherit the old connections.
    await create({ name: 'retired', auth_type: 'api_key' });
    const again = await call({
      method: 'GET',
      url: '/v1/resolve?workspace_id=retired-user&provider_name=retired',
    });
    assert.equal(again.statusCode, 404, again.body);
    assert.equal((await call({ method: 'GET', url: `/v1/token/${connection}` })).statusCode, 409);
  });

  it('reports a connection of a deleted provider as no longer active in check-connection', async () => {
    const { id, connection } = await connectedStaticProvider('retiring');
    await call({ method: 'DELETE', url: `/providers/${id}` });
    const res = await call({ method: 'GET', url: `/v1/check-connection/${connection}` });
    assert.equal(res.statusCode, 200, res.body);
    const { status } = json<{ status: string }>(res);
    assert.notEqual(status, 'active', 'the token fetch refuses it, so it is not active');
    assert.ok(['revoked', 'failed', 'expired', 'attention_required'].includes(status), status);
  });

  it('never returns the client secret, in any response or log line, and stores it encrypted', async () => {
    const secret = 'very-distinctive-client-secret-5f2b';
    const id = await create(oauth('secretive', { client_secret: secret }));
    const seen: LightMyRequestResponse[] = [
      await call({ method: 'GET', url: `/providers/${id}` }),
      await call({ method: 'GET', url: '/providers' }),
      await call({ method: 'GET', url: '/providers/metadata' }),
      await call({ method: 'GET', url: '/providers/by-name/secretive' }),
      await call({ method: 'PATCH', url: `/providers/${id}`, payload: { profile: { description: 'd' } } }),
      await call({
        method: 'PATCH',
        url: `/providers/${id}`,
        payload: { profile: { client_secret: `${secret}-2` } },
      }),
      await call({
        method: 'PUT',
        url: `/providers/${id}`,
        payload: { profile: oauth('secretive', { client_secret: `${secret}-3` }) },
      }),
      // Refused writes that carried a secret.
      await call({
        method: 'POST',
        url: '/providers',
        payload: { profile: oauth('secretive', { client_secret: `${secret}-4` }) },
      }),
      await call({
        method: 'POST',
        url: '/providers',
        payload: {
          profile: oauth('secretive-bad', { client_secret: `${secret}-5`, token_url: 'http://x.test/' }),
        },
      }),
      await call({
        method: 'POST',
        url: '/providers',
        payload: { profile: { name: 'secretive-key', auth_type: 'api_key', client_secret: `${secret}-6` } },
      }),
      await call({
        method: 'PATCH',
        url: `/providers/${id}`,
        headers: { 'if-match': '"1"' },
        payload: { profile: { client_secret: `${secret}-7` } },
      }),
      await call({ method: 'GET', url: `/audit?resource=provider:${id}` }),
    ];
    assert.equal(seen[0]?.statusCode, 200);
    assert.equal(json<View>(seen[0]!).has_client_secret, true);
    assert.deepEqual(
      seen.slice(7, 11).map((r) => r.statusCode),
      [409, 400, 400, 409],
    );
    for (const res of seen) {
      assert.ok(!res.body.includes(secret), `secret in ${res.body.slice(0, 200)}`);
      assert.ok(!JSON.stringify(res.headers).includes(secret), 'secret in headers');
      assert.ok(
        !/"client_secret"\s*:\s*"/.test(res.body),
        `client_secret value in ${res.body.slice(0, 200)}`,
      );
    }
    assert.deepEqual(
      broker.logs.filter((line) => line.includes(secret)),
      [],
      'no log line carries the secret',
    );
    // At rest: not in the provider row, and encrypted in the secret store.
    const db = broker.container.db.kysely;
    const row = await db
      .selectFrom('providers')
      .select('profile')
      .where('id', '=', id)
      .executeTakeFirstOrThrow();
    assert.ok(!row.profile.includes(secret));
    const stored = await db
      .selectFrom('secret_store')
      .select('value')
      .where('path', 'like', `providers/${id}/%`)
      .execute();
    assert.ok(stored.length >= 1);
    for (const { value } of stored) assert.ok(!Buffer.from(value).toString('latin1').includes(secret));
    assert.equal(await secretInUse(id), `${secret}-3`);
  });

  it('records an audit event for every change, naming what changed but never a secret value', async () => {
    const id = await create(oauth('audited', { client_secret: 'audited-secret-value' }));
    await call({ method: 'PATCH', url: `/providers/${id}`, payload: { profile: { description: 'new' } } });
    await call({
      method: 'PATCH',
      url: `/providers/${id}`,
      payload: { profile: { client_secret: 'audited-secret-value-2' } },
    });
    await call({ method: 'POST', url: `/providers/${id}/aliases`, payload: { alias: 'audited-alias' } });
    await call({ method: 'DELETE', url: `/providers/${id}/aliases/audited-alias` });
    await call({ method: 'PUT', url: `/providers/${id}`, payload: { profile: oauth('audited-renamed') } });
    // Refused changes leave no trace in the log of changes.
    await call({ method: 'PATCH', url: `/providers/${id}`, payload: { profile: { client_id: null } } });
    await call({
      method: 'PATCH',
      url: `/providers/${id}`,
      headers: { 'if-match': '"1"' },
      payload: { profile: {} },
    });
    await call({ method: 'DELETE', url: `/providers/${id}/aliases/not-there` });
    await call({ method: 'POST', url: `/providers/${id}/aliases`, payload: { alias: 'audited-renamed' } });
    await call({ method: 'DELETE', url: `/providers/${id}` });

    const log = await events(id);
    assert.deepEqual(
      log.map((e) => [e.event_type, e.details]),
      [
        ['provider.created', { name: 'audited', auth_type: 'oauth2' }],
        ['provider.updated', { name: 'audited', changed: ['description'] }],
        ['provider.updated', { name: 'audited', changed: ['client_secret'] }],
        ['provider.alias_added', { name: 'audited', alias: 'audited-alias' }],
        ['provider.alias_removed', { name: 'audited', alias: 'audited-alias' }],
        [
          'provider.updated',
          {
            name: 'audited-renamed',
            changed: ['client_id', 'client_secret', 'description', 'name'],
          },
        ],
        ['provider.deleted', { name: 'audited-renamed' }],
      ],
    );
    for (const e of log) {
      assert.equal(e.actor, 'admin-key:env:test');
      assert.equal(e.resource_type, 'provider');
      assert.equal(e.resource_id, id);
      assert.ok(!JSON.stringify(e).includes('audited-secret-value'));
    }
    assert.equal((await broker.container.audit.verify()).ok, true);
  });

  it('requires an admin key on every provider route', async () => {
    const id = await create(oauth('guarded'));
    for (const [method, url] of [
      ['POST', '/providers'],
      ['GET', '/providers'],
      ['GET', '/providers/metadata'],
      ['GET', '/providers/by-name/guarded'],
      ['GET', `/providers/${id}`],
      ['PUT', `/providers/${id}`],
      ['PATCH', `/providers/${id}`],
      ['DELETE', `/providers/${id}`],
      ['GET', `/providers/${id}/aliases`],
      ['POST', `/providers/${id}/aliases`],
      ['DELETE', `/providers/${id}/aliases/x`],
    ] as const) {
      const res = await call({
        method,
        url,
        key: null,
        ...(method === 'POST' || method === 'PUT' || method === 'PATCH'
          ? {
              payload:
                method === 'POST' && url.endsWith('aliases')
                  ? { alias: 'x' }
                  : { profile: oauth('intruder') },
            }
          : {}),
      });
      assertProblem(res, 401, 'unauthorized', `${method} ${url}`);
    }
    const view = await get(id);
    assert.equal(view.version, 1);
    assert.ok(!(await names()).includes('intruder'));
  });
});
