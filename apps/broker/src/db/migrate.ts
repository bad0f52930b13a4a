import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Database, Dialect } from './client.ts';

export interface Migration {
  readonly id: string;
  readonly sql: string;
  readonly checksum: string;
}

export interface MigrationResult {
  readonly applied: readonly string[];
  readonly alreadyApplied: number;
}

export class MigrationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MigrationError';
  }
}

export const MIGRATIONS_DIR = join(import.meta.dirname, 'migrations');

/** Reads `NNNN_name.sql` files in order; the checksum covers the file as written (line endings normalised). */
export function readMigrations(dir = MIGRATIONS_DIR): Migration[] {
  return readdirSync(dir)
    .filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f))
    .sort()
    .map((file) => {
      const sql = readFileSync(join(dir, file), 'utf8').replaceAll('\r\n', '\n');
      return {
        id: file.replace(/\.sql$/, ''),
        sql,
        checksum: createHash('sha256').update(sql).digest('hex'),
      };
    });
}

/**
 * The dialect differences our migrations allow: PostgreSQL spells BLOB as BYTEA, and what the two
 * cannot say alike (triggers) sits between a `-- postgres only` or `-- sqlite only` line and an
 * `-- end` line, kept for that dialect and dropped for the other. The checksum covers both.
 */
export function forDialect(sql: string, dialect: Dialect): string {
  const kept = sql.replace(DIALECT_SECTION, (_all, only: string, body: string) =>
    only === dialect ? body : '',
  );
  if (/^-- (postgres only|sqlite only|end)\s*$/m.test(kept))
    throw new MigrationError('a `-- postgres only` / `-- sqlite only` section is not closed by `-- end`');
  return dialect === 'postgres' ? kept.replace(/\bBLOB\b/g, 'BYTEA') : kept;
}

const DIALECT_SECTION = /^-- (postgres|sqlite) only[ \t]*\n([\s\S]*?)^-- end[ \t]*$/gm;

const LEDGER = `CREATE TABLE IF NOT EXISTS nexus_migrations (
  id TEXT PRIMARY KEY,
  checksum TEXT NOT NULL,
  applied_at BIGINT NOT NULL
)`;

export interface MigrationStatus {
  readonly applied: readonly string[];
  readonly pending: readonly string[];
}

async function checkLedger(
  rows: readonly { id: string; checksum: string }[],
  migrations: readonly Migration[],
): Promise<Set<string>> {
  const known = new Map(migrations.map((m) => [m.id, m]));
  for (const row of rows) {
    const migration = known.get(row.id);
    if (migration === undefined) {
      throw new MigrationError(
        `the database has migration ${row.id}, which this version of Nexus does not know: it was written by a newer version. Run that version, or restore a backup taken before it.`,
      );
    }
    if (migration.checksum !== row.checksum) {
      throw new MigrationError(
        `migration ${row.id} was changed after it was applied (recorded checksum ${row.checksum.slice(0, 12)}…, file ${migration.checksum.slice(0, 12)}…). Restore the original file; put schema changes in a new migration.`,
      );
    }
  }
  return new Set(rows.map((r) => r.id));
}

/** Lists applied and pending migrations, verifying the ledger checksums; changes nothing. */
export async function migrationStatus(db: Database, migrations = readMigrations()): Promise<MigrationStatus> {
  return db.scriptSession(async (session) => {
    await session.exec(LEDGER);
    const rows = await session.query<{ id: string; checksum: string }>(
      'SELECT id, checksum FROM nexus_migrations ORDER BY id',
    );
    const applied = await checkLedger(rows, migrations);
    return { applied: [...applied], pending: migrations.filter((m) => !applied.has(m.id)).map((m) => m.id) };
  });
}

/**
 * Applies pending migrations, each in its own transaction together with its ledger row. An
 * applied migration whose file changed, or a ledger row without a file, stops everything.
 */
export async function migrate(
  db: Database,
  migrations = readMigrations(),
  now = Date.now,
): Promise<MigrationResult> {
  return db.scriptSession(async (session) => {
    await session.exec(LEDGER);
    const rows = await session.query<{ id: string; checksum: string }>(
      'SELECT id, checksum FROM nexus_migrations ORDER BY id',
    );
    const applied = await checkLedger(rows, migrations);
    const done: string[] = [];
    for (const migration of migrations) {
      if (applied.has(migration.id)) continue;
      await session.exec(db.dialect === 'sqlite' ? 'BEGIN IMMEDIATE' : 'BEGIN');
      try {
        await session.exec(forDialect(migration.sql, db.dialect));
        await session.query('INSERT INTO nexus_migrations (id, checksum, applied_at) VALUES (?, ?, ?)', [
          migration.id,
          migration.checksum,
          now(),
        ]);
        await session.exec('COMMIT');
      } catch (cause) {
        await session.exec('ROLLBACK').catch(() => {});
        throw new MigrationError(
          `migration ${migration.id} failed and was rolled back: ${(cause as Error).message}`,
        );
      }
      done.push(migration.id);
    }
    return { applied: done, alreadyApplied: applied.size };
  });
}
