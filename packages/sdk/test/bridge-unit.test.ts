/**
 * Bridge cases the testbed cannot stage on demand, against a scripted broker and upstream: the first
 * fetch is single-flight too, and a failed refresh-ahead keeps using a credential that has not expired.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { createBridgeFetch, NexusClient, ServerError } from '../src/index.ts';
import { type LocalServer, sendJson, startLocalServer } from './local-server.ts';

const CONN = '6f1c1f44-5b0e-4a4e-9f39-1b1f3f0d9a11';
const servers: LocalServer[] = [];
after(async () => {
  for (const s of servers) await s.close();
});

async function fakeBroker(expiresAt: () => string, refresh: 'ok' | 'fail') {
  let issued = 0;
  const broker = await startLocalServer((req, res) => {
    const token = (value: string) => ({
      connection_id: CONN,
      provider_id: 'p',
      provider_name: 'p',
      strategy: { type: 'oauth2', config: {} },
      credentials: { access_token: value, token_type: 'Bearer' },
      expires_at: expiresAt(),
    });
    if (req.method === 'GET' && req.url === `/v1/token/${CONN}`)
      return sendJson(res, 200, token(`t${++issued}`));
    if (req.method === 'POST' && req.url === `/v1/refresh/${CONN}`)
      return refresh === 'ok'
        ? sendJson(res, 200, token(`t${++issued}`))
        : sendJson(res, 503, { error: 'refresh_in_progress', message: 'busy' });
    sendJson(res, 404, { error: 'route_not_found', message: 'no' });
  });
  const upstream = await startLocalServer((req, res) =>
    sendJson(res, 200, { authorization: req.headers.authorization }),
  );
  servers.push(broker, upstream);
  return { broker, upstream };
}

test('the first credential fetch is single-flight: 20 concurrent requests, one broker call', async () => {
  const { broker, upstream } = await fakeBroker(() => new Date(Date.now() + 3_600_000).toISOString(), 'ok');
  const client = new NexusClient({ baseUrl: broker.url, apiKey: 'k', env: {} });
  const bridge = createBridgeFetch({ client, connectionId: CONN });
  const answers = await Promise.all(
    Array.from(
      { length: 20 },
      async () => (await (await bridge(upstream.url)).json()) as { authorization: string },
    ),
  );
  assert.ok(answers.every((a) => a.authorization === 'Bearer t1'));
  assert.equal(broker.seen.length, 1);
});

test('refresh-ahead fails (503): the credential is used until it really expires, then the error surfaces', async () => {
  let clock = Date.parse('2026-01-01T00:00:00Z');
  const now = () => clock;
  const { broker, upstream } = await fakeBroker(() => new Date(clock + 120_000).toISOString(), 'fail');
  const client = new NexusClient({
    baseUrl: broker.url,
    apiKey: 'k',
    env: {},
    now,
    retry: { maxRetries: 0 },
  });
  const bridge = createBridgeFetch(
    { client, connectionId: CONN },
    { now, skewMs: 60_000, brokerRetry: { maxRetries: 0 } },
  );
  assert.equal(
    ((await (await bridge(upstream.url)).json()) as { authorization: string }).authorization,
    'Bearer t1',
  );

  clock += 90_000; // past expires_at - skew, before expires_at
  const inWindow = (await (await bridge(upstream.url)).json()) as { authorization: string };
  assert.equal(inWindow.authorization, 'Bearer t1');
  assert.equal(broker.seen.filter((r) => r.method === 'POST').length, 1, 'it did try to refresh');

  clock += 60_000; // past expires_at
  await assert.rejects(bridge(upstream.url), ServerError);
});

/** A broker whose only connection carries `strategy` with `credentials`. */
async function strategyBroker(
  strategy: { type: string; config: Record<string, string> },
  credentials: object,
) {
  const broker = await startLocalServer((req, res) => {
    if (req.method === 'GET' && req.url === `/v1/token/${CONN}`)
      return sendJson(res, 200, {
        connection_id: CONN,
        provider_id: 'p',
        provider_name: 'p',
        strategy,
        credentials,
        expires_at: null,
      });
    sendJson(res, 404, { error: 'route_not_found', message: 'no' });
  });
  servers.push(broker);
  return new NexusClient({ baseUrl: broker.url, apiKey: 'k', env: {} });
}

