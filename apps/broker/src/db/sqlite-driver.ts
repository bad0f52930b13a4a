import { DatabaseSync, type SQLInputValue } from 'node:sqlite';
import type { SqliteDatabase, SqliteStatement } from 'kysely';

/**
 * Adapts `node:sqlite` (built into Node 24, no native add-on to compile) to the statement
 * interface Kysely's SqliteDialect expects from better-sqlite3.
 */
export function openSqlite(file: string): { kysely: SqliteDatabase; raw: DatabaseSync } {
  const raw = new DatabaseSync(file);
  // WAL lets the CLI (rewrap, migrate) and a running broker share the file; the busy timeout
  // makes a writer wait for the other instead of failing at once.
  raw.exec(
    'PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;',
  );
  const statements = new Map<string, SqliteStatement>();
  const kysely: SqliteDatabase = {
    close: () => raw.close(),
    prepare(text: string): SqliteStatement {
      // Kysely opens transactions with a deferred BEGIN; IMMEDIATE takes the write lock up front,
      // so two processes never deadlock upgrading a read lock (the busy timeout then applies).
      const sql = text === 'begin' ? 'begin immediate' : text;
      const cached = statements.get(sql);
      if (cached) return cached;
      const stmt = raw.prepare(sql);
      const args = (params: ReadonlyArray<unknown>) => params as SQLInputValue[];
      const wrapped: SqliteStatement = {
        reader: stmt.columns().length > 0,
        all: (params) => stmt.all(...args(params)),
        run: (params) => stmt.run(...args(params)),
        iterate: (params) => stmt.iterate(...args(params)),
      };
      if (statements.size < 500) statements.set(sql, wrapped);
      return wrapped;
    },
  };
  return { kysely, raw };
}

/**
 * A second, read-only connection to the same file, for the hot point reads (`Database.prepared`
 * SELECTs: a connection, an agent, an admin key by id). Kysely's SQLite driver has one connection
 * behind a mutex, so a read waited for any open transaction and went through Kysely's promise
 * chain; in WAL mode this connection reads the last committed state instead, at once. Never an
 * uncommitted write: a read here cannot see a transaction of the other connection before it
 * commits, and sees it as soon as it has. Statements are prepared once and kept.
 */
export function openSqliteReader(file: string): {
  all(sql: string, params: readonly unknown[]): unknown[];
  close(): void;
} {
  let reader: DatabaseSync | undefined;
  const statements = new Map<string, ReturnType<DatabaseSync['prepare']>>();
  return {
    all(sql, params) {
      if (reader === undefined) {
        reader = new DatabaseSync(file, { readOnly: true });
        reader.exec('PRAGMA busy_timeout = 5000;');
      }
      let stmt = statements.get(sql);
      if (stmt === undefined) {
        stmt = reader.prepare(sql);
        if (statements.size < 100) statements.set(sql, stmt);
      }
      return stmt.all(...(params as SQLInputValue[]));
    },
    close() {
      if (reader?.isOpen) reader.close();
    },
  };
}
