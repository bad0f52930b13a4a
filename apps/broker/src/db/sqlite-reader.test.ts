import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { type Database, openDatabase } from './client.ts';

/**
 * On SQLite, `Database.prepared` point reads go to a second, read-only connection
 * (sqlite-driver.ts) instead of waiting for Kysely's single connection. What a caller must be able
 * to rely on: such a read never sees a write that is not committed, never waits for an open
 * transaction, and sees a committed write (a revocation, say) at once.
 */
describe('SQLite point reads on the read connection', () => {
  let dir: string;
  let db: Database;
  const read = async () =>
    (await db.prepared<{ status: string }>('SELECT status FROM things WHERE id = ?', ['a'])).rows[0]?.status;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nexus-sqlite-reader-'));
    db = openDatabase({ kind: 'sqlite', file: join(dir, 'nexus.db') });
    await sql`CREATE TABLE things (id TEXT PRIMARY KEY, status TEXT NOT NULL)`.execute(db.kysely);
    await sql`INSERT INTO things VALUES ('a', 'active')`.execute(db.kysely);
  });
  after(async () => {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('sees the last committed state while a transaction is open, and its write once it commits', async () => {
    assert.equal(await read(), 'active');
    let commit!: () => void;
    const held = new Promise<void>((r) => {
      commit = r;
    });
    let written!: () => void;
    const wrote = new Promise<void>((r) => {
      written = r;
    });
    const transaction = db.kysely.transaction().execute(async (trx) => {
      await sql`UPDATE things SET status = 'revoked' WHERE id = 'a'`.execute(trx);
      written();
      await held;
    });
    await wrote;
    // The update is not committed: the read neither sees it nor waits for the transaction.
    assert.equal(await read(), 'active');
    commit();
    await transaction;
    assert.equal(await read(), 'revoked');
  });

  it('sees a write committed by another connection to the file (the CLI next to a broker)', async () => {
    const other = openDatabase({ kind: 'sqlite', file: join(dir, 'nexus.db') });
    try {
      await sql`UPDATE things SET status = 'active-again' WHERE id = 'a'`.execute(other.kysely);
    } finally {
      await other.close();
    }
    assert.equal(await read(), 'active-again');
  });

  it('sends writes through the writing connection', async () => {
    const { affected } = await db.prepared("UPDATE things SET status = 'paused' WHERE id = ?", ['a']);
    assert.equal(affected, 1);
    assert.equal(await read(), 'paused');
  });
});
