/**
 * Admin key scopes (issue #18): `full`, `read` and `agent`. The route list is the broker's own
 * route table, so a route added later is covered without editing this file: a read-only key is
 * refused every admin route that is not a GET (and every agent route), an agent-API key every
 * admin route, each with 403 `forbidden`; where a scope allows a route, the answer is the one a
 * full key gets. Keys come from the environment (`API_KEYS=name@scope:key`), the admin-keys API
 * and `nexus admin-keys create --scope`.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { loadConfig } from '../src/config/load.ts';
import { credentialVerifier, requiredScope } from '../src/http/auth.ts';
import { routeTable } from '../src/http/surfaces.ts';
import { baseEnv, killAllChildren, runCli, show } from './cli-helpers.ts';
import { json, newKeyBase64, startBroker, type TestBroker } from './harness.ts';

after(killAllChildren);

const SAMPLE_ID = '00000000-0000-4000-8000-000000000000';
const concrete = (url: string) =>
  url === '/docs/static/*'
    ? '/docs/static/swagger-ui.css'
    : url.replace(/:[A-Za-z_]+/g, SAMPLE_ID).replace(/\*/g, 'x');
const newKey = (label: string) => `${label}-${randomBytes(20).toString('hex')}`;

/** The scope refusal, and only it: other 403s (an agent-only route, say) do not count. */
function scopeRefused(res: LightMyRequestResponse): boolean {
  if (res.statusCode !== 403) return false;
  const body = json<{ error: string; message: string }>(res);
  return body.error === 'forbidden' && /needs an admin key of scope/.test(body.message);
}

