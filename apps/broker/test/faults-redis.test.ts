/**
 * Fault: the Redis that holds the shared rate-limit counters goes away and comes back, under real
 * `nexus serve` processes (two on PostgreSQL, sharing the counters; one on SQLite) and a private
 * `redis-server` on a free port. While Redis is up the limit holds; while it is down (killed, then
 * hung) every request is still answered, none with a 5xx, each within a bounded time, and each
 * uncounted one shows in `nexus_rate_limit_store_failures`; once Redis is back on the same port the
 * brokers reconnect by themselves and the limit is enforced again (429 with Retry-After).
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  baseEnv,
  type CliProcess,
  envKeys,
  fetchWithin,
  freePort,
  killAllChildren,
  spawnCli,
} from './cli-helpers.ts';
import { createTestDatabase, DIALECT, type TestDatabase } from './harness.ts';
import { startRedis, stopRedis } from './redis-server.ts';

after(killAllChildren);

/** Token reads per client per window; the window is a minute, so the test fits in one or two. */
const LIMIT = 4;
/** How long any answer may take while Redis is down or hung: its 500 ms timeout, plus margin. */
const ANSWER_WITHIN_MS = 1_500;
/**
 * An answer that waited for Redis's 500 ms timeout. Once a broker has seen Redis fail it stops
 * asking for a second (REDIS_RETRY_MS; one request then asks again): such waits come at most once
 * a second per broker.
 */
const WAITED_MS = 450;
/**
 * From the start of one waited answer to the start of the broker's next wait: its 500 ms timeout,
 * then a second without asking Redis (1.5 s), less a margin for the work before each asks. A
 * broker that waited on every request would show ~1 s between its waits with two brokers taking
 * turns, and ~0.5 s with one.
 */
const RETRY_GAP_MS = 1_250;

