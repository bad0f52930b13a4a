/**
 * Broker calls against a scripted local server: typed errors, bounded retries on connection errors,
 * 429 (Retry-After) and 502/503/504, per-call timeouts, and agent re-login.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { backoffDelay, parseRetryAfter } from '../src/http.ts';
import {
  AttentionRequiredError,
  AuthenticationError,
  BrokerUnavailableError,
  ConflictError,
  NexusClient,
  NexusError,
  NotFoundError,
  PermissionDeniedError,
  RateLimitedError,
  type RetryEvent,
  ServerError,
} from '../src/index.ts';
import { closedPortUrl, type LocalServer, sendJson, startLocalServer } from './local-server.ts';

const CONN = '6f1c1f44-5b0e-4a4e-9f39-1b1f3f0d9a11';
const FAST = { maxRetries: 3, baseDelayMs: 5, maxDelayMs: 20 };
const servers: LocalServer[] = [];
after(async () => {
  for (const s of servers) await s.close();
});
async function server(handler: Parameters<typeof startLocalServer>[0]) {
  const s = await startLocalServer(handler);
  servers.push(s);
  return s;
}

describe('typed errors', () => {
  const cases: [number, string, new (...args: never[]) => NexusError][] = [
    [401, 'unauthorized', AuthenticationError],
    [403, 'forbidden', PermissionDeniedError],
    [404, 'connection_not_found', NotFoundError],
    [409, 'connection_not_active', ConflictError],
    [500, 'internal_error', ServerError],
  ];
  for (const [status, code, type] of cases) {
    test(`${status} ${code} becomes ${type.name} with code and request id`, async () => {
      const s = await server((_req, res) =>
        sendJson(
          res,
          status,
          { error: code, message: `broker says ${code}`, request_id: 'req-body' },
          {
            'x-request-id': 'req-header',
          },
        ),
      );
      const client = new NexusClient({ baseUrl: s.url, apiKey: 'k', env: {}, retry: FAST });
      const error = await client.getToken(CONN).catch((e: unknown) => e);
      assert.ok(error instanceof type, `expected ${type.name}, got ${String(error)}`);
      assert.ok(error instanceof NexusError);
      assert.equal(error.status, status);
      assert.equal(error.code, code);
      assert.equal(error.requestId, 'req-header');
      assert.equal(error.message, `broker says ${code}`);
      assert.equal(s.seen.length, 1, 'no retry on a client error');
    });
  }

  test('409 attention_required is an AttentionRequiredError telling the user must reconnect', async () => {
    const s = await server((_req, res) =>
      sendJson(res, 409, { error: 'attention_required', message: 'grant refused', request_id: 'r1' }),
    );
    const client = new NexusClient({ baseUrl: s.url, apiKey: 'k', env: {} });
    const error = await client.getToken(CONN).catch((e: unknown) => e);
    assert.ok(error instanceof AttentionRequiredError);
    assert.ok(error instanceof ConflictError);
    assert.equal(error.code, 'attention_required');
    assert.equal(error.connectionId, CONN);
    assert.equal(error.requestId, 'r1');
    assert.match(error.message, /user must reconnect/);
    assert.match(error.message, new RegExp(CONN));
  });

  test('an error never carries the API key or the agent secret', async () => {
    const s = await server((_req, res) => sendJson(res, 401, { error: 'invalid_client', message: 'nope' }));
    const client = new NexusClient({
      baseUrl: s.url,
      clientId: 'a',
      clientSecret: 'the-secret-xyz',
      env: {},
    });
    const error = (await client.getToken(CONN).catch((e: unknown) => e)) as Error;
    assert.ok(error instanceof AuthenticationError);
    assert.doesNotMatch(`${error.message} ${error.stack} ${JSON.stringify(error)}`, /the-secret-xyz/);
  });
});

describe('retries', () => {
  test('503 then 200: retried with backoff, then success', async () => {
    let n = 0;
    const s = await server((_req, res) =>
      ++n <= 2
        ? sendJson(res, 503, { error: 'service_unavailable', message: 'down' })
        : sendJson(res, 200, { connection_id: CONN, status: 'active' }),
    );
    const events: RetryEvent[] = [];
    const client = new NexusClient({
      baseUrl: s.url,
      apiKey: 'k',
      env: {},
      retry: FAST,
      onRetry: (e) => events.push(e),
    });
    const result = await client.checkConnection(CONN);
    assert.equal(result.status, 'active');
    assert.equal(s.seen.length, 3);
    assert.deepEqual(
      events.map((e) => [e.attempt, e.reason]),
      [
        [1, 'HTTP 503'],
        [2, 'HTTP 503'],
      ],
    );
  });

  test('502 and 504 are retried too; the number of retries is bounded', async () => {
    const s = await server((_req, res) =>
      sendJson(res, 502, { error: 'provider_unavailable', message: 'x' }),
    );
    const client = new NexusClient({
      baseUrl: s.url,
      apiKey: 'k',
      env: {},
      retry: { ...FAST, maxRetries: 2 },
    });
    const error = await client.getToken(CONN).catch((e: unknown) => e);
    assert.ok(error instanceof ServerError);
    assert.equal((error as ServerError).code, 'provider_unavailable');
    assert.equal(s.seen.length, 3, 'one attempt and two retries');

    let n = 0;
    const s2 = await server((_req, res) =>
      ++n === 1 ? sendJson(res, 504, {}) : sendJson(res, 200, { connection_id: CONN, status: 'pending' }),
    );
    const c2 = new NexusClient({ baseUrl: s2.url, apiKey: 'k', env: {}, retry: FAST });
    assert.equal((await c2.checkConnection(CONN)).status, 'pending');
  });

  test('502 and 504 are not retried for a POST (the broker may have done the work); 503 and 429 are', async () => {
    for (const status of [502, 504]) {
      let posts = 0;
      const s = await server((req, res) => {
        if (req.method === 'POST') posts++;
        sendJson(res, status, { error: 'provider_unavailable', message: 'gateway' });
      });
      const client = new NexusClient({ baseUrl: s.url, apiKey: 'k', env: {}, retry: FAST });
      const error = await client
        .requestConnection({ user_id: 'u', provider_name: 'p', return_url: 'http://x' })
        .catch((e: unknown) => e);
      assert.ok(error instanceof ServerError);
      assert.equal(error.status, status);
      assert.equal(posts, 1, `a POST answered ${status} is sent once`);
      // An idempotent POST (refresh) is still retried.
      await assert.rejects(client.refreshConnection(CONN), ServerError);
      assert.equal(posts, 1 + 1 + FAST.maxRetries, `refresh answered ${status} is retried`);
    }
    for (const status of [503, 429]) {
      let posts = 0;
      const s = await server((req, res) => {
        if (req.method === 'POST' && ++posts === 1)
          return sendJson(res, status, { error: 'busy', message: 'later' }, { 'retry-after': '0' });
        sendJson(res, 201, { connection_id: CONN, authorization_url: 'http://a', status: 'pending' });
      });
      const client = new NexusClient({ baseUrl: s.url, apiKey: 'k', env: {}, retry: FAST });
      await client.requestConnection({ user_id: 'u', provider_name: 'p', return_url: 'http://x' });
      assert.equal(posts, 2, `a POST answered ${status} is retried`);
    }
  });

  test('maxRetries 0 disables retrying', async () => {
    const s = await server((_req, res) => sendJson(res, 503, { error: 'service_unavailable', message: 'x' }));
    const client = new NexusClient({ baseUrl: s.url, apiKey: 'k', env: {}, retry: { maxRetries: 0 } });
    await assert.rejects(client.getToken(CONN), ServerError);
    assert.equal(s.seen.length, 1);
  });

  test('429 honours Retry-After (seconds), capped by maxDelayMs', async () => {
    let n = 0;
    const s = await server((_req, res) =>
      ++n === 1
        ? sendJson(res, 429, { error: 'rate_limited', message: 'slow down' }, { 'retry-after': '1' })
        : sendJson(res, 200, { connection_id: CONN, status: 'active' }),
    );
    const events: RetryEvent[] = [];
    const client = new NexusClient({
      baseUrl: s.url,
      apiKey: 'k',
      env: {},
      retry: { maxRetries: 2, baseDelayMs: 5, maxDelayMs: 5000 },
      onRetry: (e) => events.push(e),
    });
    assert.equal((await client.checkConnection(CONN)).status, 'active');
    assert.equal(events.length, 1);
    assert.equal(events[0]!.delayMs, 1000, 'waited what Retry-After said');

    const capped: RetryEvent[] = [];
    let m = 0;
    const s2 = await server((_req, res) =>
      ++m === 1
        ? sendJson(res, 429, { error: 'rate_limited', message: 'x' }, { 'retry-after': '3600' })
        : sendJson(res, 200, { connection_id: CONN, status: 'active' }),
    );
    const c2 = new NexusClient({
      baseUrl: s2.url,
      apiKey: 'k',
      env: {},
      retry: { maxRetries: 1, baseDelayMs: 5, maxDelayMs: 50 },
      onRetry: (e) => capped.push(e),
    });
    await c2.checkConnection(CONN);
    assert.equal(capped[0]!.delayMs, 50);
  });

  test('429 after the retries is a RateLimitedError with retryAfterMs', async () => {
    const s = await server((_req, res) =>
      sendJson(res, 429, { error: 'rate_limited', message: 'x' }, { 'retry-after': '7' }),
    );
    const client = new NexusClient({ baseUrl: s.url, apiKey: 'k', env: {}, retry: { maxRetries: 0 } });
    const error = await client.getToken(CONN).catch((e: unknown) => e);
    assert.ok(error instanceof RateLimitedError);
    assert.equal(error.retryAfterMs, 7000);
  });

  test('connection refused: retried, then BrokerUnavailableError', async () => {
    const events: RetryEvent[] = [];
    const client = new NexusClient({
      baseUrl: await closedPortUrl(),
      apiKey: 'k',
      env: {},
      retry: FAST,
      onRetry: (e) => events.push(e),
    });
    const error = await client
      .requestConnection({ user_id: 'u', provider_name: 'p', return_url: 'http://x' })
      .catch((e: unknown) => e);
    assert.ok(error instanceof BrokerUnavailableError);
    assert.equal(error.status, undefined);
    assert.equal(error.code, 'broker_unavailable');
    assert.equal(events.length, 3, 'a POST is retried when the connection was refused (never delivered)');
    assert.ok(events.every((e) => e.reason === 'ECONNREFUSED'));
  });

  test('a call that exceeds timeoutMs fails with a timeout (and GET is retried before that)', async () => {
    const s = await server(() => {
      /* never answers */
    });
    const client = new NexusClient({
      baseUrl: s.url,
      apiKey: 'k',
      env: {},
      timeoutMs: 100,
      retry: { maxRetries: 1, baseDelayMs: 1, maxDelayMs: 1 },
    });
    const error = await client.getToken(CONN).catch((e: unknown) => e);
    assert.ok(error instanceof BrokerUnavailableError);
    assert.equal(error.code, 'timeout');
    assert.equal(s.seen.length, 2);
  });

  test('backoff grows exponentially, with jitter, within bounds', () => {
    const policy = { maxRetries: 10, baseDelayMs: 100, maxDelayMs: 1000 };
    const low = [0, 1, 2, 3, 4].map((a) => backoffDelay(a, policy, () => 0));
    const high = [0, 1, 2, 3, 4].map((a) => backoffDelay(a, policy, () => 1));
    assert.deepEqual(low, [50, 100, 200, 400, 500]);
    assert.deepEqual(high, [100, 200, 400, 800, 1000]);
    assert.equal(parseRetryAfter('12', 0), 12_000);
    assert.equal(parseRetryAfter(new Date(60_000).toUTCString(), 0), 60_000);
    assert.equal(parseRetryAfter(null, 0), undefined);
  });
});

