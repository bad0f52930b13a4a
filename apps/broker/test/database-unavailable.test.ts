/**
 * A database that cannot answer is a `503 database_unavailable` with Retry-After (gRPC:
 * UNAVAILABLE), never a `500`: the mapping of one classification (db/availability.ts) on both
 * surfaces, PostgreSQL's statement timeout (which migrations escape), and a SQLite file whose
 * write lock another connection holds, as `nexus rewrap` or a second broker would. The outage
 * under load, with PostgreSQL stopped and frozen, is in faults-database.test.ts.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import Fastify from 'fastify';
import { sql } from 'kysely';
import pg from 'pg';
import { loadConfig } from '../src/config/load.ts';
import { isDatabaseUnavailable } from '../src/db/availability.ts';
import { openDatabase } from '../src/db/client.ts';
import { commonError } from '../src/errors/common.errors.ts';
import { asNexusError, grpcCode } from '../src/grpc/errors.ts';
import { installErrorHandling } from '../src/http/error-handler.ts';
import { freePort } from './cli-helpers.ts';
import { DIALECT, json, startBroker, type TestBroker } from './harness.ts';

const PG_ONLY = DIALECT !== 'postgres' && 'needs PostgreSQL: runs in `npm run test:pg`';
const SQLITE_ONLY =
  DIALECT !== 'sqlite' && 'a second connection holding the SQLite write lock: runs in `npm test`';

const RETURN = 'http://localhost:3000/done';

describe('the answer to an unavailable database (REST and gRPC, one classification)', () => {
  /** What pg throws when nothing listens on the database's port. */
  async function refused(): Promise<Error> {
    const client = new pg.Client({ host: '127.0.0.1', port: await freePort(), user: 'u', database: 'd' });
    client.on('error', () => {});
    return client.connect().then(
      () => assert.fail('connected to a closed port'),
      (error: Error) => error,
    );
  }

  it('REST: 503 database_unavailable with Retry-After, bare or wrapped by a service; other failures stay 500', async () => {
    const error = await refused();
    const app = Fastify({ logger: false });
    installErrorHandling(app);
    app.get('/bare', async () => {
      throw error;
    });
    app.get('/wrapped', async () => {
      throw commonError('internal_error', { cause: new Error('reading the row failed', { cause: error }) });
    });
    app.get('/bug', async () => {
      throw new TypeError('a bug');
    });
    for (const url of ['/bare', '/wrapped']) {
      const res = await app.inject({ url });
      assert.equal(res.statusCode, 503, url);
      assert.equal(res.headers['retry-after'], '5');
      const body = json<{ error: string; details: unknown }>(res);
      assert.equal(body.error, 'database_unavailable');
      assert.deepEqual(body.details, { retry_after_seconds: 5 });
      assert.ok(!res.body.includes('ECONNREFUSED'), 'the driver message stays in the log');
    }
    const bug = await app.inject({ url: '/bug' });
    assert.equal(bug.statusCode, 500);
    assert.equal(bug.headers['retry-after'], undefined);
    await app.close();
  });

  it('gRPC: UNAVAILABLE with the same code', async () => {
    const mapped = asNexusError(await refused());
    assert.equal(mapped.code, 'database_unavailable');
    assert.equal(grpcCode(mapped), grpc.status.UNAVAILABLE);
    assert.equal(grpcCode(asNexusError(new TypeError('a bug'))), grpc.status.INTERNAL);
  });
});

