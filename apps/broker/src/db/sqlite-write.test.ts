import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { type Database, openDatabase } from './client.ts';

/**
 * `Database.writeSync` (SQLite; the audit batch) writes on the connection Kysely uses. What the
 * audit chain relies on: it never joins or interleaves with a Kysely transaction that is open, and
 * a batch that fails part-way leaves nothing behind.
 */
describe('SQLite synchronous write transactions', () => {
  let dir: string;
  let db: Database;
  const values = async () =>
    (await sql<{ v: string }>`SELECT v FROM things ORDER BY n`.execute(db.kysely)).rows.map((r) => r.v);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nexus-sqlite-write-'));
    db = openDatabase({ kind: 'sqlite', file: join(dir, 'nexus.db') });
    await sql`CREATE TABLE things (n INTEGER PRIMARY KEY, v TEXT NOT NULL UNIQUE)`.execute(db.kysely);
  });
  after(async () => {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('waits for an open Kysely transaction, then commits on its own', async () => {
    const writeSync = db.writeSync;
    assert.ok(writeSync, 'SQLite has writeSync');
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    let inside!: () => void;
    const started = new Promise<void>((r) => {
      inside = r;
    });
    const transaction = db.kysely.transaction().execute(async (trx) => {
      await sql`INSERT INTO things (v) VALUES ('kysely')`.execute(trx);
      inside();
      await held;
      throw new Error('the Kysely transaction rolls back');
    });
    await started;
    let ran = false;
    const write = writeSync((s) => {
      ran = true;
      s.run('INSERT INTO things (v) VALUES (?)', ['sync']);
      return s.all<{ v: string }>('SELECT v FROM things', []).map((r) => r.v);
    });
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(ran, false, 'not run while the transaction holds the connection');
    release();
    await assert.rejects(transaction, /rolls back/);
    // Had it run inside the open transaction, the rollback would have taken its row too.
    assert.deepEqual(await write, ['sync']);
    assert.deepEqual(await values(), ['sync']);
  });

  it('rolls back every statement when one fails, and the connection stays usable', async () => {
    await assert.rejects(
      db.writeSync!((s) => {
        s.run('INSERT INTO things (v) VALUES (?)', ['first']);
        s.run('INSERT INTO things (v) VALUES (?)', ['sync']); // UNIQUE: fails
      }),
      /UNIQUE/,
    );
    assert.deepEqual(await values(), ['sync']);
    await assert.rejects(
      db.writeSync!((s) => {
        s.run('INSERT INTO things (v) VALUES (?)', ['second']);
        throw new Error('the caller gives up');
      }),
      /gives up/,
    );
    assert.deepEqual(await values(), ['sync']);
    await sql`INSERT INTO things (v) VALUES ('after')`.execute(db.kysely);
    await db.writeSync!((s) => s.run('INSERT INTO things (v) VALUES (?)', ['last']));
    assert.deepEqual(await values(), ['sync', 'after', 'last']);
  });
});
