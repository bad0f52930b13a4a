/**
 * Rate limits per client on the public surface: in one process (memory counters), and across two
 * `nexus serve` processes sharing a real Redis (Debian package, started by scripts/services.sh),
 * where the limit holds for the pair, resets with the window, and a limited client does not hold up
 * another one.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { baseEnv, envKeys, freePort, killAllChildren, REPO_ROOT, spawnCli } from './cli-helpers.ts';
import { NexusClient, startGrpc } from './grpc-client.ts';
import {
  createAgentWithToken,
  createTestDatabase,
  json,
  startBroker,
  type TestBroker,
  type TestDatabase,
} from './harness.ts';

after(killAllChildren);

const RETURN = 'http://localhost:3000/done';
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

describe('rate limits in one process (memory counters)', () => {
  let broker: TestBroker;
  let id: string;
  let agentToken: string;

  before(async () => {
    broker = await startBroker({
      env: { RATE_LIMIT_ENABLED: 'true', RATE_LIMIT_TOKEN_RPM: '5', RATE_LIMIT_CAPTURE_RPM: '2' },
    });
    await broker.request({
      method: 'POST',
      url: '/providers',
      payload: { profile: { name: 'crm', auth_type: 'api_key' } },
    });
    const started = json<{ state: string; connection_id: string }>(
      await broker.request({
        method: 'POST',
        url: '/v1/request-connection',
        payload: { user_id: 'u1', provider_name: 'crm', return_url: RETURN },
      }),
    );
    const captured = await broker.request({
      method: 'POST',
      url: '/v1/capture-credential',
      key: null,
      payload: { state: started.state, credentials: { api_key: 'k-1' } },
    });
    assert.equal(captured.statusCode, 200, captured.body);
    id = started.connection_id;
    agentToken = (
      await createAgentWithToken(broker, 'reader', { allowed_providers: ['crm'], allowed_workspaces: ['*'] })
    ).token;
  });
  after(async () => broker?.close());

  it('answers 429 with Retry-After past the limit, per client: another client is not affected', async () => {
    const asAdmin = () => broker.request({ method: 'GET', url: `/v1/token/${id}` });
    const asAgent = () =>
      broker.request({
        method: 'GET',
        url: `/v1/token/${id}`,
        key: null,
        headers: { authorization: `Bearer ${agentToken}` },
      });
    // A window boundary could fall inside the test: start right after one.
    const wait = 60_000 - (Date.now() % 60_000);
    if (wait < 3_000) await new Promise((done) => setTimeout(done, wait + 50));

    for (let i = 0; i < 5; i++) assert.equal((await asAdmin()).statusCode, 200, `read ${i + 1}`);
    const limited = await asAdmin();
    assert.equal(limited.statusCode, 429);
    assert.equal(json(limited).error, 'rate_limited');
    const retryAfter = Number(limited.headers['retry-after']);
    assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${limited.headers['retry-after']}`);
    assert.equal((json(limited).details as { bucket: string }).bucket, 'token');

    assert.equal((await asAgent()).statusCode, 200, 'the agent has its own counter');
    const other = await broker.request({ method: 'GET', url: `/v1/check-connection/${id}` });
    assert.equal(other.statusCode, 200, 'routes without a limit are not affected');
  });

  it('limits public routes by client address, before the body is looked at', async () => {
    const capture = () =>
      broker.request({
        method: 'POST',
        url: '/v1/capture-credential',
        key: null,
        remoteAddress: '192.0.2.77', // an address of its own: the capture in before() does not count here
        payload: { state: 'x', credentials: {} },
      });
    const wait = 60_000 - (Date.now() % 60_000);
    if (wait < 3_000) await new Promise((done) => setTimeout(done, wait + 50));
    assert.equal((await capture()).statusCode, 404, 'an unknown state');
    assert.equal((await capture()).statusCode, 404);
    assert.equal((await capture()).statusCode, 429, 'even invalid requests count');
  });

  it('limits gRPC GetToken with the same counter as REST: RESOURCE_EXHAUSTED', async () => {
    const { server, address } = await startGrpc(broker);
    const client = new NexusClient(address);
    try {
      // The admin key is over its token limit from the first test, unless a new window began.
      const wait = 60_000 - (Date.now() % 60_000);
      if (wait < 3_000) await new Promise((done) => setTimeout(done, wait + 50));
      for (let i = 0; i < 6; i++) await broker.request({ method: 'GET', url: `/v1/token/${id}` });
      const failure = await client.fail('GetToken', { connection_id: id }, { 'x-api-key': broker.adminKey });
      assert.equal(failure.code, grpc.status.RESOURCE_EXHAUSTED);
      assert.equal(failure.trailers['nexus-error-code'], 'rate_limited');
      const agent = await client.call(
        'GetToken',
        { connection_id: id },
        { authorization: `Bearer ${agentToken}` },
      );
      assert.ok(agent, 'another client is served');
    } finally {
      client.close();
      await server.close();
    }
  });
});

describe('the OAuth callback at a configured REDIRECT_PATH', () => {
  it('counts against the callback limit wherever the path is', async () => {
    const broker = await startBroker({
      env: { RATE_LIMIT_ENABLED: 'true', RATE_LIMIT_CALLBACK_RPM: '2', REDIRECT_PATH: '/oauth2/callback' },
    });
    try {
      const callback = () =>
        broker.request({
          method: 'GET',
          url: '/oauth2/callback?state=x&code=y',
          key: null,
          remoteAddress: '192.0.2.78',
        });
      const wait = 60_000 - (Date.now() % 60_000);
      if (wait < 3_000) await new Promise((done) => setTimeout(done, wait + 50));
      const statuses = [];
      for (let i = 0; i < 4; i++) statuses.push((await callback()).statusCode);
      assert.deepEqual(statuses.slice(2), [429, 429], `statuses ${statuses}`);
      assert.ok(
        statuses.slice(0, 2).every((s) => s !== 429),
        `statuses ${statuses}`,
      );
    } finally {
      await broker.close();
    }
  });
});

describe('guessing credentials', () => {
  it('an address whose credentials keep failing gets 429 before the next one is checked; others go on', async () => {
    const broker = await startBroker({
      env: { RATE_LIMIT_ENABLED: 'true', RATE_LIMIT_AUTH_FAILURES_RPM: '3', RATE_LIMIT_LOGIN_RPM: '2' },
    });
    try {
      const wait = 60_000 - (Date.now() % 60_000);
      if (wait < 3_000) await new Promise((done) => setTimeout(done, wait + 50));
      const from = (remoteAddress: string, key: string) =>
        broker.request({ method: 'GET', url: '/providers', key, remoteAddress });
      for (let i = 0; i < 3; i++) assert.equal((await from('192.0.2.10', 'nxa_guess')).statusCode, 401);
      const blocked = await from('192.0.2.10', 'nxa_guess_again');
      assert.equal(blocked.statusCode, 429, 'the next guess waits');
      assert.equal((json(blocked).details as { bucket: string }).bucket, 'auth_failure');
      assert.ok(Number(blocked.headers['retry-after']) >= 1);
      // Issue #18: others failing at the same address (a load balancer) never lock out a valid key.
      assert.equal((await from('192.0.2.10', broker.adminKey)).statusCode, 200, 'the right key is served');
      assert.equal(
        (await from('192.0.2.11', broker.adminKey)).statusCode,
        200,
        'another address is not affected',
      );

      const login = () =>
        broker.request({
          method: 'POST',
          url: '/oauth/token',
          key: null,
          remoteAddress: '192.0.2.20',
          headers: FORM,
          payload: 'grant_type=client_credentials&client_id=nobody&client_secret=wrong',
        });
      assert.equal((await login()).statusCode, 401);
      assert.equal((await login()).statusCode, 401);
      assert.equal((await login()).statusCode, 429, 'agent logins are limited per address');
    } finally {
      await broker.close();
    }
  });
});

describe('guessing credentials over gRPC', () => {
  it('counts refused credentials with REST, and refuses the next guess with RESOURCE_EXHAUSTED', async () => {
    // gRPC calls were never counted: guesses went on without limit (2026-12-08).
    const broker = await startBroker({
      env: { RATE_LIMIT_ENABLED: 'true', RATE_LIMIT_AUTH_FAILURES_RPM: '3' },
    });
    const { server, address } = await startGrpc(broker);
    const client = new NexusClient(address);
    try {
      const wait = 60_000 - (Date.now() % 60_000);
      if (wait < 3_000) await new Promise((done) => setTimeout(done, wait + 50));
      const id = '00000000-0000-4000-8000-000000000000';
      // One refusal on REST from the gRPC client's address, two on gRPC: the same counters.
      const rest = await broker.request({
        method: 'GET',
        url: '/providers',
        key: 'nxa_guess',
        remoteAddress: '127.0.0.1',
      });
      assert.equal(rest.statusCode, 401);
      for (const guess of ['nxa_guess2', 'nxa_guess3']) {
        const refused = await client.fail('GetToken', { connection_id: id }, { 'x-api-key': guess });
        assert.equal(refused.code, grpc.status.UNAUTHENTICATED);
      }
      const limited = await client.fail('GetToken', { connection_id: id }, { 'x-api-key': 'nxa_guess4' });
      assert.equal(limited.code, grpc.status.RESOURCE_EXHAUSTED);
      assert.equal(limited.trailers['nexus-error-code'], 'rate_limited');
      // A key that works is never refused for others' failures at the same address.
      const served = await client.fail('GetToken', { connection_id: id }, { 'x-api-key': broker.adminKey });
      assert.equal(served.code, grpc.status.NOT_FOUND, 'authenticated, and told the connection is unknown');
    } finally {
      client.close();
      await server.close();
      await broker.close();
    }
  });
});

describe('rate limits with Redis unreachable', () => {
  it('lets requests through instead of holding them (fail open)', async () => {
    const broker = await startBroker({
      env: { RATE_LIMIT_ENABLED: 'true', REDIS_URL: 'redis://127.0.0.1:9', RATE_LIMIT_TOKEN_RPM: '1' },
    });
    try {
      for (let i = 0; i < 3; i++) {
        const res = await broker.request({
          method: 'GET',
          url: '/v1/token/00000000-0000-4000-8000-000000000000',
        });
        assert.equal(res.statusCode, 404, 'answered (no such connection), neither held nor limited');
      }
      assert.ok(
        broker.container.rateLimiter.storeFailures >= 3,
        'each uncounted request is counted as a store failure',
      );
    } finally {
      await broker.close();
    }
  });
});

describe('rate limits across two broker processes sharing Redis', { timeout: 120_000 }, () => {
  let db: TestDatabase;
  let redisUrl: string;
  const urls: string[] = [];
  const limitedKey = `nxtest_${randomBytes(16).toString('hex')}`;
  const otherKey = `nxtest_${randomBytes(16).toString('hex')}`;
  let id: string;
  const WINDOW_MS = 4_000;

  before(async () => {
    redisUrl = execFileSync('bash', [join(REPO_ROOT, 'scripts/services.sh'), 'ensure-redis'], {
      encoding: 'utf8',
    }).trim();
    db = await createTestDatabase();
    const suffix = randomBytes(4).toString('hex');
    const env = {
      ...baseEnv(),
      ...db.env,
      ...envKeys(),
      NEXUS_ENV: 'test',
      HOST: '127.0.0.1',
      // Fresh key names: the Redis counters of earlier runs never count for this one.
      API_KEYS: `limited-${suffix}:${limitedKey},other-${suffix}:${otherKey}`,
      ALLOWED_RETURN_DOMAINS: 'localhost',
      REDIS_URL: redisUrl,
      RATE_LIMIT_WINDOW_SECONDS: String(WINDOW_MS / 1000),
      RATE_LIMIT_TOKEN_RPM: '75', // 5 per 4-second window
      LOG_LEVEL: 'warn',
    };
    for (let i = 0; i < 2; i++) {
      const port = await freePort();
      const broker = spawnCli(['serve', '--no-worker'], { ...env, PORT: String(port) });
      for (let tries = 0; ; tries++) {
        const up = await fetch(`http://127.0.0.1:${port}/health`).then(
          (r) => r.ok,
          () => false,
        );
        if (up) break;
        if (tries > 150 || broker.exited) throw new Error(`broker ${i} did not start:\n${broker.stderr()}`);
        await new Promise((done) => setTimeout(done, 100));
      }
      urls.push(`http://127.0.0.1:${port}`);
    }
    const call = (method: string, path: string, body?: unknown, key: string | null = otherKey) =>
      fetch(`${urls[0]}${path}`, {
        method,
        headers: { 'content-type': 'application/json', ...(key ? { 'x-api-key': key } : {}) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    assert.equal(
      (await call('POST', '/providers', { profile: { name: 'crm', auth_type: 'api_key' } })).status,
      201,
    );
    const started = (await (
      await call('POST', '/v1/request-connection', {
        user_id: 'u1',
        provider_name: 'crm',
        return_url: RETURN,
      })
    ).json()) as { state: string; connection_id: string };
    const captured = await call(
      'POST',
      '/v1/capture-credential',
      { state: started.state, credentials: { api_key: 'k' } },
      null,
    );
    assert.equal(captured.status, 200);
    id = started.connection_id;
  });
  after(async () => {
    killAllChildren();
    await db?.drop();
  });

  const read = (broker: number, key: string) =>
    fetch(`${urls[broker]}/v1/token/${id}`, { headers: { 'x-api-key': key } }).then((r) => r.status);

  it('holds the limit for the pair, leaves other clients alone, and resets with the window', async () => {
    // Start just after a window boundary (windows are aligned on the clock, the same in both).
    await new Promise((done) => setTimeout(done, WINDOW_MS - (Date.now() % WINDOW_MS) + 50));
    const allowed = [
      await read(0, limitedKey),
      await read(1, limitedKey),
      await read(0, limitedKey),
      await read(1, limitedKey),
      await read(0, limitedKey),
    ];
    assert.deepEqual(allowed, [200, 200, 200, 200, 200], 'five reads, spread over both brokers');
    assert.equal(await read(1, limitedKey), 429, 'the sixth, on the other broker, is over the shared limit');
    assert.equal(await read(0, limitedKey), 429);
    assert.equal(await read(0, otherKey), 200, 'another client is not limited');
    assert.equal(await read(1, otherKey), 200);

    await new Promise((done) => setTimeout(done, WINDOW_MS - (Date.now() % WINDOW_MS) + 50));
    assert.equal(await read(1, limitedKey), 200, 'a new window, a new allowance');
  });
});
