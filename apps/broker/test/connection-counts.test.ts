/**
 * `nexus_connections{status}` without counting the table (migration 0018): triggers record each
 * change of a connection's status and `foldStatusCounts` adds them up, so a scrape reads a few rows
 * at any number of connections. Checked against a real count after inserts (one and many rows at
 * once), status changes (and updates that keep the status), deletes, a migration over existing
 * rows, and, on PostgreSQL, folds racing writes and each other. Runs on SQLite and PostgreSQL.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { loadConfig } from '../src/config/load.ts';
import { type Database, openDatabase } from '../src/db/client.ts';
import { forDialect, MigrationError, migrate, readMigrations } from '../src/db/migrate.ts';
import { createConnectionsStore } from '../src/modules/connections/connections.store.ts';
import { createTestDatabase, DIALECT, type TestDatabase } from './harness.ts';

describe(`connection counts by status (${DIALECT})`, () => {
  let test: TestDatabase;
  let db: Database;
  let store: ReturnType<typeof createConnectionsStore>;
  let next = 0;

  const insert = async (...statuses: string[]) => {
    const rows = statuses.map((status) => {
      next++;
      return sql`(${`c${next}`}, 'w', 'p1', ${status}, '[]', 1, 0, 0)`;
    });
    await sql`INSERT INTO connections (id, workspace_id, provider_id, status, scopes, version, created_at, updated_at)
      VALUES ${sql.join(rows)}`.execute(db.kysely);
  };
  const setStatus = (status: string, where: string) =>
    sql`UPDATE connections SET status = ${status}, updated_at = updated_at + 1 WHERE ${sql.raw(where)}`.execute(
      db.kysely,
    );
  /** What counting the table says, every status listed so far included (0 when none is left). */
  const counted = async (statuses: readonly string[]) => {
    const { rows } = await sql<{ status: string; n: number | string }>`
      SELECT status, COUNT(*) AS n FROM connections GROUP BY status`.execute(db.kysely);
    const counts: Record<string, number> = Object.fromEntries(statuses.map((s) => [s, 0]));
    for (const r of rows) counts[r.status] = Number(r.n);
    return counts;
  };
  const deltas = async () =>
    Number(
      (
        await sql<{ n: number | string }>`SELECT COUNT(*) AS n FROM connection_count_deltas`.execute(
          db.kysely,
        )
      ).rows[0]?.n,
    );

  before(async () => {
    test = await createTestDatabase();
    db = openDatabase(loadConfig({ NEXUS_ENV: 'test', ...test.env }).database);
    // Connections that exist before the migration are counted by it.
    await migrate(
      db,
      readMigrations().filter((m) => m.id < '0018'),
    );
    await sql`INSERT INTO providers (id, name, auth_type, profile, version, created_at, updated_at)
      VALUES ('p1', 'p1', 'api_key', '{}', 1, 0, 0)`.execute(db.kysely);
    await insert('active', 'active', 'pending');
    await migrate(db);
    store = createConnectionsStore(db);
  });
  after(async () => {
    await db?.close();
    await test?.drop();
  });

  it('start from the connections that existed when the migration ran', async () => {
    assert.deepEqual(await store.countByStatus(), { active: 2, pending: 1 });
  });

  it('follow inserts, status changes and deletes, and report a status that emptied as 0', async () => {
    await insert('pending');
    await insert('pending', 'pending', 'active', 'revoked'); // one statement, many rows
    await setStatus('active', "status = 'pending'");
    await setStatus('active', "status = 'active'"); // the same status: no change to count
    await setStatus('expired', `id IN ('c1', 'c3')`);
    await sql`DELETE FROM connections WHERE status = 'revoked'`.execute(db.kysely);
    const statuses = ['active', 'pending', 'expired', 'revoked'];
    const expected = await counted(statuses);
    assert.deepEqual(expected, { active: 5, pending: 0, expired: 2, revoked: 0 });
    assert.ok((await deltas()) > 0, 'the changes were recorded as deltas');
    assert.deepEqual(await store.countByStatus(), expected);
    assert.equal(await deltas(), 0, 'a fold leaves no delta behind');
    // A second read with nothing new: the same counts, read from the counts alone.
    assert.deepEqual(await store.countByStatus(), expected);
  });

  it('stay exact when folds race each other and the writes', {
    skip: DIALECT !== 'postgres' && 'one writer on SQLite: folds cannot race',
  }, async () => {
    const work: Promise<unknown>[] = [];
    for (let i = 0; i < 20; i++) {
      work.push(insert('pending', 'active'));
      work.push(store.foldStatusCounts());
      work.push(setStatus('attention_required', `id = 'c${i + 4}'`));
      work.push(store.foldStatusCounts());
    }
    await Promise.all(work);
    const statuses = ['active', 'pending', 'expired', 'revoked', 'attention_required'];
    assert.deepEqual(await store.countByStatus(), await counted(statuses));
  });
});

describe('migration dialect sections', () => {
  const text =
    'CREATE TABLE t (b BLOB);\n-- postgres only\nSELECT 1;\n-- end\n-- sqlite only\nSELECT 2;\n-- end\nSELECT 3;\n';

  it('keep the section of the dialect and drop the other', () => {
    assert.equal(forDialect(text, 'postgres'), 'CREATE TABLE t (b BYTEA);\nSELECT 1;\n\n\nSELECT 3;\n');
    assert.equal(forDialect(text, 'sqlite'), 'CREATE TABLE t (b BLOB);\n\nSELECT 2;\n\nSELECT 3;\n');
  });

  it('refuse a section that is not closed', () => {
    assert.throws(() => forDialect('-- sqlite only\nSELECT 2;\n', 'postgres'), MigrationError);
  });
});
