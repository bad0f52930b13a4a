import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import {
  CompiledQuery,
  Kysely,
  PostgresDialect,
  type PostgresPool,
  type PostgresPoolClient,
  SqliteDialect,
} from 'kysely';
import type pg from 'pg';
import type { DatabaseConfig } from '../config/load.ts';
import { isDatabaseUnavailable } from './availability.ts';
import type { DB } from './schema.ts';
import { openSqlite, openSqliteReader } from './sqlite-driver.ts';

export type Dialect = 'sqlite' | 'postgres';

/** Runs SQL text outside Kysely: multi-statement migration scripts and the ledger. */
export interface ScriptSession {
  exec(sql: string): Promise<void>;
  /** `?` placeholders on both dialects. */
  query<T>(sql: string, params?: readonly unknown[]): Promise<T[]>;
}

export interface Database {
  readonly kysely: Kysely<DB>;
  readonly dialect: Dialect;
  /** Cheap reachability check for `/ready` and `doctor`. */
  ping(): Promise<void>;
  /**
   * Runs a hot-path statement whose text never changes (written for this dialect, usually a Kysely
   * query compiled once) outside any transaction. On PostgreSQL it is a named prepared statement,
   * parsed and planned once per pooled connection instead of on every call; the SQLite driver
   * caches every statement already. `affected` counts rows inserted, updated or deleted.
   */
  prepared<R>(sql: string, params: readonly unknown[]): Promise<{ rows: R[]; affected: number }>;
  /**
   * Runs `fn` on one dedicated session. On PostgreSQL the session holds an advisory lock, so two
   * replicas starting together do not both migrate.
   */
  scriptSession<T>(fn: (session: ScriptSession) => Promise<T>): Promise<T>;
  /**
   * SQLite only (undefined on PostgreSQL): runs `fn` in one write transaction (BEGIN IMMEDIATE …
   * COMMIT, ROLLBACK if it throws) on the connection Kysely writes through, once Kysely has
   * finished with it, synchronously: nothing else runs on the connection until it returns, and
   * its statements are prepared once by text. For the audit batch, where Kysely's transaction
   * (a promise chain per statement, a multi-row INSERT compiled per batch) cost more than SQLite.
   */
  readonly writeSync?: <T>(fn: (sql: SyncStatements) => T) => Promise<T>;
  close(): Promise<void>;
}

/** Statements run synchronously inside `Database.writeSync` (`?` placeholders). */
export interface SyncStatements {
  all<R>(sql: string, params: readonly unknown[]): R[];
  run(sql: string, params: readonly unknown[]): void;
}

type PostgresConfig = Extract<DatabaseConfig, { kind: 'postgres' }>;

const MIGRATION_LOCK = 7_264_013_310; // arbitrary, fixed: pg_advisory_lock key for migrations

