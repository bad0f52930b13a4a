/**
 * The broker while its PostgreSQL is away (issue "Refresh you can trust"). A real `nexus serve`
 * under a steady load of token reads (REST and gRPC) and writes, on a private cluster that is
 * stopped and restarted, then frozen (SIGSTOP) and thawed: every answer is a success or a prompt
 * `503 database_unavailable` with Retry-After (gRPC: UNAVAILABLE), `/ready` follows the database,
 * the broker recovers without a restart, every token it handed out has its audit event, and the
 * background jobs log each outage twice (start, end) instead of once per poll.
 * PostgreSQL only by nature; database-unavailable.test.ts has the cases that run on both.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import pg from 'pg';
import {
  baseEnv,
  type CliProcess,
  envKeys,
  freePort,
  killAllChildren,
  runCli,
  show,
  spawnCli,
} from './cli-helpers.ts';
import { type Failure, NexusClient } from './grpc-client.ts';
import { DIALECT } from './harness.ts';
import { privatePostgres } from './private-postgres.ts';

after(killAllChildren);

const PG_ONLY =
  DIALECT !== 'postgres' &&
  'stops and freezes a PostgreSQL server of its own: PostgreSQL-only, runs in `npm run test:pg`';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const RETURN = 'http://localhost:3000/done';

/** The broker's database timeouts in this test: short, so that the outages stay short too. */
const CONNECT_TIMEOUT_MS = 1_500;
const QUERY_TIMEOUT_MS = 2_500;
/**
 * The longest an answer may take during an outage: a request waits at most for one statement
 * (pool wait, plus the query timeout and its 1 s grace) and one audit batch before it, then its
 * own. Generous; a hang is caught by the client timeout below and fails the test.
 */
const ANSWER_BOUND_MS = 15_000;
const CLIENT_TIMEOUT_MS = 25_000;
/** Pause between two requests of one load loop. */
const PACE_MS = 60;

interface Answer {
  readonly kind: 'read' | 'write' | 'grpc';
  /** HTTP status, a gRPC status name, or `timeout` / `network` when no answer came. */
  readonly status: number | string;
  readonly error?: string | undefined;
  readonly retryAfter?: string | null;
  readonly ms: number;
  readonly requestId: string;
  readonly at: number;
}