describe('agent login', () => {
  test('logs in once, re-logs in when the broker refuses the token, and before it expires', async () => {
    let issued = 0;
    const valid = new Set<string>();
    const s = await server((req, res) => {
      if (req.url === '/oauth/token') {
        const form = new URLSearchParams(req.body);
        assert.equal(form.get('grant_type'), 'client_credentials');
        assert.equal(form.get('client_id'), 'agent-1');
        assert.equal(form.get('client_secret'), 'sec');
        const token = `t${++issued}`;
        valid.add(token);
        return sendJson(res, 200, { access_token: token, token_type: 'Bearer', expires_in: 600, scope: 'x' });
      }
      const token = String(req.headers.authorization).replace('Bearer ', '');
      if (!valid.has(token)) return sendJson(res, 401, { error: 'unauthorized', message: 'bad token' });
      return sendJson(res, 200, { connection_id: CONN, status: 'active' });
    });
    let clock = 1_000_000;
    const client = new NexusClient({
      baseUrl: s.url,
      clientId: 'agent-1',
      clientSecret: 'sec',
      env: {},
      now: () => clock,
    });
    await client.checkConnection(CONN);
    await client.checkConnection(CONN);
    assert.equal(issued, 1, 'the token is reused');

    valid.clear(); // the broker forgets it (restart with new keys, rotation, …)
    await client.checkConnection(CONN);
    assert.equal(issued, 2, 'one re-login after a 401');

    clock += 600_000 - 30_000; // inside the renewal window before expires_in
    await client.checkConnection(CONN);
    assert.equal(issued, 3, 're-login shortly before expiry');

    const login = await client.agentLogin();
    assert.equal(login.access_token, 't4');
  });

  test('20 concurrent calls refused after a revocation cause exactly one re-login', async () => {
    let issued = 0;
    const valid = new Set<string>();
    let stale: { res: Parameters<Parameters<typeof startLocalServer>[0]>[1] }[] = [];
    let loggedIn: () => void = () => undefined;
    const relogin = new Promise<void>((done) => {
      loggedIn = done;
    });
    const s = await server((req, res) => {
      if (req.url === '/oauth/token') {
        const token = `t${++issued}`;
        valid.add(token);
        sendJson(res, 200, { access_token: token, token_type: 'Bearer', expires_in: 600, scope: 'x' });
        if (issued === 2) setTimeout(loggedIn, 20);
        return;
      }
      const token = String(req.headers.authorization).replace('Bearer ', '');
      if (valid.has(token)) return sendJson(res, 200, { connection_id: CONN, status: 'active' });
      // Hold the 20 refused requests; refuse one now and the others once the re-login is done, so
      // that their 401s arrive after a new token exists.
      stale.push({ res });
      if (stale.length === 20) {
        const [first, ...rest] = stale;
        stale = [];
        sendJson(first!.res, 401, { error: 'unauthorized', message: 'revoked' });
        void relogin.then(() => {
          for (const r of rest) sendJson(r.res, 401, { error: 'unauthorized', message: 'revoked' });
        });
      }
    });
    const client = new NexusClient({ baseUrl: s.url, clientId: 'agent-1', clientSecret: 'sec', env: {} });
    await client.checkConnection(CONN);
    assert.equal(issued, 1);
    valid.clear(); // revoked
    const results = await Promise.all(Array.from({ length: 20 }, () => client.checkConnection(CONN)));
    assert.ok(results.every((r) => r.status === 'active'));
    assert.equal(issued, 2, 'exactly one re-login for 20 refused calls');
  });

  test('a caller that aborts while the shared login runs does not fail the other waiters', async () => {
    let logins = 0;
    const s = await server((req, res) => {
      if (req.url === '/oauth/token') {
        logins++;
        setTimeout(
          () =>
            sendJson(res, 200, {
              access_token: `t${logins}`,
              token_type: 'Bearer',
              expires_in: 600,
              scope: 'x',
            }),
          150,
        );
        return;
      }
      sendJson(res, 200, { connection_id: CONN, status: 'active' });
    });
    const events: RetryEvent[] = [];
    const client = new NexusClient({
      baseUrl: s.url,
      clientId: 'agent-1',
      clientSecret: 'sec',
      env: {},
      onRetry: (e) => events.push(e),
    });
    const controller = new AbortController();
    const first = client.checkConnection(CONN, { signal: controller.signal });
    const second = client.checkConnection(CONN);
    const third = client.agentLogin();
    setTimeout(() => controller.abort(new Error('caller gave up')), 30);
    await assert.rejects(first, /caller gave up/);
    assert.equal((await second).status, 'active');
    assert.equal((await third).access_token, 't1');
    assert.equal(logins, 1, 'one shared login, not restarted');
    assert.deepEqual(events, [], 'the other waiters saw no failure to retry');
  });

  test('wrong agent credentials: AuthenticationError, no endless re-login', async () => {
    const s = await server((_req, res) =>
      sendJson(res, 401, { error: 'invalid_client', message: 'Client authentication failed.' }),
    );
    const client = new NexusClient({ baseUrl: s.url, clientId: 'a', clientSecret: 'b', env: {} });
    const error = await client.checkConnection(CONN).catch((e: unknown) => e);
    assert.ok(error instanceof AuthenticationError);
    assert.equal(error.code, 'invalid_client');
    assert.equal(s.seen.length, 1);
  });
});
