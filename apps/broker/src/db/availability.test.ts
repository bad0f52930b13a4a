import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { commonError } from '../errors/common.errors.ts';
import { isDatabaseUnavailable, isUnstorableText } from './availability.ts';
import { coalescedReads } from './coalesce.ts';

/** A loopback port nothing listens on (it was free a moment ago). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const failureOf = (promise: Promise<unknown>) =>
  promise.then(
    () => assert.fail('expected a failure'),
    (error: unknown) => error,
  );

/** A SQLSTATE error as `pg` builds it from a server's ErrorResponse. */
function serverError(code: string, message = 'from the server'): pg.DatabaseError {
  const error = new pg.DatabaseError(message, 0, 'error');
  error.code = code;
  return error;
}

describe('isDatabaseUnavailable', () => {
  it('recognises a refused connection, as pg reports it', async () => {
    const client = new pg.Client({ host: '127.0.0.1', port: await closedPort(), user: 'u', database: 'd' });
    client.on('error', () => {});
    const error = await failureOf(client.connect());
    assert.equal((error as { code?: string }).code, 'ECONNREFUSED');
    assert.ok(isDatabaseUnavailable(error));
  });

  describe('a server that accepts connections and never answers (frozen)', () => {
    let silent: Server;
    const sockets = new Set<Socket>();
    before(async () => {
      silent = createServer((socket) => {
        sockets.add(socket);
        socket.on('error', () => {});
      });
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    });
    after(async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    });

    it('recognises pg-pool giving up on a new connection, and on a full pool', async () => {
      const { port } = silent.address() as { port: number };
      const pool = new pg.Pool({
        host: '127.0.0.1',
        port,
        user: 'u',
        database: 'd',
        max: 1,
        connectionTimeoutMillis: 200,
      });
      pool.on('error', () => {});
      const [connecting, waiting] = await Promise.all([failureOf(pool.connect()), failureOf(pool.connect())]);
      await pool.end();
      const messages = [(connecting as Error).message, (waiting as Error).message].sort();
      assert.deepEqual(messages, [
        'Connection terminated due to connection timeout',
        'timeout exceeded when trying to connect',
      ]);
      assert.ok(isDatabaseUnavailable(connecting));
      assert.ok(isDatabaseUnavailable(waiting));
    });
  });

  it('recognises a SQLite file whose write lock another connection holds (SQLITE_BUSY)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nexus-busy-'));
    const holder = new DatabaseSync(join(dir, 'db.sqlite'));
    const other = new DatabaseSync(join(dir, 'db.sqlite'));
    try {
      holder.exec('PRAGMA journal_mode = WAL; CREATE TABLE t (id INTEGER PRIMARY KEY)');
      other.exec('PRAGMA busy_timeout = 0');
      holder.exec('BEGIN IMMEDIATE');
      let busy: unknown;
      try {
        other.exec('BEGIN IMMEDIATE');
      } catch (error) {
        busy = error;
      }
      holder.exec('ROLLBACK');
      assert.equal((busy as { errcode?: number }).errcode, 5);
      assert.ok(isDatabaseUnavailable(busy));

      // A constraint violation is the request's problem, not the database's.
      other.exec('INSERT INTO t (id) VALUES (1)');
      let duplicate: unknown;
      try {
        other.exec('INSERT INTO t (id) VALUES (1)');
      } catch (error) {
        duplicate = error;
      }
      assert.equal((duplicate as { code?: string }).code, 'ERR_SQLITE_ERROR');
      assert.equal(isDatabaseUnavailable(duplicate), false);
    } finally {
      holder.close();
      other.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('recognises the SQLSTATEs of a server going away, restarting, full or cancelling', () => {
    for (const code of ['57P01', '57P02', '57P03', '53300', '57014', '08000', '08003', '08006', '08P01'])
      assert.ok(isDatabaseUnavailable(serverError(code)), code);
    for (const code of ['23505', '42P01', '40001', '40P01', '0A000', '22P02', '57P04', '08'])
      assert.equal(isDatabaseUnavailable(serverError(code)), false, code);
  });

  it('tells text the database cannot hold (a NUL) from every other failure, wrapped or not', () => {
    for (const code of ['22021', '22P05']) {
      assert.ok(isUnstorableText(serverError(code)), code);
      assert.ok(isUnstorableText(new Error('wrapped', { cause: serverError(code) })), `${code} as a cause`);
      assert.equal(isDatabaseUnavailable(serverError(code)), false, `${code} is not an outage`);
    }
    for (const code of ['23505', '22P02', '57P01', '08006'])
      assert.equal(isUnstorableText(serverError(code)), false, code);
  });

  it("recognises pg's own messages for a connection that died or an answer that never came", () => {
    for (const message of [
      'Connection terminated unexpectedly',
      'Connection terminated',
      'Query read timeout',
      'Client has encountered a connection error and is not queryable',
    ])
      assert.ok(isDatabaseUnavailable(new Error(message)), message);
    assert.equal(isDatabaseUnavailable(new Error('relation "x" does not exist')), false);
  });

  it('follows cause chains and the members of an AggregateError', async () => {
    const client = new pg.Client({ host: '127.0.0.1', port: await closedPort(), user: 'u', database: 'd' });
    client.on('error', () => {});
    const refused = await failureOf(client.connect());
    const wrapped = commonError('internal_error', {
      cause: new Error('loading the connection failed', { cause: refused }),
    });
    assert.ok(isDatabaseUnavailable(wrapped));
    assert.ok(isDatabaseUnavailable(new AggregateError([new Error('other'), refused])));
    assert.equal(isDatabaseUnavailable(commonError('internal_error', { cause: new Error('a bug') })), false);
  });

  it('is false for anything else, and terminates on cyclic or absurdly deep chains', () => {
    for (const value of [undefined, null, 'ECONNREFUSED', 42, {}, new TypeError('x'), { code: 'ENOENT' }])
      assert.equal(isDatabaseUnavailable(value), false, String(value));
    const a = new Error('a');
    const b = new Error('b', { cause: a });
    (a as { cause?: unknown }).cause = b;
    assert.equal(isDatabaseUnavailable(a), false);
    let deep: Error = serverError('57P01');
    for (let i = 0; i < 20; i++) deep = new Error(`wrapper ${i}`, { cause: deep });
    assert.equal(isDatabaseUnavailable(deep), false, 'beyond the depth a real wrapper reaches');
  });
});