const SECRET_STRATEGIES: {
  name: string;
  strategy: { type: string; config: Record<string, string> };
  credentials: Record<string, string>;
  secret: string;
}[] = [
  {
    name: 'header (X-Api-Key)',
    strategy: { type: 'header', config: { header_name: 'X-Api-Key' } },
    credentials: { api_key: 'secret-api-key' },
    secret: 'secret-api-key',
  },
  {
    name: 'aws_sigv4 with a session token',
    strategy: { type: 'aws_sigv4', config: { service: 'execute-api', region: 'eu-west-1' } },
    credentials: { access_key: 'AKIDSECRET', secret_key: 'sk-secret', session_token: 'secret-session-token' },
    secret: 'secret-session-token',
  },
  {
    name: 'query_param',
    strategy: { type: 'query_param', config: { param_name: 'key' } },
    credentials: { api_key: 'secret-query-key' },
    secret: 'secret-query-key',
  },
  {
    name: 'oauth2',
    strategy: { type: 'oauth2', config: {} },
    credentials: { access_token: 'secret-bearer', token_type: 'Bearer' },
    secret: 'secret-bearer',
  },
];

describe('redirects: the credential never leaves the origin of the request', () => {
  for (const c of SECRET_STRATEGIES)
    for (const status of [301, 302, 303, 307, 308])
      test(`${c.name}: a ${status} to another origin is returned unfollowed, the other origin gets nothing`, async () => {
        const client = await strategyBroker(c.strategy, c.credentials);
        const other = await startLocalServer((_req, res) => sendJson(res, 200, { reached: true }));
        // localhost vs 127.0.0.1, another port: another origin either way.
        const otherUrl = `${other.url.replace('127.0.0.1', 'localhost')}/landing`;
        // The redirect keeps the query string, as canonical-host redirects commonly do.
        const origin = await startLocalServer((req, res) => {
          res.writeHead(status, { location: `${otherUrl}${new URL(req.url, 'http://x').search}` });
          res.end();
        });
        servers.push(other, origin);
        const bridge = createBridgeFetch({ client, connectionId: CONN });
        const response = await bridge(`${origin.url}/start?x=1`, { method: 'POST', body: 'payload' });
        assert.doesNotMatch(
          JSON.stringify(other.seen),
          new RegExp(c.secret),
          'credential sent to another origin',
        );
        assert.equal(other.seen.length, 0, 'the other origin was not contacted');
        assert.equal(response.status, status);
        assert.ok(response.headers.get('location')?.startsWith(otherUrl));
        assert.equal(response.redirected, false);
        assert.equal(origin.seen.length, 1);
        assert.match(
          JSON.stringify(origin.seen[0]),
          new RegExp(c.secret),
          'the origin did get the credential',
        );
      });

  test('same-origin redirects are followed with the credential applied again; 303 and 302 after POST become GET', async () => {
    const client = await strategyBroker(
      { type: 'query_param', config: { param_name: 'key' } },
      { api_key: 'secret-query-key' },
    );
    const origin = await startLocalServer((req, res) => {
      const path = new URL(req.url, 'http://x').pathname;
      const hop: Record<string, [number, string]> = {
        '/a': [307, '/b'],
        '/b': [308, '/c?page=2'],
        '/c': [302, '/d'],
        '/d': [303, '/e'],
      };
      const next = hop[path];
      if (next) {
        res.writeHead(next[0], { location: next[1] });
        return res.end();
      }
      sendJson(res, 200, { path });
    });
    servers.push(origin);
    const bridge = createBridgeFetch({ client, connectionId: CONN });
    const response = await bridge(`${origin.url}/a`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: 'payload',
    });
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { path: '/e' });
    assert.equal(response.redirected, true);
    assert.equal(new URL(response.url).pathname, '/e');
    assert.deepEqual(
      origin.seen.map((r) => [r.method, r.url, r.body, r.headers['content-type'] ?? null]),
      [
        ['POST', '/a?key=secret-query-key', 'payload', 'text/plain'],
        ['POST', '/b?key=secret-query-key', 'payload', 'text/plain'],
        ['POST', '/c?page=2&key=secret-query-key', 'payload', 'text/plain'],
        ['GET', '/d?key=secret-query-key', '', null],
        ['GET', '/e?key=secret-query-key', '', null],
      ],
    );
  });

  test('a same-origin redirect loop stops after 20 redirects; redirect "manual" and "error" are honoured', async () => {
    const client = await strategyBroker(
      { type: 'header', config: { header_name: 'X-Api-Key' } },
      { api_key: 'secret-api-key' },
    );
    const origin = await startLocalServer((_req, res) => {
      res.writeHead(302, { location: '/again' });
      res.end();
    });
    servers.push(origin);
    const bridge = createBridgeFetch({ client, connectionId: CONN });
    await assert.rejects(bridge(`${origin.url}/start`), TypeError);
    assert.equal(origin.seen.length, 21, 'the request and 20 redirects');
    assert.ok(origin.seen.every((r) => r.headers['x-api-key'] === 'secret-api-key'));

    const manual = await bridge(`${origin.url}/start`, { redirect: 'manual' });
    assert.equal(manual.status, 302);
    assert.equal(origin.seen.length, 22);
    await assert.rejects(bridge(`${origin.url}/start`, { redirect: 'error' }), TypeError);
    assert.equal(origin.seen.length, 23);
  });
});
