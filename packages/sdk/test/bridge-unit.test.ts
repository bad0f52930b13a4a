/**
 * Bridge cases the testbed cannot stage on demand, against a scripted broker and upstream: the first
 * fetch is single-flight too, and a failed refresh-ahead keeps using a credential that has not expired.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
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
