/**
 * Split mode, roles and CORS. The route list is the broker's own route table, not a hand-written
 * one: every admin route must be unknown on the public listener and every public route unknown on
 * the admin listener, while each answers (whatever it answers) on its own.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { listenersFor, routeTable, surfaceOf } from '../src/http/surfaces.ts';
import { baseEnv, envKeys, freePort, killAllChildren, spawnCli } from './cli-helpers.ts';
import { createTestDatabase, startBroker, type TestBroker, type TestDatabase } from './harness.ts';

after(killAllChildren);

const SAMPLE_ID = '00000000-0000-4000-8000-000000000000';
// A static-file route answers an unknown file as an unknown route: ask it for one that exists.
const concrete = (url: string) =>
  url === '/docs/*'
    ? '/docs/static/swagger-ui.css'
    : url.replace(/:[A-Za-z_]+/g, SAMPLE_ID).replace(/\*/g, 'x');

async function routeNotFound(res: Response): Promise<boolean> {
  if (res.status !== 404) return false;
  const body = (await res.json().catch(() => ({}))) as { error?: string };
  return body.error === 'route_not_found';
}

describe('split mode: public and admin listeners from one route table', () => {
  let broker: TestBroker;
  let publicUrl: string;
  let adminUrl: string;
  const listeners = listenersFor('all', true);

  before(async () => {
    broker = await startBroker({ listeners });
    publicUrl = await broker.app.listen({ port: 0, host: '127.0.0.1' });
    const admin = listeners.adminServer!;
    await new Promise<void>((done) => admin.listen(0, '127.0.0.1', done));
    adminUrl = `http://127.0.0.1:${(admin.address() as AddressInfo).port}`;
  });
  after(async () => {
    listeners.adminServer?.closeAllConnections();
    listeners.adminServer?.close();
    await broker.close();
  });

  it('serves every route on its own surface only; the other listener answers as for an unknown route', async () => {
    const routes = routeTable(broker.app).filter((r) => r.method !== 'HEAD' && r.url !== '*');
    assert.ok(routes.length > 60, `the route table has ${routes.length} routes`);
    const seen = { public: 0, admin: 0, both: 0 };
    for (const route of routes) {
      const surface = surfaceOf(route.url, route.auth);
      seen[surface] += 1;
      const path = concrete(route.url);
      const [onPublic, onAdmin] = await Promise.all(
        [publicUrl, adminUrl].map((base) =>
          fetch(`${base}${path}`, { method: route.method, redirect: 'manual' }),
        ),
      );
      const label = `${route.method} ${route.url} (${surface})`;
      assert.equal(await routeNotFound(onPublic!), surface === 'admin', `${label} on the public listener`);
      assert.equal(await routeNotFound(onAdmin!), surface === 'public', `${label} on the admin listener`);
    }
    // Both: /health and the home page (`/`).
    assert.ok(seen.public > 20 && seen.admin > 20 && seen.both === 2, JSON.stringify(seen));
  });

  it('serves every call the console makes on the admin listener, where the console is', async () => {
    // The console's calls, read from its source: `api('GET', '/path/${id}')`, the template parts
    // made concrete. A route the console calls that the admin listener does not serve would break
    // its page in split mode.
    const dir = join(import.meta.dirname, '..', 'console', 'src');
    const calls = new Set<string>();
    for (const file of readdirSync(dir, { recursive: true, encoding: 'utf8' })) {
      if (!file.endsWith('.ts')) continue;
      const text = readFileSync(join(dir, file), 'utf8');
      for (const m of text.matchAll(/'(GET|POST|PATCH|PUT|DELETE)',\s*[`'](\/[^`'?]*)/g))
        calls.add(`${m[1]} ${m[2]!.replaceAll(/\$\{[^}]*\}/g, '00000000-0000-4000-8000-000000000000')}`);
    }
    assert.ok(calls.size >= 20, `the console's calls: ${[...calls].join(', ')}`);
    assert.ok(calls.has('GET /admin/v1/user-secrets'), 'user secrets through the admin surface');
    for (const call of calls) {
      const [method, path] = call.split(' ') as [string, string];
      const res = await fetch(`${adminUrl}${path}`, {
        method,
        headers: { 'x-api-key': broker.adminKey, 'content-type': 'application/json' },
        ...(method === 'GET' || method === 'DELETE' ? {} : { body: '{}' }),
        redirect: 'manual',
      });
      assert.equal(await routeNotFound(res), false, `${call} on the admin listener`);
    }
  });

  it('puts the agent API on the public listener and operations on the admin one', () => {
    for (const url of [
      '/v1/token/:id',
      '/auth/callback',
      '/oauth/token',
      '/.well-known/jwks.json',
      '/proxy/*',
    ])
      assert.equal(
        surfaceOf(url, url === '/auth/callback' || url.startsWith('/.well') ? 'public' : 'agent'),
        'public',
        url,
      );
    for (const url of ['/metrics', '/ready', '/openapi.json', '/docs/json'])
      assert.equal(surfaceOf(url, 'public'), 'admin', url);
    assert.equal(surfaceOf('/providers', undefined), 'admin');
  });
});

describe('roles: nexus serve --role gateway | broker', { timeout: 90_000 }, () => {
  let db: TestDatabase;
  before(async () => {
    db = await createTestDatabase();
  });
  after(async () => {
    killAllChildren();
    await db.drop();
  });

  async function start(args: string[], extra: Record<string, string> = {}) {
    const port = await freePort();
    const key = `nxtest_${'k'.repeat(40)}`;
    const child = spawnCli(['serve', ...args], {
      ...baseEnv(),
      ...db.env,
      ...envKeys(),
      NEXUS_ENV: 'test',
      HOST: '127.0.0.1',
      PORT: String(port),
      API_KEYS: `ops:${key}`,
      LOG_LEVEL: 'info',
      ...extra,
    });
    const ready = await child.waitFor('stdout', /\{[^\n]*"msg":"nexus ready"[^\n]*\}/, 20_000);
    return {
      child,
      base: `http://127.0.0.1:${port}`,
      key,
      ready: JSON.parse(ready[0]) as Record<string, unknown>,
    };
  }

  it('gateway: the public surface only, no admin routes at all, no background jobs', async () => {
    const { child, base, key, ready } = await start(['--role', 'gateway']);
    assert.equal(ready.role, 'gateway');
    assert.equal(ready.worker, false);
    assert.ok(
      await routeNotFound(await fetch(`${base}/providers`, { headers: { 'x-api-key': key } })),
      '/providers',
    );
    assert.ok(await routeNotFound(await fetch(`${base}/metrics`)), '/metrics');
    assert.ok(await routeNotFound(await fetch(`${base}/openapi.json`)), '/openapi.json');
    const token = await fetch(`${base}/v1/token/${SAMPLE_ID}`, { headers: { 'x-api-key': key } });
    assert.equal(token.status, 403, 'admin keys are for the admin listener');
    assert.match(((await token.json()) as { message: string }).message, /PUBLIC_LISTENER_ADMIN_KEYS/);
    assert.equal((await fetch(`${base}/health`)).status, 200);
    child.kill('SIGTERM');
    await child.wait();
  });

  it('gateway with PUBLIC_LISTENER_ADMIN_KEYS=true: admin keys reach the agent API', async () => {
    const { child, base, key } = await start(['--role', 'gateway'], { PUBLIC_LISTENER_ADMIN_KEYS: 'true' });
    const token = await fetch(`${base}/v1/token/${SAMPLE_ID}`, { headers: { 'x-api-key': key } });
    assert.equal(token.status, 404);
    assert.equal(
      ((await token.json()) as { error: string }).error,
      'connection_not_found',
      'the agent API answers',
    );
    assert.ok(await routeNotFound(await fetch(`${base}/providers`, { headers: { 'x-api-key': key } })));
    child.kill('SIGTERM');
    await child.wait();
  });

  it('broker: the admin surface (and the jobs), no agent API', async () => {
    const { child, base, key, ready } = await start(['--role', 'broker']);
    assert.equal(ready.role, 'broker');
    assert.equal((await fetch(`${base}/providers`, { headers: { 'x-api-key': key } })).status, 200);
    assert.ok(
      await routeNotFound(await fetch(`${base}/v1/token/${SAMPLE_ID}`, { headers: { 'x-api-key': key } })),
    );
    child.kill('SIGTERM');
    await child.wait();
  });

  it('all with ADMIN_PORT: two listeners, named in the ready line', async () => {
    const adminPort = await freePort();
    const { child, base, key, ready } = await start([], { ADMIN_PORT: String(adminPort) });
    assert.equal(ready.admin_url, `http://127.0.0.1:${adminPort}`);
    assert.ok(await routeNotFound(await fetch(`${base}/providers`, { headers: { 'x-api-key': key } })));
    assert.equal(
      (await fetch(`http://127.0.0.1:${adminPort}/providers`, { headers: { 'x-api-key': key } })).status,
      200,
    );
    child.kill('SIGTERM');
    const exit = await child.wait();
    assert.equal(exit.code, 0, 'both listeners close on SIGTERM');
  });

  it('refuses an unknown role and an admin port equal to the main one', async () => {
    const port = await freePort();
    const env = { ...baseEnv(), ...db.env, ...envKeys(), NEXUS_ENV: 'test', PORT: String(port) };
    const bad = await spawnCli(['serve', '--role', 'dmz'], env).wait();
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--role must be one of all, gateway, broker/);
    const same = await spawnCli(['serve'], { ...env, ADMIN_PORT: String(port) }).wait();
    assert.equal(same.code, 2);
    assert.match(same.stderr, /ADMIN_PORT: must differ from PORT/);
  });
});

describe('CORS: only browser-facing routes, only allowed origins, never credentials', () => {
  let broker: TestBroker;
  let plain: TestBroker;
  before(async () => {
    broker = await startBroker({ env: { CORS_ALLOWED_ORIGINS: 'https://app.example.com' } });
    plain = await startBroker();
  });
  after(async () => {
    await broker.close();
    await plain.close();
  });

  const preflight = (b: TestBroker, url: string, origin: string) =>
    b.request({
      method: 'OPTIONS',
      url,
      key: null,
      headers: {
        origin,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type',
      },
    });

  it('answers a preflight from an allowed origin on a browser-facing route', async () => {
    const res = await preflight(broker, '/v1/capture-credential', 'https://app.example.com');
    assert.equal(res.statusCode, 204, res.body);
    assert.equal(res.headers['access-control-allow-origin'], 'https://app.example.com');
    assert.equal(res.headers['access-control-allow-credentials'], undefined);
    const get = await broker.request({
      method: 'GET',
      url: '/.well-known/jwks.json',
      key: null,
      headers: { origin: 'https://app.example.com' },
    });
    assert.equal(get.headers['access-control-allow-origin'], 'https://app.example.com');
  });

  it('adds nothing for other origins, other routes, or when no origin is configured', async () => {
    const stranger = await preflight(broker, '/v1/capture-credential', 'https://evil.example');
    assert.equal(stranger.headers['access-control-allow-origin'], undefined);
    const admin = await broker.request({
      method: 'GET',
      url: '/providers',
      headers: { origin: 'https://app.example.com' },
    });
    assert.equal(admin.statusCode, 200);
    assert.equal(admin.headers['access-control-allow-origin'], undefined, 'not a browser-facing route');
    const none = await plain.request({
      method: 'GET',
      url: '/health',
      key: null,
      headers: { origin: 'https://app.example.com' },
    });
    assert.equal(none.headers['access-control-allow-origin'], undefined);
  });

  it('refuses a malformed origin at start-up', async () => {
    await assert.rejects(
      startBroker({ env: { CORS_ALLOWED_ORIGINS: 'https://app.example.com/' } }),
      /CORS_ALLOWED_ORIGINS/,
    );
  });
});
