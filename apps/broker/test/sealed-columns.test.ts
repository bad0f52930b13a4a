/**
 * Every sealed column is covered by `nexus keys rewrap` and `nexus doctor` (issue "Refresh you can
 * trust": `signing_keys.private_key` was not, so a restart without the old key broke agent login).
 *
 * Ciphertexts are bytes (BLOB; BYTEA on PostgreSQL), so the migrated database's own catalogue lists
 * every column that could hold one. Each must be registered in ENCRYPTED_COLUMNS (which rewrap and
 * doctor walk) or declared in NOT_SEALED_BYTE_COLUMNS with a reason; and every registration must
 * name a real column and id column, so a typo cannot pass for coverage.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../src/config/load.ts';
import { openDatabase } from '../src/db/client.ts';
import { migrate } from '../src/db/migrate.ts';
import { ENCRYPTED_COLUMNS, NOT_SEALED_BYTE_COLUMNS } from '../src/modules/keys/rewrap.ts';
import { sqlOn } from './cli-helpers.ts';
import { createTestDatabase, DIALECT, type TestDatabase } from './harness.ts';

type Column = { table_name: string; column_name: string; byte: number | boolean };

/** Every column of every table of the test database, read from the database's catalogue. */
async function catalogue(db: TestDatabase): Promise<Column[]> {
  if (DIALECT === 'sqlite')
    return sqlOn<Column>(
      db,
      `SELECT m.name AS table_name, p.name AS column_name, upper(p.type) = 'BLOB' AS byte
         FROM sqlite_master m JOIN pragma_table_info(m.name) p
        WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'`,
    );
  return sqlOn<Column>(
    db,
    `SELECT table_name, column_name, data_type = 'bytea' AS byte
       FROM information_schema.columns WHERE table_schema = current_schema()`,
  );
}

describe(`sealed columns of the migrated schema (${DIALECT})`, () => {
  let db: TestDatabase;
  let columns: Column[];
  before(async () => {
    db = await createTestDatabase();
    const database = openDatabase(loadConfig({ NEXUS_ENV: 'test', ...db.env }).database);
    try {
      await migrate(database);
    } finally {
      await database.close();
    }
    columns = await catalogue(db);
  });
  after(() => db.drop());

  const name = (table: string, column: string) => `${table}.${column}`;

  it('every byte column is rewrapped and checked by doctor, or declared not sealed', () => {
    const bytes = columns.filter((c) => Boolean(c.byte)).map((c) => name(c.table_name, c.column_name));
    assert.ok(bytes.length >= 5, `the catalogue query found byte columns: ${bytes.join(', ')}`);
    const covered = new Set([
      ...ENCRYPTED_COLUMNS.map((c) => name(c.table, c.column)),
      ...NOT_SEALED_BYTE_COLUMNS.map((c) => name(c.table, c.column)),
    ]);
    const uncovered = bytes.filter((b) => !covered.has(b));
    assert.deepEqual(
      uncovered,
      [],
      'register these in ENCRYPTED_COLUMNS (modules/keys/rewrap.ts), or in NOT_SEALED_BYTE_COLUMNS with the reason',
    );
    assert.ok(bytes.includes('signing_keys.private_key'));
  });

  it('every registration names a byte column and an id column that exist', () => {
    const all = new Map(columns.map((c) => [name(c.table_name, c.column_name), Boolean(c.byte)]));
    for (const c of [...ENCRYPTED_COLUMNS, ...NOT_SEALED_BYTE_COLUMNS])
      assert.equal(all.get(name(c.table, c.column)), true, `${name(c.table, c.column)} is not a byte column`);
    for (const c of ENCRYPTED_COLUMNS)
      assert.ok(all.has(name(c.table, c.idColumn)), `${name(c.table, c.idColumn)} does not exist`);
  });
});
