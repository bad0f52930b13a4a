/**
 * The `headers` strategy through the broker's HTTP API (issue #20, decision 0015 "Several
 * headers"): a provider registered with two header templates, a credential captured through the
 * hosted form (which asks for the fields the templates name, and is probed with both headers), the
 * token answered in the strategies' one wire shape, and the credential proxy sending both headers to
 * an upstream that checks them. On SQLite and, with NEXUS_TEST_DATABASE_URL, PostgreSQL.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { capture, startCapture, statusOf } from './capture-helpers.ts';
import { json, startBroker, type TestBroker } from './harness.ts';

const API_KEY = 'dd-api-7f3a9c';
const APP_KEY = 'dd-app-41be02';
const CONFIG = { 'DD-API-KEY': '{api_key}', 'DD-APPLICATION-KEY': 'app {application_key}' };

/** Answers 200 only when both headers carry the captured keys; records what reached it. */
function datadog() {
  const seen: { url: string; headers: IncomingHttpHeaders }[] = [];
  const server = createServer((req, res) => {
    seen.push({ url: req.url ?? '', headers: req.headers });
    const ok =
      req.headers['dd-api-key'] === API_KEY && req.headers['dd-application-key'] === `app ${APP_KEY}`;
    res.writeHead(ok ? 200 : 403, { 'content-type': 'application/json' });
    res.end(JSON.stringify(ok ? { valid: true, path: req.url } : { errors: ['Forbidden'] }));
  });
  return { server, seen };
}

describe('the headers strategy through the HTTP API', () => {
  let broker: TestBroker;
  const upstream = datadog();
  let base: string;

  before(async () => {
    base = await new Promise<string>((done) =>
      upstream.server.listen(0, '127.0.0.1', () =>
        done(`http://127.0.0.1:${(upstream.server.address() as AddressInfo).port}`),
      ),
    );
    broker = await startBroker({ env: { NEXUS_EGRESS_ALLOWED_CIDRS: '127.0.0.1/32' } });
  });
  after(async () => {
    await broker.close();
    upstream.server.close();
  });

  const register = (name: string, params: Record<string, unknown>, auth_type = 'header') =>
    broker.request({
      method: 'POST',
      url: '/providers',
      payload: { profile: { name, auth_type, api_base_url: `${base}/api`, params } },
    });

  it('registers, captures through the form, answers the token, and proxies both headers', async () => {
    const created = await register('datadog', {
      auth_strategy: { type: 'headers', config: CONFIG },
      validation: { url: '/api/v1/validate' },
    });
    assert.equal(created.statusCode, 201, created.body);
    const id = json<{ id: string }>(created).id;
    const stored = json<{ params: Record<string, unknown> }>(
      await broker.request({ method: 'GET', url: `/providers/${id}` }),
    );
    assert.deepEqual(stored.params.auth_strategy, { type: 'headers', config: CONFIG }, 'stored as given');

    const flow = await startCapture(broker, 'datadog', 'user-dd');
    // No credential_schema: the form asks for the fields the templates name, both required.
    const form = json<{ schema: { properties: Record<string, unknown>; required: string[] } }>(
      await broker.request({ method: 'GET', url: `/v1/capture-schema?state=${flow.state}`, key: null }),
    );
    assert.deepEqual(Object.keys(form.schema.properties), ['api_key', 'application_key']);
    assert.deepEqual(form.schema.required, ['api_key', 'application_key']);

    // The probe applies the strategy too: a wrong second key is refused before anything is stored.
    const wrong = await capture(broker, flow.state, { api_key: API_KEY, application_key: 'not-it' });
    assert.equal(wrong.statusCode, 422, wrong.body);
    assert.equal(json(wrong).error, 'credentials_rejected');
    assert.ok(!wrong.body.includes('not-it'), 'the refused value is not echoed');
    const captured = await capture(broker, flow.state, { api_key: API_KEY, application_key: APP_KEY });
    assert.equal(captured.statusCode, 200, captured.body);
    assert.equal(await statusOf(broker, flow.connection_id), 'active');

    const token = json<Record<string, unknown>>(
      await broker.request({ method: 'GET', url: `/v1/token/${flow.connection_id}` }),
    );
    assert.deepEqual(token.strategy, { type: 'headers', config: CONFIG });
    assert.deepEqual(token.credentials, { api_key: API_KEY, application_key: APP_KEY });
    assert.equal(token.expires_at, null);
    assert.equal(token.access_token, undefined, 'nothing OAuth-shaped for a static credential');

    const before = upstream.seen.length;
    const proxied = await broker.request({
      method: 'GET',
      url: '/proxy/datadog/v1/validate?from=proxy',
      headers: { 'x-nexus-connection-id': flow.connection_id, 'dd-api-key': 'caller-supplied' },
    });
    assert.equal(proxied.statusCode, 200, proxied.body);
    assert.deepEqual(json(proxied), { valid: true, path: '/api/v1/validate?from=proxy' });
    const reached = upstream.seen.slice(before);
    assert.equal(reached.length, 1);
    assert.equal(reached[0]!.headers['dd-api-key'], API_KEY, "the strategy's value, not the caller's");
    assert.equal(reached[0]!.headers['x-nexus-connection-id'], undefined);
  });

  it('a credential_schema must define every field the templates name', async () => {
    const schema = {
      type: 'object',
      properties: { api_key: { type: 'string' }, application_key: { type: 'string' } },
    };
    const ok = await register('datadog-schema', {
      credential_schema: schema,
      auth_strategy: { type: 'headers', config: CONFIG },
    });
    assert.equal(ok.statusCode, 201, ok.body);
    const missing = await register('datadog-typo', {
      credential_schema: schema,
      auth_strategy: { type: 'headers', config: { ...CONFIG, 'DD-APPLICATION-KEY': '{app_key}' } },
    });
    assert.equal(missing.statusCode, 400, missing.body);
    assert.equal(json(missing).error, 'invalid_provider');
    assert.deepEqual(json<{ details: unknown }>(missing).details, [
      {
        path: 'params.credential_schema.properties',
        message: 'must define "app_key", which the headers strategy applies',
      },
    ]);
  });

  it('refuses what the broker owns, bad names and values, and other auth types, each named', async () => {
    const res = await register('bad-headers', {
      auth_strategy: {
        type: 'headers',
        config: { Host: 'api.example.com', 'bad name': '{api_key}', 'x-key': '{api_key}\nx-evil: 1' },
      },
    });
    assert.equal(res.statusCode, 400, res.body);
    const paths = json<{ details: { path: string }[] }>(res).details.map((d) => d.path);
    assert.deepEqual(paths.sort(), [
      'params.auth_strategy.config.Host',
      'params.auth_strategy.config.bad name',
      'params.auth_strategy.config.x-key',
    ]);
    const basic = await register(
      'basic-headers',
      { auth_strategy: { type: 'headers', config: CONFIG } },
      'basic_auth',
    );
    assert.equal(basic.statusCode, 400, basic.body);
    assert.equal(json<{ details: { path: string }[] }>(basic).details[0]!.path, 'params.auth_strategy.type');
    const list = json<{ name: string }[]>(await broker.request({ method: 'GET', url: '/providers' }));
    assert.ok(!list.some((p) => p.name === 'bad-headers' || p.name === 'basic-headers'), 'nothing stored');
  });
});
