/**
 * End-to-end: `nexus migrate` and the checksummed migration ledger, as an operator meets them.
 * The ledger is tampered with directly in the database the harness created.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, beforeEach, describe, it } from 'node:test';
import { readMigrations } from '../src/db/migrate.ts';
import { baseEnv, envKeys, freePort, killAllChildren, runCli, show, sqlOn } from './cli-helpers.ts';
import { createTestDatabase, type TestDatabase } from './harness.ts';

after(killAllChildren);

const MIGRATIONS = readMigrations().map((m) => m.id);
const FIRST = MIGRATIONS[0]!;

describe('nexus migrate', { timeout: 90_000 }, () => {
  let db: TestDatabase;
  let env: Record<string, string>;
  beforeEach(async () => {
    db = await createTestDatabase();
    // Keys are present (serve needs them) but migrate itself must not use or create any.
    env = { ...baseEnv(), ...db.env, NEXUS_ENV: 'test', ...envKeys() };
  });
  afterEach(() => db.drop());

  it('applies every migration once; the second run and --status say it is up to date', async () => {
    const before = await runCli(['migrate', '--status'], env);
    assert.equal(before.code, 3, show(before));
    for (const id of MIGRATIONS) assert.match(before.stdout, new RegExp(`^pending  ${id}$`, 'm'));

    const first = await runCli(['migrate'], env);
    assert.equal(first.code, 0, show(first));
    assert.equal(
      first.stdout.trim(),
      `Applied ${MIGRATIONS.length} migration(s): ${MIGRATIONS.join(', ')}`,
      show(first),
    );

    const second = await runCli(['migrate'], env);
    assert.equal(second.code, 0, show(second));
    assert.equal(
      second.stdout.trim(),
      `Database is up to date (${MIGRATIONS.length} migrations applied).`,
      show(second),
    );

    const status = await runCli(['migrate', '--status'], env);
    assert.equal(status.code, 0, show(status));
    assert.deepEqual(
      status.stdout.trim().split('\n'),
      MIGRATIONS.map((id) => `applied  ${id}`),
    );
    const statusJson = await runCli(['migrate', '--status', '--json'], env);
    assert.equal(statusJson.code, 0, show(statusJson));
    assert.deepEqual(JSON.parse(statusJson.stdout), { applied: MIGRATIONS, pending: [] });

    const ledger = await sqlOn<{ id: string }>(db, 'SELECT id FROM nexus_migrations ORDER BY id');
    assert.deepEqual(
      ledger.map((r) => r.id),
      MIGRATIONS,
    );
  });

  it('needs only the database: a development migrate generates no key file', async () => {
    const result = await runCli(['migrate'], { ...baseEnv(), ...db.env });
    assert.equal(result.code, 0, show(result));
    assert.equal(existsSync(join(db.dataDir, 'keys.json')), false);
  });

  it('other commands refuse an unmigrated database and say to run `nexus migrate`', async () => {
    const result = await runCli(['admin-keys', 'list'], env);
    assert.equal(result.code, 2, show(result));
    assert.match(result.stderr, /pending migration\(s\).*Run `nexus migrate` first/);
  });

  it('a ledger checksum that no longer matches the file stops migrate and serve', async () => {
    assert.equal((await runCli(['migrate'], env)).code, 0);
    const tampered = 'f'.repeat(64);
    await sqlOn(db, 'UPDATE nexus_migrations SET checksum = ? WHERE id = ?', [tampered, FIRST]);

    const migrate = await runCli(['migrate'], env);
    assert.equal(migrate.code, 1, show(migrate));
    assert.match(
      migrate.stderr,
      new RegExp(
        `migrate: migration ${FIRST} was changed after it was applied \\(recorded checksum ffffffffffff`,
      ),
    );
    assert.match(migrate.stderr, /Restore the original file; put schema changes in a new migration/);

    const status = await runCli(['migrate', '--status'], env);
    assert.equal(status.code, 1, show(status));
    assert.match(status.stderr, /was changed after it was applied/);

    for (const args of [['serve'], ['serve', '--no-migrate']]) {
      const serve = await runCli(args, { ...env, PORT: String(await freePort()) });
      assert.notEqual(serve.code, 0, show(serve));
      assert.equal(serve.signal, null, show(serve));
      assert.match(serve.stderr, new RegExp(`migration ${FIRST} was changed after it was applied`));
      assert.doesNotMatch(serve.stdout, /nexus ready/, show(serve));
    }
    // The ledger row is left exactly as found: nothing "repaired" it.
    const rows = await sqlOn<{ checksum: string }>(db, 'SELECT checksum FROM nexus_migrations WHERE id = ?', [
      FIRST,
    ]);
    assert.equal(rows[0]?.checksum, tampered);
  });

  it('a ledger row for a migration this version does not know: written by a newer version', async () => {
    assert.equal((await runCli(['migrate'], env)).code, 0);
    await sqlOn(db, 'INSERT INTO nexus_migrations (id, checksum, applied_at) VALUES (?, ?, ?)', [
      '9999_from_the_future',
      'a'.repeat(64),
      Date.now(),
    ]);
    const migrate = await runCli(['migrate'], env);
    assert.equal(migrate.code, 1, show(migrate));
    assert.match(
      migrate.stderr,
      /the database has migration 9999_from_the_future, which this version of Nexus does not know: it was written by a newer version/,
    );
    const serve = await runCli(['serve'], { ...env, PORT: String(await freePort()) });
    assert.notEqual(serve.code, 0, show(serve));
    assert.match(serve.stderr, /written by a newer version/);
    assert.doesNotMatch(serve.stdout, /nexus ready/);
  });
});