describe('admin key scopes', { timeout: 120_000 }, () => {
  let broker: TestBroker;
  const keys = { full: newKey('full'), read: newKey('read'), agent: newKey('agent') };
  before(async () => {
    broker = await startBroker({
      env: { API_KEYS: `ops:${keys.full},monitor@read:${keys.read},robot@agent:${keys.agent}` },
    });
  });
  after(() => broker.close());

  it('walks the route table: each scope is refused exactly where the route says, and allowed elsewhere', async () => {
    // HEAD answers carry no body to tell a scope refusal by; each mirrors its GET.
    const routes = routeTable(broker.app).filter((r) => r.url !== '*' && r.method !== 'HEAD');
    assert.ok(routes.length > 60, `the route table has ${routes.length} routes`);
    const counted = { readRefused: 0, readAllowed: 0, agentRefused: 0, agentAllowed: 0 };
    for (const route of routes) {
      const needed = requiredScope(route);
      const label = `${route.method} ${route.url} (needs ${needed ?? 'nothing'})`;
      const admin = route.auth === undefined || route.auth === 'admin';
      // What the issue asks for, independently of requiredScope.
      if (admin && route.method !== 'GET' && route.method !== 'HEAD') assert.equal(needed, 'full', label);
      if (admin) assert.notEqual(needed, 'agent', label);
      if (route.auth === 'agent') assert.equal(needed, 'agent', label);
      if (needed === undefined) continue;

      const ask = (key: string) =>
        broker.request({ method: route.method as 'GET', url: concrete(route.url), key });
      const full = await ask(keys.full);
      assert.ok(!scopeRefused(full), `${label}: a full key is never refused for its scope`);
      for (const scope of ['read', 'agent'] as const) {
        const res = await ask(keys[scope]);
        if (needed === scope) {
          assert.ok(!scopeRefused(res), `${label}: a ${scope} key is allowed\n${res.body}`);
          // GETs are repeatable; other methods are sent without a body and fail validation alike.
          assert.equal(res.statusCode, full.statusCode, `${label}: a ${scope} key gets a full key's answer`);
          counted[scope === 'read' ? 'readAllowed' : 'agentAllowed'] += 1;
        } else {
          assert.ok(scopeRefused(res), `${label}: a ${scope} key is refused (${res.statusCode} ${res.body})`);
          counted[scope === 'read' ? 'readRefused' : 'agentRefused'] += 1;
        }
      }
    }
    assert.ok(
      counted.readAllowed > 15 &&
        counted.readRefused > 30 &&
        counted.agentAllowed > 15 &&
        counted.agentRefused > 40,
      JSON.stringify(counted),
    );
  });

  it('admin routes that answer with a credential need a full key, even as GETs', async () => {
    const declared = routeTable(broker.app)
      .filter((r) => r.method === 'GET' && r.scope === 'full')
      .map((r) => r.url)
      .sort();
    for (const url of ['/connections/:id/token', '/connections/resolve'])
      assert.ok(declared.includes(url), `${url} declares scope full (${declared.join(', ')})`);
    const res = await broker.request({
      method: 'GET',
      url: `/connections/${SAMPLE_ID}/token`,
      key: keys.read,
    });
    assert.equal(res.statusCode, 403);
    assert.equal(json(res).error, 'forbidden');
    assert.match(json<{ message: string }>(res).message, /scope "full".*This key's scope is "read"/);
  });

  it('the defaults: agent routes need agent, admin GETs read, anything else full, public nothing', () => {
    assert.equal(requiredScope({ method: 'GET', auth: 'public' }), undefined);
    assert.equal(requiredScope({ method: 'POST', auth: 'agent' }), 'agent');
    assert.equal(requiredScope({ method: 'GET', auth: 'agent' }), 'agent');
    assert.equal(requiredScope({ method: 'GET', auth: undefined }), 'read');
    assert.equal(requiredScope({ method: 'HEAD', auth: 'admin' }), 'read');
    for (const method of ['POST', 'PUT', 'PATCH', 'DELETE'])
      assert.equal(requiredScope({ method, auth: 'admin' }), 'full', method);
    assert.equal(requiredScope({ method: 'GET', auth: 'admin', scope: 'full' }), 'full');
  });

  it('the gRPC path (one verifier, agent calls): read keys refused, agent and full keys accepted', async () => {
    const verify = credentialVerifier({
      adminKeys: broker.container.adminKeys,
      agents: broker.container.agents,
      allowedCidrs: [],
    });
    await assert.rejects(verify(keys.read, '127.0.0.1', 'agent'), (error: { code?: string }) => {
      assert.equal(error.code, 'forbidden');
      return true;
    });
    assert.equal((await verify(keys.agent, '127.0.0.1', 'agent')).kind, 'admin');
    assert.equal((await verify(keys.full, '127.0.0.1', 'agent')).kind, 'admin');
    // Without a scope argument, an admin route needs full.
    await assert.rejects(verify(keys.read, '127.0.0.1', 'admin'));
  });

  it('keys created through the API carry the scope asked for (default full); listing shows it', async () => {
    const create = async (body: Record<string, unknown>, key = keys.full) =>
      broker.request({ method: 'POST', url: '/admin/v1/admin-keys', payload: body, key });
    const monitor = await create({ name: 'api-monitor', scope: 'read' });
    assert.equal(monitor.statusCode, 201, monitor.body);
    const m = json<{ id: string; key: string; scope: string }>(monitor);
    assert.equal(m.scope, 'read');
    const plain = json<{ key: string; scope: string }>(await create({ name: 'api-plain' }));
    assert.equal(plain.scope, 'full', 'a key created without a scope is full, as before');
    const robot = json<{ key: string; scope: string }>(await create({ name: 'api-robot', scope: 'agent' }));
    assert.equal(robot.scope, 'agent');

    const bad = await create({ name: 'api-bad', scope: 'admin' });
    assert.equal(bad.statusCode, 400);
    // Minting keys is a write: a read key cannot give itself (or anyone) more.
    const escalate = await create({ name: 'api-escalate', scope: 'full' }, m.key);
    assert.ok(scopeRefused(escalate), escalate.body);
    const revoke = await broker.request({
      method: 'DELETE',
      url: `/admin/v1/admin-keys/${m.id}`,
      key: robot.key,
    });
    assert.ok(scopeRefused(revoke), revoke.body);

    const get = (url: string, key: string) => broker.request({ method: 'GET', url, key });
    assert.equal((await get('/providers', m.key)).statusCode, 200);
    assert.ok(scopeRefused(await get('/v1/providers', m.key)));
    assert.equal((await get('/v1/providers', robot.key)).statusCode, 200);
    assert.ok(scopeRefused(await get('/providers', robot.key)));
    assert.equal((await get('/providers', plain.key)).statusCode, 200);
    assert.equal((await get('/v1/providers', plain.key)).statusCode, 200);

    const listed = json<{ name: string; scope: string }[]>(await get('/admin/v1/admin-keys', m.key));
    assert.deepEqual(
      listed
        .filter((k) => k.name.startsWith('api-'))
        .map((k) => `${k.name}:${k.scope}`)
        .sort(),
      ['api-monitor:read', 'api-plain:full', 'api-robot:agent'],
    );
    const events = await broker.container.audit.query({ action: 'admin_key.created', limit: 10 });
    assert.ok(events.some((e) => JSON.stringify(e.details) === '{"name":"api-monitor","scope":"read"}'));
  });

  it('API_KEYS: name@scope:key, a bare name is full, an unknown scope is a configuration problem', () => {
    const base = { ENCRYPTION_KEY: newKeyBase64(), STATE_KEY: newKeyBase64() };
    const config = loadConfig({
      ...base,
      API_KEY: 'k'.repeat(32),
      API_KEYS: `a:${'a'.repeat(32)},b@read:${'b'.repeat(32)},c@agent:${'c'.repeat(32)},${'d'.repeat(32)}`,
    });
    assert.deepEqual(
      config.apiKeys.map((k) => `${k.name}:${k.scope}`),
      ['env:API_KEY:full', 'env:a:full', 'env:b:read', 'env:c:agent', 'env:API_KEYS[3]:full'],
    );
    assert.throws(
      () => loadConfig({ ...base, API_KEYS: `ops@admin:${'o'.repeat(32)}` }),
      (error: Error) => {
        assert.match(error.message, /API_KEYS: the key named "ops" has an unknown scope "admin"/);
        assert.ok(!error.message.includes('o'.repeat(32)), 'the key is never echoed');
        return true;
      },
    );
  });

  it('nexus admin-keys create --scope, shown by list; a bad scope exits 2', async () => {
    const env = { ...baseEnv(), ...broker.env };
    const created = await runCli(['admin-keys', 'create', '--name', 'cli-monitor', '--scope', 'read'], env);
    assert.equal(created.code, 0, show(created));
    assert.match(created.stderr, /Scope: read\./);
    const key = created.stdout.trim();
    assert.equal((await broker.request({ method: 'GET', url: '/providers', key })).statusCode, 200);
    assert.ok(scopeRefused(await broker.request({ method: 'DELETE', url: `/providers/${SAMPLE_ID}`, key })));
    const list = await runCli(['admin-keys', 'list'], env);
    assert.equal(list.code, 0, show(list));
    assert.match(list.stdout, /cli-monitor\s+read\s/);
    const bad = await runCli(['admin-keys', 'create', '--name', 'cli-bad', '--scope', 'root'], env);
    assert.equal(bad.code, 2, show(bad));
    assert.match(bad.stderr, /--scope: one of full, read, agent/);
  });
});