describe('PostgreSQL stopped and frozen under load', { skip: PG_ONLY, timeout: 150_000 }, () => {
  // The cluster's directory belongs to the postgres user; the broker's data directory to us.
  const dir = join(tmpdir(), `nexus-faults-pg-${randomBytes(6).toString('hex')}`);
  const cluster = privatePostgres(dir);
  const dataDir = mkdtempSync(join(tmpdir(), 'nexus-faults-'));
  const adminKey = `faults-admin-${randomBytes(16).toString('hex')}`;
  let env: Record<string, string>;
  let broker: CliProcess;
  let base: string;
  let grpcClient: NexusClient;
  let databaseUrl: string;
  const connections: string[] = [];

  const request = async (path: string, init: RequestInit = {}) =>
    fetch(`${base}${path}`, {
      ...init,
      signal: AbortSignal.timeout(CLIENT_TIMEOUT_MS),
      headers: { 'x-api-key': adminKey, 'content-type': 'application/json', ...(init.headers ?? {}) },
    });

  before(async () => {
    const [pgPort, port, grpcPort] = [await freePort(), await freePort(), await freePort()];
    databaseUrl = await cluster.init(pgPort);
    env = {
      ...baseEnv(),
      ...envKeys(),
      NEXUS_ENV: 'test',
      NEXUS_DATA_DIR: dataDir,
      API_KEYS: `ops:${adminKey}`,
      DATABASE_URL: databaseUrl,
      DATABASE_POOL_MAX: '5',
      DATABASE_CONNECT_TIMEOUT_MS: String(CONNECT_TIMEOUT_MS),
      DATABASE_QUERY_TIMEOUT_MS: String(QUERY_TIMEOUT_MS),
      HOST: '127.0.0.1',
      PORT: String(port),
      GRPC_PORT: String(grpcPort),
      RATE_LIMIT_ENABLED: 'false',
      NEXUS_WORKER_POLL_MS: '500',
      LOG_LEVEL: 'info',
    };
    broker = spawnCli(['serve'], env);
    await broker.waitFor('stdout', /"msg":"nexus ready"/, 30_000);
    base = `http://127.0.0.1:${port}`;
    grpcClient = new NexusClient(`127.0.0.1:${grpcPort}`);

    const provider = await request('/providers', {
      method: 'POST',
      body: JSON.stringify({ profile: { name: 'static', auth_type: 'api_key' } }),
    });
    assert.equal(provider.status, 201, await provider.text());
    for (let i = 0; i < 3; i++) {
      const started = await request('/v1/request-connection', {
        method: 'POST',
        body: JSON.stringify({ user_id: `w${i}`, provider_name: 'static', return_url: RETURN }),
      });
      assert.equal(started.status, 200, await started.clone().text());
      const { state, connection_id } = (await started.json()) as { state: string; connection_id: string };
      const captured = await request('/v1/capture-credential', {
        method: 'POST',
        body: JSON.stringify({ state, credentials: { api_key: `sk_static_${i}` } }),
      });
      assert.equal(captured.status, 200, await captured.text());
      connections.push(connection_id);
    }
  });

  after(async () => {
    grpcClient?.close();
    if (broker !== undefined && !broker.exited) {
      broker.kill('SIGTERM');
      await broker.wait(20_000).catch(() => broker.kill('SIGKILL'));
    }
    await cluster.destroy();
    rmSync(dataDir, { recursive: true, force: true });
  });

  /** One HTTP call of the load, timed, with what a client would look at. */
  async function httpCall(kind: 'read' | 'write', i: number): Promise<Answer> {
    const requestId = `faults-${randomUUID()}`;
    const started = performance.now();
    const at = Date.now();
    try {
      const res =
        kind === 'read'
          ? await request(`/v1/token/${connections[i % connections.length]}`, {
              headers: { 'x-request-id': requestId },
            })
          : await request('/v1/request-connection', {
              method: 'POST',
              headers: { 'x-request-id': requestId },
              body: JSON.stringify({
                user_id: `load-${i % 50}`,
                provider_name: 'static',
                return_url: RETURN,
              }),
            });
      const body = (await res.json()) as { error?: string };
      return {
        kind,
        status: res.status,
        error: body.error,
        retryAfter: res.headers.get('retry-after'),
        ms: performance.now() - started,
        requestId,
        at,
      };
    } catch (error) {
      const timedOut = (error as Error).name === 'TimeoutError';
      return {
        kind,
        status: timedOut ? 'timeout' : 'network',
        error: String(error),
        ms: performance.now() - started,
        requestId,
        at,
      };
    }
  }

  async function grpcCall(i: number): Promise<Answer> {
    const requestId = `faults-${randomUUID()}`;
    const started = performance.now();
    const at = Date.now();
    try {
      await grpcClient.call(
        'GetToken',
        { connection_id: connections[i % connections.length] },
        { 'x-api-key': adminKey, 'x-request-id': requestId },
      );
      return { kind: 'grpc', status: 'OK', ms: performance.now() - started, requestId, at };
    } catch (thrown) {
      const failure = thrown as Failure;
      return {
        kind: 'grpc',
        status: grpc.status[failure.code] ?? String(thrown),
        error: failure.trailers?.['nexus-error-code'],
        ms: performance.now() - started,
        requestId,
        at,
      };
    }
  }

  /** Runs `call` in a loop until stopped; every answer is kept. */
  function loadLoop(answers: Answer[], call: (i: number) => Promise<Answer>) {
    let stopped = false;
    const done = (async () => {
      for (let i = 0; !stopped; i++) {
        answers.push(await call(i));
        await sleep(PACE_MS);
      }
    })();
    return async () => {
      stopped = true;
      await done;
    };
  }

  const readyStatus = async () => {
    try {
      const res = await fetch(`${base}/ready`, { signal: AbortSignal.timeout(10_000) });
      await res.body?.cancel();
      return res.status;
    } catch {
      return 0;
    }
  };

  /** `/ready` answers, polled from `settleMs` after the outage began until `untilMs` after. */
  async function readyDuring(untilMs: number, settleMs = 1_000): Promise<number[]> {
    const began = Date.now();
    await sleep(settleMs);
    const seen: number[] = [];
    while (Date.now() - began < untilMs) {
      seen.push(await readyStatus());
      await sleep(500);
    }
    return seen;
  }

  /** Waits for `/ready` 200 and a token read 200 (the broker is never restarted). */
  async function recovered(what: string): Promise<number> {
    const began = Date.now();
    for (;;) {
      if ((await readyStatus()) === 200 && (await httpCall('read', 0)).status === 200)
        return Date.now() - began;
      if (Date.now() - began > 30_000) throw new Error(`no recovery within 30 s after ${what}`);
      await sleep(250);
    }
  }

  it('answers 2xx or a prompt 503 database_unavailable, recovers by itself, and loses no audit event', async (t) => {
    const answers: Answer[] = [];
    const stops = [
      loadLoop(answers, (i) => httpCall('read', i)),
      loadLoop(answers, (i) => httpCall('read', i + 1)),
      loadLoop(answers, (i) => httpCall('write', i)),
      loadLoop(answers, (i) => grpcCall(i)),
    ];
    const phases: { name: string; from: number; to: number }[] = [];
    try {
      await sleep(2_000);
      const warm = answers.length;
      assert.ok(warm > 10, `the load runs (${warm} answers in 2 s)`);

      // (1) A restart: `pg_ctl stop -m fast` ends every session, then nothing listens.
      let from = Date.now();
      await cluster.stop();
      const readyWhileStopped = await readyDuring(12_000);
      await cluster.start();
      phases.push({ name: 'stopped', from, to: Date.now() });
      const afterRestart = await recovered('the restart');
      // A while of normal service in between, so that the two outages are two.
      await sleep(2_000);

      // (2) A freeze: connections stay open, nothing answers.
      from = Date.now();
      await cluster.freeze();
      const readyWhileFrozen = await readyDuring(16_000);
      await cluster.thaw();
      phases.push({ name: 'frozen', from, to: Date.now() });
      const afterThaw = await recovered('the thaw');
      await sleep(2_000);

      assert.ok(readyWhileStopped.length >= 3, `ready probes while stopped: ${readyWhileStopped}`);
      assert.ok(
        readyWhileStopped.every((s) => s === 503),
        `/ready while stopped: ${readyWhileStopped}`,
      );
      assert.ok(readyWhileFrozen.length >= 3, `ready probes while frozen: ${readyWhileFrozen}`);
      assert.ok(
        readyWhileFrozen.every((s) => s === 503),
        `/ready while frozen: ${readyWhileFrozen}`,
      );
      assert.ok(afterRestart < 30_000 && afterThaw < 30_000);
    } finally {
      await Promise.all(stops.map((stop) => stop()));
    }

    for (const phase of phases) {
      const inside = answers.filter((a) => a.at >= phase.from && a.at <= phase.to);
      const refused = inside.filter((a) => a.status === 503 || a.status === 'UNAVAILABLE');
      t.diagnostic(
        `${phase.name} ${Math.round((phase.to - phase.from) / 1000)} s: ${inside.length} answers, ${refused.length} refused, slowest ${Math.round(Math.max(0, ...inside.map((a) => a.ms)))} ms`,
      );
    }
    const describeAnswer = (a: Answer) =>
      `${a.kind} ${a.status} ${a.error ?? ''} after ${Math.round(a.ms)} ms (retry-after ${a.retryAfter}) at +${a.at - answers[0]!.at} ms`;
    const bad = answers.filter((a) => {
      if (a.ms > ANSWER_BOUND_MS) return true;
      if (a.kind === 'grpc')
        return !(a.status === 'OK' || (a.status === 'UNAVAILABLE' && a.error === 'database_unavailable'));
      if (typeof a.status !== 'number') return true;
      if (a.status >= 200 && a.status < 300) return false;
      return !(a.status === 503 && a.error === 'database_unavailable' && a.retryAfter === '5');
    });
    assert.deepEqual(bad.slice(0, 20).map(describeAnswer), [], `${bad.length} bad answers`);

    // Each outage was felt (503s inside it) and each was followed by successes of every kind.
    for (const phase of phases) {
      const inside = answers.filter((a) => a.at >= phase.from && a.at <= phase.to);
      assert.ok(
        inside.some((a) => a.status === 503),
        `no 503 while ${phase.name}: ${inside.slice(0, 5).map(describeAnswer)}`,
      );
      assert.ok(
        inside.some((a) => a.status === 'UNAVAILABLE'),
        `no gRPC UNAVAILABLE while ${phase.name}`,
      );
      const later = answers.filter((a) => a.at > phase.to + 1_000);
      for (const kind of ['read', 'write', 'grpc'] as const)
        assert.ok(
          later.some((a) => a.kind === kind && (a.status === 200 || a.status === 'OK')),
          `no successful ${kind} after ${phase.name}`,
        );
    }
    assert.ok(!broker.exited, `the broker exited:\n${broker.stderr()}`);

    // Every token handed out, over REST or gRPC, has its audit event.
    const delivered = answers
      .filter((a) => (a.kind === 'read' && a.status === 200) || (a.kind === 'grpc' && a.status === 'OK'))
      .map((a) => a.requestId);
    assert.ok(delivered.length > 50, `${delivered.length} tokens delivered`);
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      const { rows } = await client.query<{ request_id: string }>(
        "SELECT request_id FROM audit_events WHERE action = 'connection.token_read' AND request_id = ANY($1)",
        [delivered],
      );
      const audited = new Set(rows.map((r) => r.request_id));
      const missing = delivered.filter((id) => !audited.has(id));
      assert.deepEqual(
        missing.slice(0, 10),
        [],
        `${missing.length} of ${delivered.length} reads lack their event`,
      );
    } finally {
      await client.end();
    }
    // And the hash chain, extended by batches that failed and batches that won, is one chain.
    const verified = await runCli(['audit', 'verify'], env, 60_000);
    assert.equal(verified.code, 0, show(verified));

    // The background jobs logged each outage once at its start and once at its end, not per poll.
    const lines = broker
      .stdout()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg?: string; level?: number });
    const down = lines.filter((l) => l.msg?.startsWith('database unavailable: background jobs')).length;
    const up = lines.filter((l) => l.msg?.startsWith('database available again')).length;
    assert.ok(
      down >= 2 && down <= 6,
      `${down} outage lines from the background jobs:\n${lines
        .filter(
          (l) =>
            /database|fail/.test(l.msg ?? '') && l.msg !== 'database unavailable' && l.msg !== 'call failed',
        )
        .map((l) => JSON.stringify(l).slice(0, 300))
        .join('\n')}`,
    );
    assert.ok(up >= 2 && up <= 6, `${up} recovery lines from the background jobs`);
    // REST logs each refusal as a warning, without a stack (gRPC's 'call failed' is not ours to judge).
    assert.equal(lines.filter((l) => l.msg === 'request failed').length, 0, 'no REST request failed');
    assert.ok(lines.some((l) => l.msg === 'database unavailable' && l.level === 40));
  });
});
