import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { json, startBroker, type TestBroker } from './harness.ts';

describe('HTTP surface', () => {
  let broker: TestBroker;
  before(async () => {
    broker = await startBroker();
  });
  after(() => broker.close());

  it('answers unknown routes with 404 route_not_found in the error envelope', async () => {
    const res = await broker.request({ method: 'GET', url: '/no/such/route' });
    assert.equal(res.statusCode, 404);
    assert.equal(json(res).error, 'route_not_found');
    assert.equal(json(res).request_id, res.headers['x-request-id']);
  });

  it('echoes a well-formed X-Request-Id and replaces a malformed one', async () => {
    const good = await broker.request({
      method: 'GET',
      url: '/health',
      headers: { 'x-request-id': 'trace-abc-12345' },
    });
    assert.equal(good.headers['x-request-id'], 'trace-abc-12345');
    const bad = await broker.request({
      method: 'GET',
      url: '/health',
      headers: { 'x-request-id': 'bad id\twith spaces' },
    });
    assert.match(String(bad.headers['x-request-id']), /^[0-9a-f-]{36}$/);
  });

  it('sets no-store and nosniff on responses', async () => {
    const res = await broker.request({ method: 'GET', url: '/providers' });
    assert.equal(res.headers['cache-control'], 'no-store');
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
  });

  it('maps malformed bodies to 4xx with stable codes, never 500', async () => {
    const cases: [string, Record<string, string>, string | undefined, number, string][] = [
      ['not json', { 'content-type': 'application/json' }, '{"profile":', 400, 'invalid_request'],
      ['text body', { 'content-type': 'text/plain' }, 'hello', 415, 'unsupported_media_type'],
      ['empty json', { 'content-type': 'application/json' }, '', 400, 'invalid_request'],
      ['array', { 'content-type': 'application/json' }, '[]', 400, 'invalid_request'],
    ];
    for (const [label, headers, payload, status, code] of cases) {
      const res = await broker.request({
        method: 'POST',
        url: '/providers',
        headers,
        ...(payload === undefined ? {} : { payload }),
      });
      assert.equal(res.statusCode, status, `${label}: ${res.body}`);
      assert.equal(json(res).error, code, label);
      assert.ok(!res.body.includes('at '), `${label}: no stack trace`);
    }
  });

  it('serves an OpenAPI 3.1 document describing the routes, errors and security', async () => {
    const res = await broker.request({ method: 'GET', url: '/openapi.json', key: null });
    const doc = json<{
      openapi: string;
      paths: Record<string, Record<string, { operationId?: string; security?: unknown[] }>>;
      components: { schemas: Record<string, unknown>; securitySchemes: Record<string, unknown> };
    }>(res);
    assert.equal(doc.openapi, '3.1.0');
    for (const path of [
      '/providers',
      '/providers/{id}',
      '/providers/metadata',
      '/audit',
      '/health',
      '/ready',
      '/admin/v1/admin-keys',
    ]) {
      assert.ok(doc.paths[path], `missing ${path}`);
    }
    assert.equal(doc.paths['/providers']?.post?.operationId, 'createProvider');
    assert.deepEqual(doc.paths['/health']?.get?.security, []);
    assert.equal(
      doc.paths['/providers']?.get?.security,
      undefined,
      'admin routes inherit the global requirement',
    );
    assert.ok(doc.components.schemas.Error);
    assert.ok(doc.components.securitySchemes.apiKey);
    assert.ok(!JSON.stringify(doc).includes('/docs/static'), 'UI routes are hidden');
  });

  it('serves a browsable API reference page, its files and its document, without a key', async () => {
    const res = await broker.request({ method: 'GET', url: '/docs/', key: null });
    assert.equal(res.statusCode, 200);
    assert.match(res.headers['content-type'] as string, /text\/html/);
    assert.match(res.headers['content-security-policy'] as string, /script-src 'self'/);
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
    const css = await broker.request({ method: 'GET', url: '/docs/static/swagger-ui.css', key: null });
    assert.equal(css.statusCode, 200);
    assert.match(css.headers['content-type'] as string, /text\/css/);
    assert.ok(css.body.length > 10_000);
    const head = await broker.request({ method: 'HEAD', url: '/docs/static/swagger-ui.css', key: null });
    assert.equal(head.statusCode, 200);
    assert.equal(head.body, '');
    // The page's own copy of the document is the one at /openapi.json.
    const own = await broker.request({ method: 'GET', url: '/docs/json', key: null });
    const doc = await broker.request({ method: 'GET', url: '/openapi.json', key: null });
    assert.deepEqual(json(own), json(doc));
    // Anything else under /docs is an unknown route, answered like any other.
    const missing = await broker.request({ method: 'GET', url: '/docs/static/nope.js', key: null });
    assert.equal(missing.statusCode, 404);
    assert.equal(json(missing).error, 'route_not_found');
  });

  it('protects /metrics and labels by route template, never by id', async () => {
    assert.equal((await broker.request({ method: 'GET', url: '/metrics', key: null })).statusCode, 401);
    await broker.request({ method: 'GET', url: '/providers/7d444840-9dc0-11d1-b245-5ffdce74fad2' });
    const res = await broker.request({ method: 'GET', url: '/metrics' });
    assert.equal(res.statusCode, 200);
    assert.match(res.body, /nexus_http_requests_total\{method="GET",route="\/providers\/:id",status="404"\}/);
    assert.ok(!res.body.includes('7d444840'));
  });

  it('counts each request once across scrapes, with a consistent duration histogram', async () => {
    const scrape = async () => (await broker.request({ method: 'GET', url: '/metrics' })).body;
    const sample = (text: string, line: string) => {
      const found = text.split('\n').find((l) => l.startsWith(`${line} `));
      return found === undefined ? 0 : Number(found.slice(line.length + 1));
    };
    const counted = 'nexus_http_requests_total{method="GET",route="/admin/v1/agents/:id",status="404"}';
    const duration = (suffix: string, le?: string) =>
      `nexus_http_request_duration_seconds_${suffix}{${le === undefined ? '' : `le="${le}",`}method="GET",route="/admin/v1/agents/:id"}`;
    const before = await scrape();
    for (let i = 0; i < 3; i++) await broker.request({ method: 'GET', url: `/admin/v1/agents/missing-${i}` });
    const first = await scrape();
    assert.equal(sample(first, counted) - sample(before, counted), 3);
    assert.equal(sample(first, duration('count')) - sample(before, duration('count')), 3);
    assert.ok(sample(first, duration('sum')) > sample(before, duration('sum')));
    assert.equal(sample(first, duration('bucket', '+Inf')), sample(first, duration('count')));
    const bounds = ['0.001', '0.0025', '0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '1', '5', '+Inf'];
    const cumulative = bounds.map((le) => sample(first, duration('bucket', le)));
    assert.deepEqual(
      cumulative,
      [...cumulative].sort((a, b) => a - b),
      'buckets are cumulative',
    );
    // A scrape with no new request reports the same totals.
    const second = await scrape();
    assert.equal(sample(second, counted), sample(first, counted));
    assert.equal(sample(second, duration('count')), sample(first, duration('count')));
  });

  it('reports not ready when the database is gone', async () => {
    const other = await startBroker();
    assert.equal((await other.request({ method: 'GET', url: '/ready', key: null })).statusCode, 200);
    await other.container.db.close();
    const res = await other.request({ method: 'GET', url: '/ready', key: null });
    assert.equal(res.statusCode, 503);
    assert.equal(json(res).status, 'not_ready');
    assert.equal((json(res).checks as Record<string, string>).database, 'unavailable');
    await other.app.close();
    await other.db.drop();
  });
});

describe('admin keys over HTTP', () => {
  let broker: TestBroker;
  before(async () => {
    broker = await startBroker();
  });
  after(() => broker.close());

  it('creates a key shown once, lists it without its value, and revokes it', async () => {
    const created = await broker.request({
      method: 'POST',
      url: '/admin/v1/admin-keys',
      payload: { name: 'ci-bot' },
    });
    assert.equal(created.statusCode, 201);
    const { key, id } = json<{ key: string; id: string }>(created);
    assert.match(key, /^nxa_[0-9a-f]{16}_/);
    assert.equal((await broker.request({ method: 'GET', url: '/providers', key })).statusCode, 200);

    const list = await broker.request({ method: 'GET', url: '/admin/v1/admin-keys' });
    assert.ok(!list.body.includes(key));
    assert.ok(!list.body.includes(key.slice(-20)));
    assert.deepEqual(
      json<{ name: string }[]>(list).map((k) => k.name),
      ['ci-bot'],
    );
    assert.equal(
      (await broker.request({ method: 'POST', url: '/admin/v1/admin-keys', payload: { name: 'ci-bot' } }))
        .statusCode,
      409,
    );

    assert.equal(
      (await broker.request({ method: 'DELETE', url: `/admin/v1/admin-keys/${id}` })).statusCode,
      200,
    );
    const after = await broker.request({ method: 'GET', url: '/providers', key });
    assert.equal(after.statusCode, 401);
    assert.equal(
      (await broker.request({ method: 'DELETE', url: `/admin/v1/admin-keys/${id}` })).statusCode,
      404,
    );
    // A revoked key's name can be used again.
    assert.equal(
      (await broker.request({ method: 'POST', url: '/admin/v1/admin-keys', payload: { name: 'ci-bot' } }))
        .statusCode,
      201,
    );
  });

  it('refuses a name shaped like a key id, so that revoking by that name can never revoke another key', async () => {
    const ops = json<{ id: string }>(
      await broker.request({ method: 'POST', url: '/admin/v1/admin-keys', payload: { name: 'ops' } }),
    );
    // A key named after the ops key's id: revoking "it" by name would revoke ops.
    const rogue = await broker.request({
      method: 'POST',
      url: '/admin/v1/admin-keys',
      payload: { name: ops.id },
    });
    assert.equal(rogue.statusCode, 409, rogue.body);
    assert.equal(json(rogue).error, 'admin_key_name_taken');
    const live = json<{ name: string; revoked_at: string | null }[]>(
      await broker.request({ method: 'GET', url: '/admin/v1/admin-keys' }),
    ).filter((k) => k.revoked_at === null);
    assert.ok(!live.some((k) => k.name === ops.id), 'no key of that name');
    assert.ok(live.some((k) => k.name === 'ops'));
  });

  it('keeps at most 1000 keys live, so that the list of live keys is always whole', async () => {
    const listed = async () =>
      json<{ id: string; name: string }[]>(
        await broker.request({ method: 'GET', url: '/admin/v1/admin-keys' }),
      );
    const before = (await listed()).length;
    // Filled up to the bound directly (creating them one by one over HTTP would only be slower).
    const filler = Array.from({ length: 1000 - before }, (_, i) => ({
      id: `f${i.toString(16).padStart(15, '0')}`,
      name: `filler-${i}`,
      key_hash: `filler-hash-${i}`,
      created_at: i,
      created_by: 'test',
      last_used_at: null,
      revoked_at: null,
      scope: 'read',
    }));
    for (let i = 0; i < filler.length; i += 200)
      await broker.container.db.kysely
        .insertInto('admin_keys')
        .values(filler.slice(i, i + 200))
        .execute();
    const full = await broker.request({
      method: 'POST',
      url: '/admin/v1/admin-keys',
      payload: { name: 'one-too-many' },
    });
    assert.equal(full.statusCode, 409, full.body);
    assert.equal(json(full).error, 'admin_key_limit_reached');
    const all = await listed();
    assert.equal(all.length, 1000, 'every live key listed');
    assert.ok(all.some((k) => k.name === 'ops') && all.some((k) => k.name === 'filler-0'));
    // One revoked: room for one more, listed too.
    const revoked = await broker.request({ method: 'DELETE', url: '/admin/v1/admin-keys/filler-7' });
    assert.equal(revoked.statusCode, 200, revoked.body);
    const created = await broker.request({
      method: 'POST',
      url: '/admin/v1/admin-keys',
      payload: { name: 'newest' },
    });
    assert.equal(created.statusCode, 201, created.body);
    assert.equal((await listed()).at(-1)?.name, 'newest');
    await broker.container.db.kysely.deleteFrom('admin_keys').where('name', 'like', 'filler-%').execute();
  });

  it('rejects a forged key with a valid shape but the wrong secret', async () => {
    const { key } = json<{ key: string }>(
      await broker.request({ method: 'POST', url: '/admin/v1/admin-keys', payload: { name: 'shape' } }),
    );
    const forged = `${key.slice(0, -4)}AAAA`;
    assert.equal((await broker.request({ method: 'GET', url: '/providers', key: forged })).statusCode, 401);
  });
});

describe('client address allow-list', () => {
  it('refuses admin routes from outside ALLOWED_CIDRS with 403, keeps /health open', async () => {
    const broker = await startBroker({ env: { ALLOWED_CIDRS: '10.0.0.0/8' } });
    try {
      const res = await broker.request({ method: 'GET', url: '/providers' });
      assert.equal(res.statusCode, 403);
      assert.equal(json(res).error, 'address_not_allowed');
      assert.equal((await broker.request({ method: 'GET', url: '/health' })).statusCode, 200);
      // Without a trusted proxy, X-Forwarded-For is ignored: it cannot be used to get in.
      const spoofed = await broker.request({
        method: 'GET',
        url: '/providers',
        headers: { 'x-forwarded-for': '10.1.2.3' },
      });
      assert.equal(spoofed.statusCode, 403);
    } finally {
      await broker.close();
    }
  });

  it('believes X-Forwarded-For only from a configured trusted proxy', async () => {
    const broker = await startBroker({
      env: { ALLOWED_CIDRS: '10.0.0.0/8', TRUSTED_PROXIES: '127.0.0.1/32' },
    });
    try {
      const forwarded = await broker.request({
        method: 'GET',
        url: '/providers',
        headers: { 'x-forwarded-for': '10.1.2.3' },
      });
      assert.equal(forwarded.statusCode, 200);
      const outside = await broker.request({
        method: 'GET',
        url: '/providers',
        headers: { 'x-forwarded-for': '192.0.2.7' },
      });
      assert.equal(outside.statusCode, 403);
    } finally {
      await broker.close();
    }
  });

  it('allows loopback when the range covers it', async () => {
    const broker = await startBroker({ env: { ALLOWED_CIDRS: '127.0.0.0/8,::1/128' } });
    try {
      assert.equal((await broker.request({ method: 'GET', url: '/providers' })).statusCode, 200);
    } finally {
      await broker.close();
    }
  });
});
