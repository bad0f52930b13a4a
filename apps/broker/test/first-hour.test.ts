/**
 * Regression tests for issue #24 ("The first hour"), through HTTP: what someone trying the broker
 * for the first time meets. `/` answers with a page (or JSON), a bare provider profile is told to
 * wrap itself in `{profile}`, user secrets without their key answer 501 with the variable to set,
 * and the proxy routes are in the OpenAPI document.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { VERSION } from '../src/version.ts';
import { assertProblem, json, startBroker, type TestBroker } from './harness.ts';

interface OpenApi {
  paths: Record<string, Record<string, { operationId?: string; responses?: Record<string, unknown> }>>;
}

describe('issue #24: the first hour, over HTTP', () => {
  let broker: TestBroker;
  before(async () => {
    broker = await startBroker();
  });
  after(() => broker.close());

  it('GET / is a static page linking /docs for a browser, without a credential', async () => {
    const res = await broker.request({
      method: 'GET',
      url: '/',
      key: null,
      headers: { accept: 'text/html' },
    });
    assert.equal(res.statusCode, 200, res.body);
    assert.match(String(res.headers['content-type']), /^text\/html; charset=utf-8/);
    assert.equal(res.headers['cache-control'], 'no-store');
    const csp = String(res.headers['content-security-policy']);
    assert.match(csp, /default-src 'none'/);
    assert.doesNotMatch(csp, /unsafe-inline|script-src/);
    assert.match(res.body, /<a href="\/docs">/);
    assert.match(res.body, /<a href="\/console">/);
    assert.doesNotMatch(res.body, /<script|<style|\son[a-z]+=/i, 'no inline script or style');
    // curl's default Accept gets the page too: JSON is for clients that ask for it.
    const any = await broker.request({ method: 'GET', url: '/', key: null, headers: { accept: '*/*' } });
    assert.match(String(any.headers['content-type']), /^text\/html/);
  });

  it('GET / with Accept: application/json answers {name, version, docs}', async () => {
    const res = await broker.request({
      method: 'GET',
      url: '/',
      key: null,
      headers: { accept: 'application/json' },
    });
    assert.equal(res.statusCode, 200, res.body);
    assert.match(String(res.headers['content-type']), /^application\/json/);
    assert.equal(res.headers['cache-control'], 'no-store');
    assert.deepEqual(json(res), { name: 'nexus', version: VERSION, docs: '/docs' });
  });

  it('POST /providers with a bare profile says to wrap it in {"profile": {...}}', async () => {
    for (const url of ['/providers', '/v1/providers']) {
      const res = await broker.request({
        method: 'POST',
        url,
        payload: { name: 'github', auth_type: 'oauth2', client_id: 'abc', client_secret: 's' },
      });
      const body = assertProblem<{ error: string; message: string; details: { path: string }[] }>(
        res,
        400,
        'invalid_request',
        url,
      );
      assert.match(body.message, /wrap the provider profile in \{"profile": \{\.\.\.\}\}/);
      assert.equal(body.details[0]!.path, 'body.profile');
      assert.ok(body.details.some((d) => d.path === 'body.auth_type'));
    }
    // A body that is not a bare profile keeps the ordinary validation answer.
    const other = await broker.request({ method: 'POST', url: '/providers', payload: { foo: 1 } });
    const body = assertProblem<{ error: string; message: string }>(other, 400, 'invalid_request');
    assert.doesNotMatch(body.message, /wrap/);
  });

  it('the OpenAPI document lists / and the proxy routes, one operation id per method', async () => {
    const res = await broker.request({ method: 'GET', url: '/openapi.json' });
    assert.equal(res.statusCode, 200);
    const doc = json<OpenApi>(res);
    assert.equal(doc.paths['/']?.get?.operationId, 'home');
    const proxyPath = Object.keys(doc.paths).find((p) => p.startsWith('/proxy/'));
    assert.ok(proxyPath, `no /proxy path in ${Object.keys(doc.paths).join(', ')}`);
    const ops = doc.paths[proxyPath]!;
    // HEAD is served too; the OpenAPI generator leaves HEAD routes out of every path.
    assert.deepEqual(Object.keys(ops).sort(), ['delete', 'get', 'options', 'patch', 'post', 'put']);
    const ids = Object.values(ops).map((op) => op.operationId);
    assert.equal(new Set(ids).size, ids.length, `operation ids repeat: ${ids.join(', ')}`);
    assert.ok(ops.get!.responses?.['502'] && ops.get!.responses['504']);
    const all = Object.values(doc.paths).flatMap((p) => Object.values(p).map((op) => op.operationId));
    assert.equal(new Set(all).size, all.length, 'operation ids are unique in the whole document');
  });

  it('the proxy answers as before: unknown route is 404 unknown_route', async () => {
    const res = await broker.request({ method: 'GET', url: '/proxy/no-such-route/x' });
    assertProblem(res, 404, 'unknown_route');
  });
});

describe('issue #24: user secrets without USER_SECRETS_KEY', () => {
  let bare: TestBroker;
  before(async () => {
    bare = await startBroker({ env: { USER_SECRETS_KEY: '' } });
  });
  after(() => bare.close());

  const q = '?user_id=u1';
  const calls = [
    { method: 'POST', url: `/api/v2/secrets${q}`, payload: { name: 'a', value: 'b' } },
    { method: 'GET', url: `/api/v2/secrets${q}` },
    { method: 'GET', url: `/api/v2/secrets/a${q}` },
    { method: 'GET', url: `/api/v2/secrets/a/versions${q}` },
    { method: 'DELETE', url: `/api/v2/secrets/a${q}` },
    { method: 'POST', url: `/api/v2/secrets/a/restore${q}` },
    { method: 'POST', url: `/api/v2/secrets/a/enable${q}` },
    { method: 'POST', url: `/api/v2/secrets/a/disable${q}` },
    { method: 'POST', url: `/api/v2/secrets/resolve${q}`, payload: { config: { k: 'nexus-secret:a' } } },
  ] as const;

  it('every user-secret route answers 501 user_secrets_not_configured naming USER_SECRETS_KEY', async () => {
    for (const call of calls) {
      const res = await bare.request({ ...call });
      const body = assertProblem<{ error: string; message: string }>(
        res,
        501,
        'user_secrets_not_configured',
        `${call.method} ${call.url}`,
      );
      assert.match(body.message, /USER_SECRETS_KEY/);
    }
  });

  it('the OpenAPI document declares 501 on every user-secret operation', async () => {
    const doc = json<OpenApi>(await bare.request({ method: 'GET', url: '/openapi.json' }));
    const ops = Object.entries(doc.paths)
      .filter(([path]) => path.startsWith('/api/v2/secrets'))
      .flatMap(([path, methods]) => Object.entries(methods).map(([m, op]) => ({ at: `${m} ${path}`, op })));
    assert.equal(ops.length, calls.length);
    for (const { at, op } of ops) assert.ok(op.responses?.['501'], `${at} does not declare 501`);
  });
});