describe('query timeout on a live PostgreSQL', {
  skip: PG_ONLY,
}, () => {
  let broker: TestBroker;
  before(async () => {
    broker = await startBroker({ env: { DATABASE_QUERY_TIMEOUT_MS: '300' } });
  });
  after(() => broker.close());

  it('cuts a statement that runs too long (database_unavailable) but never a migration session', async () => {
    const db = broker.container.db;
    const started = performance.now();
    const cut = await sql`SELECT pg_sleep(2)`.execute(db.kysely).then(
      () => undefined,
      (error: unknown) => error,
    );
    assert.ok(isDatabaseUnavailable(cut), `a 2 s statement under a 300 ms timeout: ${cut}`);
    assert.equal((cut as { code?: string }).code, '57014', 'the server cancelled it (statement_timeout)');
    assert.ok(performance.now() - started < 1_500);
    // The pool still serves.
    const { rows } = await sql<{ one: number }>`SELECT 1 AS one`.execute(db.kysely);
    assert.equal(rows[0]?.one, 1);

    // Migrations run on a session of their own, without the statement timeout.
    await db.scriptSession(async (session) => {
      await session.exec('SELECT pg_sleep(0.8)');
      assert.deepEqual(await session.query('SELECT 2 AS two'), [{ two: 2 }]);
    });
  });

  it('also applies to a broker opened from the configuration alone (no pool option left unset)', async () => {
    const db = openDatabase(loadConfig(broker.env).database);
    try {
      await assert.rejects(db.prepared('SELECT pg_sleep(1)', []), (error) => isDatabaseUnavailable(error));
      await db.ping();
    } finally {
      await db.close();
    }
  });
});

describe('SQLite file locked by another process', { skip: SQLITE_ONLY, timeout: 60_000 }, () => {
  let broker: TestBroker;
  let connectionId: string;
  before(async () => {
    broker = await startBroker();
    const provider = await broker.request({
      method: 'POST',
      url: '/providers',
      payload: { profile: { name: 'static', auth_type: 'api_key' } },
    });
    assert.equal(provider.statusCode, 201, provider.body);
    const started = json<{ state: string; connection_id: string }>(
      await broker.request({
        method: 'POST',
        url: '/v1/request-connection',
        payload: { user_id: 'u1', provider_name: 'static', return_url: RETURN },
      }),
    );
    const captured = await broker.request({
      method: 'POST',
      url: '/v1/capture-credential',
      key: null,
      payload: { state: started.state, credentials: { api_key: 'sk_locked' } },
    });
    assert.equal(captured.statusCode, 200, captured.body);
    connectionId = started.connection_id;
  });
  after(() => broker.close());

  it('answers 503 database_unavailable while the write lock is held, and serves again after', async () => {
    // Another connection to the file (as `nexus rewrap` or a second broker would hold it) takes
    // the write lock; the broker's audit write waits its busy timeout, then gets SQLITE_BUSY.
    const other = new DatabaseSync(join(broker.db.dataDir, 'nexus.db'));
    other.exec('BEGIN IMMEDIATE');
    let locked: Awaited<ReturnType<TestBroker['request']>>;
    try {
      locked = await broker.request({
        method: 'GET',
        url: `/v1/token/${connectionId}`,
        headers: { 'x-request-id': 'faults-sqlite-locked' },
      });
    } finally {
      other.exec('ROLLBACK');
      other.close();
    }
    assert.equal(locked.statusCode, 503, locked.body);
    assert.equal(json(locked).error, 'database_unavailable');
    assert.equal(locked.headers['retry-after'], '5');

    const served = await broker.request({
      method: 'GET',
      url: `/v1/token/${connectionId}`,
      headers: { 'x-request-id': 'faults-sqlite-served' },
    });
    assert.equal(served.statusCode, 200, served.body);
    const events = await broker.container.db.kysely
      .selectFrom('audit_events')
      .select('request_id')
      .where('action', '=', 'connection.token_read')
      .where('request_id', 'in', ['faults-sqlite-locked', 'faults-sqlite-served'])
      .execute();
    // The refused read left no event; the served one has its event.
    assert.deepEqual(
      events.map((e) => e.request_id),
      ['faults-sqlite-served'],
    );
    // Logged as a warning with the driver's own words, found under the wrapping.
    const line = broker.logs.find((l) => l.includes('"msg":"database unavailable"'));
    assert.ok(line, 'the refusal is logged as the database being unavailable');
    const logged = JSON.parse(line) as { level: number; cause: { message: string; code: string } };
    assert.equal(logged.level, 40);
    assert.deepEqual(logged.cause, { message: 'database is locked', code: 'ERR_SQLITE_ERROR' });
  });
});