function toPgPlaceholders(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

/** `pg` is loaded only when PostgreSQL is configured: the embedded default never pays for it. */
const loadPg = () => createRequire(import.meta.url)('pg') as typeof pg;

/**
 * How much longer than `statement_timeout` the client waits for an answer. A live server cancels
 * a slow statement itself and keeps the connection; only a server that cannot answer at all
 * (frozen, or the network gone) leaves the client to give up, and then the connection is dropped.
 */
const READ_GRACE_MS = 1_000;

/**
 * Kysely's view of the pool. `pg` gives a connection back to the pool after a client-side timeout
 * as if nothing happened, with the unanswered statement still ahead of the next one; and Kysely
 * releases connections without saying that a statement failed. So: once a statement on a
 * connection failed because the database is unavailable, later statements on it (a ROLLBACK)
 * fail at once instead of queueing behind it, and the release removes it from the pool.
 */
function kyselyPool(pool: pg.Pool): PostgresPool {
  const views = new WeakMap<pg.PoolClient, PostgresPoolClient>();
  const view = (client: pg.PoolClient): PostgresPoolClient => {
    let broken: Error | undefined;
    const query = (sql: string, params: readonly unknown[]) => {
      if (broken !== undefined) return Promise.reject(broken);
      return client.query(sql, [...params]).catch((error: Error) => {
        if (isDatabaseUnavailable(error)) broken = error;
        throw error;
      });
    };
    return {
      query: query as unknown as PostgresPoolClient['query'],
      // `processID` lets Kysely cancel a running query; a getter, since it is set on connect.
      get processID() {
        return (client as { processID?: number }).processID;
      },
      release(destroy?: boolean) {
        client.release(broken ?? destroy === true);
      },
    };
  };
  return {
    options: pool.options,
    async connect() {
      const client = await pool.connect();
      let found = views.get(client);
      if (found === undefined) {
        found = view(client);
        views.set(client, found);
      }
      return found;
    },
    end: () => pool.end(),
  };
}

/**
 * `pg`'s Client, closing its socket when the connection fails before it is established. `pg`
 * leaves it open after some failures (a server asking for a password the URL does not have): the
 * server then holds it until its authentication timeout, and a failed start-up could not exit.
 */
function closingClient(Base: typeof pg.Client): typeof pg.Client {
  type Callback = Parameters<pg.Client['connect']>[0] & ((err: Error | null, c?: pg.Client) => void);
  class ClosingClient extends Base {
    override connect(): Promise<pg.Client>;
    override connect(callback: Callback): void;
    override connect(callback?: Callback): Promise<pg.Client> | undefined {
      const close = () =>
        (this as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
      if (callback === undefined)
        return super.connect().catch((error: unknown) => {
          close();
          throw error;
        });
      super.connect((error: Error | null, client?: pg.Client) => {
        if (error) close();
        callback(error, client);
      });
      return undefined;
    }
  }
  return ClosingClient;
}

function openPostgres(url: string, config: PostgresConfig): Database {
  const pgModule = loadPg();
  const { Pool, types } = pgModule;
  const Client = closingClient(pgModule.Client);
  const common = {
    connectionString: url,
    connectionTimeoutMillis: config.connectTimeoutMs,
    // A connection to a host that vanished without closing it (a network partition, a killed VM)
    // is found dead by the kernel instead of looking idle and healthy forever.
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    types: {
      // BIGINT columns hold epoch milliseconds and sequence numbers, all below 2^53.
      getTypeParser: ((oid: number, format?: string) =>
        oid === 20
          ? (v: string) => Number(v)
          : types.getTypeParser(oid, format as 'text')) as typeof types.getTypeParser,
    },
  };
  const pool = new Pool({
    ...common,
    Client,
    max: config.poolMax,
    idleTimeoutMillis: 30_000,
    // Bounded statements, a bounded wait for a server that cannot answer (db/availability.ts
    // turns both into 503), and no transaction left open by a crashed request.
    statement_timeout: config.queryTimeoutMs,
    query_timeout: config.queryTimeoutMs + READ_GRACE_MS,
    idle_in_transaction_session_timeout: 60_000,
  });
  // A connection can break while a request holds it between two statements; pg reports that as
  // an 'error' event, which would end the process with nobody listening. The statement that
  // follows fails anyway, and the pool drops the connection when it comes back.
  pool.on('connect', (client) => client.on('error', () => {}));
  // An idle client losing its connection must not crash the process; the pool replaces it.
  pool.on('error', () => {});
  const kysely = new Kysely<DB>({ dialect: new PostgresDialect({ pool: kyselyPool(pool) }) });
  // Statement names derive from the text, so every pooled connection agrees on them.
  const names = new Map<string, string>();
  return {
    kysely,
    dialect: 'postgres',
    async ping() {
      await pool.query('SELECT 1');
    },
    async prepared<R>(text: string, params: readonly unknown[]) {
      let name = names.get(text);
      if (name === undefined) {
        name = `nexus_${createHash('sha256').update(text).digest('hex').slice(0, 24)}`;
        names.set(text, name);
      }
      const query = { name, text, values: [...params] };
      for (let attempt = 0; ; attempt++) {
        try {
          // pool.query releases the connection with the error, so a timed-out one is dropped.
          const result = await pool.query(query);
          return { rows: result.rows as R[], affected: result.rowCount ?? 0 };
        } catch (error) {
          // "cached plan must not change result type": a migration changed a table under a
          // statement this connection prepared before it. The pool drops a connection whose query
          // failed, statements and all, so the next try prepares afresh on another connection.
          const { code, message } = error as { code?: string; message?: string };
          const stalePlan = code === '0A000' && /cached plan/.test(message ?? '');
          if (!stalePlan || attempt >= config.poolMax) throw error;
        }
      }
    },
    async scriptSession(fn) {
      // A connection of its own, outside the pool and its timeouts: a migration that rewrites a
      // large table, or waits for another replica's migration lock, must not be cut after
      // DATABASE_QUERY_TIMEOUT_MS. A server-side default statement_timeout is lifted too.
      const client = new Client(common);
      client.on('error', () => {});
      await client.connect();
      try {
        await client.query('SET statement_timeout = 0');
        await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
        try {
          return await fn({
            exec: async (sql) => {
              await client.query(sql);
            },
            query: async <T>(sql: string, params: readonly unknown[] = []) =>
              (await client.query(toPgPlaceholders(sql), [...params])).rows as T[],
          });
        } finally {
          await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => {});
        }
      } finally {
        await client.end().catch(() => {});
      }
    },
    async close() {
      await kysely.destroy();
      // Kysely ends the pool only if it ran a query itself; ping and prepared use it directly.
      if (!pool.ended) await pool.end();
    },
  };
}

function openSqliteDatabase(file: string): Database {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const { kysely: driverDb, raw } = openSqlite(file);
  // The file holds key hashes and ciphertexts: owner only (SQLite gives -wal/-shm the same mode).
  chmodSync(file, 0o600);
  const kysely = new Kysely<DB>({ dialect: new SqliteDialect({ database: driverDb }) });
  const reader = openSqliteReader(file);
  // The driver's own statements, prepared once per text (sqlite-driver.ts), on the same connection.
  const writer: SyncStatements = {
    all: <R>(sql: string, params: readonly unknown[]) => driverDb.prepare(sql).all(params) as R[],
    run: (sql, params) => {
      driverDb.prepare(sql).run(params);
    },
  };
  return {
    kysely,
    dialect: 'sqlite',
    async ping() {
      raw.prepare('SELECT 1').get();
    },
    async prepared<R>(text: string, params: readonly unknown[]) {
      // Point reads go to the read-only connection (sqlite-driver.ts); writes through Kysely.
      if (/^\s*select\b/i.test(text)) return { rows: reader.all(text, params) as R[], affected: 0 };
      const result = await kysely.executeQuery<R>(CompiledQuery.raw(text, [...params]));
      return { rows: [...result.rows], affected: Number(result.numAffectedRows ?? 0n) };
    },
    async writeSync<T>(fn: (sql: SyncStatements) => T): Promise<T> {
      // Kysely's SQLite driver lends its one connection to one user at a time (a mutex): holding
      // it, no Kysely transaction is open and none starts until this returns.
      return kysely.connection().execute(async () => {
        writer.run('begin immediate', []);
        try {
          const result = fn(writer);
          writer.run('commit', []);
          return result;
        } catch (error) {
          if (raw.isTransaction) writer.run('rollback', []);
          throw error;
        }
      });
    },
    async scriptSession(fn) {
      return fn({
        exec: async (sql) => {
          raw.exec(sql);
        },
        query: async <T>(sql: string, params: readonly unknown[] = []) =>
          raw.prepare(sql).all(...(params as never[])) as T[],
      });
    },
    async close() {
      reader.close();
      await kysely.destroy();
      // Kysely closes the file only if it ever opened a connection; close it either way.
      if (raw.isOpen) raw.close();
    },
  };
}

export function openDatabase(config: DatabaseConfig): Database {
  return config.kind === 'postgres'
    ? openPostgres(new TextDecoder().decode(config.url.reveal()), config)
    : openSqliteDatabase(config.file);
}
