import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { CompiledQuery, Kysely, PostgresDialect, SqliteDialect } from 'kysely';
import type pg from 'pg';
import type { DatabaseConfig } from '../config/load.ts';
import type { DB } from './schema.ts';
import { openSqlite } from './sqlite-driver.ts';

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
  close(): Promise<void>;
}

const MIGRATION_LOCK = 7_264_013_310; // arbitrary, fixed: pg_advisory_lock key for migrations

function toPgPlaceholders(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

/** `pg` is loaded only when PostgreSQL is configured: the embedded default never pays for it. */
const loadPg = () => createRequire(import.meta.url)('pg') as typeof pg;

function openPostgres(url: string, poolMax: number): Database {
  const { Pool, types } = loadPg();
  const pool = new Pool({
    connectionString: url,
    max: poolMax,
    idleTimeoutMillis: 30_000,
    connectionTimeoutMillis: 5_000,
    // Bounded statements and no transaction left open by a crashed request.
    statement_timeout: 30_000,
    idle_in_transaction_session_timeout: 60_000,
    types: {
      // BIGINT columns hold epoch milliseconds and sequence numbers, all below 2^53.
      getTypeParser: ((oid: number, format?: string) =>
        oid === 20
          ? (v: string) => Number(v)
          : types.getTypeParser(oid, format as 'text')) as typeof types.getTypeParser,
    },
  });
  // An idle client losing its connection must not crash the process; the pool replaces it.
  pool.on('error', () => {});
  const kysely = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
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
          const result = await pool.query(query);
          return { rows: result.rows as R[], affected: result.rowCount ?? 0 };
        } catch (error) {
          // "cached plan must not change result type": a migration changed a table under a
          // statement this connection prepared before it. The pool drops a connection whose query
          // failed, statements and all, so the next try prepares afresh on another connection.
          const { code, message } = error as { code?: string; message?: string };
          const stalePlan = code === '0A000' && /cached plan/.test(message ?? '');
          if (!stalePlan || attempt >= poolMax) throw error;
        }
      }
    },
    async scriptSession(fn) {
      const client = await pool.connect();
      try {
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
        client.release();
      }
    },
    async close() {
      await kysely.destroy();
      // Kysely ends the pool only if it ran a query itself; ping and scriptSession use it directly.
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
  return {
    kysely,
    dialect: 'sqlite',
    async ping() {
      raw.prepare('SELECT 1').get();
    },
    async prepared<R>(text: string, params: readonly unknown[]) {
      const result = await kysely.executeQuery<R>(CompiledQuery.raw(text, [...params]));
      return { rows: [...result.rows], affected: Number(result.numAffectedRows ?? 0n) };
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
      await kysely.destroy();
      // Kysely closes the file only if it ever opened a connection; close it either way.
      if (raw.isOpen) raw.close();
    },
  };
}

export function openDatabase(config: DatabaseConfig): Database {
  return config.kind === 'postgres'
    ? openPostgres(new TextDecoder().decode(config.url.reveal()), config.poolMax)
    : openSqliteDatabase(config.file);
}