describe('Redis goes down and comes back, with rate limits on', { timeout: 120_000 }, () => {
  let db: TestDatabase;
  let redisDir: string;
  let redisPort: number;
  let redis: ChildProcess | undefined;
  const brokers: CliProcess[] = [];
  const urls: string[] = [];
  const adminKey = `nxtest_${randomBytes(16).toString('hex')}`;
  /** The client being limited: an admin key of its own, so setup calls do not count. */
  const readerKey = `nxtest_${randomBytes(16).toString('hex')}`;
  let id: string;

  before(async () => {
    redisDir = mkdtempSync(join(tmpdir(), 'nexus-redis-'));
    redisPort = await freePort();
    redis = await startRedis(redisPort, redisDir);
    db = await createTestDatabase();
    const env = {
      ...baseEnv(),
      ...db.env,
      ...envKeys(),
      NEXUS_ENV: 'test',
      HOST: '127.0.0.1',
      API_KEYS: `admin:${adminKey},reader:${readerKey}`,
      ALLOWED_RETURN_DOMAINS: 'localhost',
      REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      RATE_LIMIT_ENABLED: 'true',
      RATE_LIMIT_WINDOW_SECONDS: '60',
      RATE_LIMIT_TOKEN_RPM: String(LIMIT),
      LOG_LEVEL: 'info',
    };
    // Two replicas share the counters on PostgreSQL; SQLite is one process's database.
    const replicas = DIALECT === 'postgres' ? 2 : 1;
    for (let i = 0; i < replicas; i++) {
      const port = await freePort();
      const broker = spawnCli(['serve', '--no-worker'], { ...env, PORT: String(port) });
      brokers.push(broker);
      await broker.waitFor('stdout', /"msg":"nexus ready"/, 20_000);
      urls.push(`http://127.0.0.1:${port}`);
    }
    const call = async (path: string, body: unknown, key: string | null = adminKey) => {
      const res = await fetchWithin(`${urls[0]}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(key ? { 'x-api-key': key } : {}) },
        body: JSON.stringify(body),
      });
      const text = await res.text();
      assert.ok(res.status < 300, `POST ${path}: ${res.status} ${text}`);
      return JSON.parse(text) as Record<string, string>;
    };
    await call('/providers', { profile: { name: 'crm', auth_type: 'api_key' } });
    const started = await call('/v1/request-connection', {
      user_id: 'u1',
      provider_name: 'crm',
      return_url: 'http://localhost:3000/done',
    });
    await call('/v1/capture-credential', { state: started.state, credentials: { api_key: 'k-1' } }, null);
    id = started.connection_id!;
  });
  after(async () => {
    killAllChildren();
    await stopRedis(redis);
    if (redisDir) rmSync(redisDir, { recursive: true, force: true });
    await db?.drop();
  });

  /** One token read by the limited client, on broker `i % replicas`: its status, Retry-After, time. */
  let turn = 0;
  async function read(): Promise<{
    status: number;
    retryAfter: string | null;
    ms: number;
    at: number;
    url: string;
    body: string;
  }> {
    const url = urls[turn++ % urls.length]!;
    const started = performance.now();
    const res = await fetchWithin(`${url}/v1/token/${id}`, { headers: { 'x-api-key': readerKey } }, 10_000);
    const body = await res.text();
    return {
      status: res.status,
      retryAfter: res.headers.get('retry-after'),
      ms: performance.now() - started,
      at: started,
      url,
      body,
    };
  }

  /** `nexus_rate_limit_store_failures` of every broker, summed. */
  async function storeFailures(): Promise<number> {
    let sum = 0;
    for (const url of urls) {
      const res = await fetchWithin(`${url}/metrics`, { headers: { 'x-api-key': adminKey } });
      const text = await res.text();
      assert.equal(res.status, 200, text);
      const line = text.split('\n').find((l) => l.startsWith('nexus_rate_limit_store_failures '));
      assert.ok(line, `no nexus_rate_limit_store_failures in /metrics of ${url}`);
      sum += Number(line.split(' ')[1]);
    }
    return sum;
  }

  async function ready(): Promise<number[]> {
    return Promise.all(urls.map(async (url) => (await fetchWithin(`${url}/ready`)).status));
  }

  /** Every answer within ANSWER_WITHIN_MS, and at most one a second per broker waited for Redis. */
  function assertBounded(answers: { ms: number; at: number; url: string }[], what: string) {
    const times = answers.map((r) => Math.round(r.ms));
    assert.ok(
      Math.max(...times) < ANSWER_WITHIN_MS,
      `${what}: every answer within ${ANSWER_WITHIN_MS} ms: ${times}`,
    );
    for (const url of urls) {
      const waits = answers.filter((r) => r.url === url && r.ms >= WAITED_MS);
      for (let i = 1; i < waits.length; i++) {
        const gap = waits[i]!.at - waits[i - 1]!.at;
        assert.ok(
          gap >= RETRY_GAP_MS,
          `${what}: requests do not each wait for Redis (${url} waited again ${Math.round(gap)} ms after the start of a wait): ${times} ms`,
        );
      }
    }
  }

  /** Reads until one is refused, at most `max` reads spaced `gapMs`: the refusal (or undefined). */
  async function readUntilLimited(max: number, gapMs: number) {
    for (let i = 0; i < max; i++) {
      const r = await read();
      assert.ok(r.status === 200 || r.status === 429, `status ${r.status}: ${r.body}`);
      if (r.status === 429) return r;
      await new Promise((done) => setTimeout(done, gapMs));
    }
    return undefined;
  }

  it('limits hold with Redis up; with it killed or hung requests are served, bounded and counted; back, it limits again', async () => {
    // A window boundary inside the first phase would reset the count: start well inside one.
    const left = 60_000 - (Date.now() % 60_000);
    if (left < 5_000) await new Promise((done) => setTimeout(done, left + 50));

    // Redis up: LIMIT reads pass, across the replicas; the next is refused.
    for (let i = 0; i < LIMIT; i++) assert.equal((await read()).status, 200, `read ${i + 1}`);
    const limited = await read();
    assert.equal(limited.status, 429, limited.body);
    assert.ok(Number(limited.retryAfter) >= 1, `Retry-After: ${limited.retryAfter}`);
    assert.equal(await storeFailures(), 0, 'no store failure while Redis answers');

    // Redis killed: every read is served (let through uncounted, past the limit), promptly.
    await stopRedis(redis, 'SIGKILL');
    const down = [];
    for (let i = 0; i < 3 * LIMIT; i++) down.push(await read());
    assert.deepEqual(
      down.map((r) => r.status),
      down.map(() => 200),
      'no 5xx and no 429: the limiter fails open',
    );
    assertBounded(down, 'Redis killed');
    assert.ok((await storeFailures()) >= 3 * LIMIT, 'each read let through is counted');
    assert.deepEqual(
      await ready(),
      urls.map(() => 200),
      'readiness does not depend on Redis',
    );
    for (const broker of brokers)
      await broker.waitFor('stdout', /rate-limit store \(Redis\) unavailable/, 5_000);

    // Redis back on the same port (empty): the brokers reconnect by themselves and limit again.
    redis = await startRedis(redisPort, redisDir);
    const back = await readUntilLimited(40, 250);
    assert.ok(back, 'the limit is enforced again within 10 s of Redis coming back');
    assert.ok(Number(back.retryAfter) >= 1, `Retry-After: ${back.retryAfter}`);
    // Each broker says so once a request of its own found Redis again.
    const recovered = /"let_through":\d+,"msg":"rate-limit store \(Redis\) answers again/;
    for (let i = 0; !brokers.every((b) => recovered.test(b.stdout())); i++) {
      assert.ok(
        i < 40,
        `every broker logs that Redis answers again:\n${brokers.map((b) => b.stdout()).join('\n')}`,
      );
      await read();
      await new Promise((done) => setTimeout(done, 250));
    }

    // Redis hung (SIGSTOP: the connection stays open, nothing answers, as in a network partition).
    const before = await storeFailures();
    redis.kill('SIGSTOP');
    try {
      const hung = [];
      for (let i = 0; i < 3 * LIMIT; i++) hung.push(await read());
      assert.deepEqual(
        hung.map((r) => r.status),
        hung.map(() => 200),
        'served while Redis hangs',
      );
      assertBounded(hung, 'Redis hung');
      assert.ok((await storeFailures()) - before >= 3 * LIMIT, 'each read let through is counted');
    } finally {
      redis.kill('SIGCONT');
    }
    const again = await readUntilLimited(40, 250);
    assert.ok(again, 'the limit is enforced again once Redis answers');
    assert.ok(Number(again.retryAfter) >= 1);
    for (const broker of brokers) assert.ok(!broker.exited, `a broker exited:\n${broker.stderr()}`);
  });
});