describe('coalesced reads while the database is away', () => {
  it('fail every waiting key with the one failed query instead of asking again key by key', async () => {
    const calls: string[][] = [];
    const down = serverError('57P01', 'terminating connection due to administrator command');
    const load = coalescedReads(
      async (keys: string[]) => {
        calls.push(keys);
        throw down;
      },
      { maxBatch: 100, maxInFlight: 1 },
    );
    const results = await Promise.allSettled([load('a'), load('b'), load('c')]);
    assert.deepEqual(calls, [['a', 'b', 'c']]);
    for (const r of results) assert.equal(r.status === 'rejected' && r.reason, down);
  });

  it('still ask key by key after any other failure, so one bad key does not fail its neighbours', async () => {
    const calls: string[][] = [];
    const load = coalescedReads(
      async (keys: string[]) => {
        calls.push(keys);
        if (keys.includes('bad')) throw serverError('22P02', 'invalid input syntax');
        return new Map(keys.map((k) => [k, k.toUpperCase()]));
      },
      { maxBatch: 100, maxInFlight: 1 },
    );
    const results = await Promise.allSettled([load('a'), load('bad')]);
    assert.equal(calls.length, 3);
    assert.deepEqual(results[0], { status: 'fulfilled', value: 'A' });
    assert.equal(results[1]?.status, 'rejected');
  });
});
