/**
 * End-to-end: `nexus audit verify` on a real chain, then on the same chain tampered with
 * directly in the database (edited, deleted in the middle, deleted at the end).
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import {
  baseEnv,
  containerFor,
  envKeys,
  killAllChildren,
  migrateDatabase,
  runCli,
  show,
  sqlOn,
} from './cli-helpers.ts';
import { createTestDatabase, type TestDatabase } from './harness.ts';

after(killAllChildren);

type Row = Record<string, unknown> & { seq: number | string };

describe('nexus audit verify', { timeout: 90_000 }, () => {
  let db: TestDatabase;
  let env: Record<string, string>;
  let events: number;
  before(async () => {
    db = await createTestDatabase();
    env = { ...baseEnv(), ...db.env, NEXUS_ENV: 'test', ...envKeys() };
    await migrateDatabase(env);
    // Audited mutations: one from the CLI, the rest through the broker's own services.
    const created = await runCli(['admin-keys', 'create', '--name', 'first'], env);
    assert.equal(created.code, 0, show(created));
    const container = containerFor(env);
    try {
      const ctx = { actor: 'admin-key:test', ip: '127.0.0.1', requestId: 'req-audit-test' };
      for (const name of ['second', 'third', 'fourth']) await container.adminKeys.create(ctx, name);
      await container.adminKeys.revoke(ctx, 'second');
      await container.audit.record(ctx, {
        action: 'test.note',
        resourceType: 'test',
        resourceId: 'x',
        details: { note: 'hello' },
      });
      await container.adminKeys.revoke(ctx, 'third');
    } finally {
      await container.close();
    }
    events = 7;
  });
  after(() => db.drop());

  // Each tampering test leaves the chain as it found it.
  afterEach(async () => {
    const result = await runCli(['audit', 'verify'], env);
    assert.equal(result.code, 0, `the chain was not restored: ${show(result)}`);
  });

  const rowAt = async (seq: number) => {
    const [row] = await sqlOn<Row>(db, 'SELECT * FROM audit_events WHERE seq = ?', [seq]);
    assert.ok(row, `no audit event ${seq}`);
    return row;
  };
  const reinsert = async (row: Row) => {
    const columns = Object.keys(row);
    await sqlOn(
      db,
      `INSERT INTO audit_events (${columns.join(', ')}) VALUES (${columns.map(() => '?').join(', ')})`,
      Object.values(row),
    );
  };

  it('an untouched chain is intact: exit 0', async () => {
    const result = await runCli(['audit', 'verify'], env);
    assert.equal(result.code, 0, show(result));
    assert.equal(result.stdout.trim(), `Audit chain intact: ${events} events verified.`);
    const asJson = await runCli(['audit', 'verify', '--json'], env);
    assert.equal(asJson.code, 0, show(asJson));
    const parsed = JSON.parse(asJson.stdout) as Record<string, unknown>;
    assert.equal(parsed.ok, true);
    assert.equal(parsed.checked, events);
    assert.equal(parsed.headSeq, events);
    assert.match(String(parsed.headHash), /^[0-9a-f]{64}$/);
  });

  it('a database it cannot reach: exit 3, not the 1 of a broken chain, and --json says so', async () => {
    // Review (2026-12-07): an outage exited 1 like tampering, so a cron job could not tell them apart.
    const away = { ...env, DATABASE_URL: 'postgres://nexus@127.0.0.1:1/nexus' };
    const result = await runCli(['audit', 'verify'], away);
    assert.equal(result.code, 3, show(result));
    assert.match(result.stderr, /the chain could not be checked/);
    const json = await runCli(['audit', 'verify', '--json'], away);
    assert.equal(json.code, 3, show(json));
    const body = JSON.parse(json.stdout) as { ok: unknown; error: string };
    assert.equal(body.ok, null);
    assert.match(body.error, /ECONNREFUSED|connect/);
  });

  it('an edited action in a middle row: exit 1 naming that event', async () => {
    const original = await rowAt(4);
    await sqlOn(db, 'UPDATE audit_events SET action = ? WHERE seq = ?', ['admin_key.nothing_happened', 4]);
    try {
      const result = await runCli(['audit', 'verify'], env);
      assert.equal(result.code, 1, show(result));
      assert.match(
        result.stdout,
        /^Audit chain BROKEN at event 4: event 4 was modified after it was written$/m,
      );
      const asJson = JSON.parse((await runCli(['audit', 'verify', '--json'], env)).stdout) as Record<
        string,
        unknown
      >;
      assert.equal(asJson.ok, false);
      assert.equal(asJson.brokenAt, 4);
    } finally {
      await sqlOn(db, 'UPDATE audit_events SET action = ? WHERE seq = ?', [original.action, 4]);
    }
  });

  it('edited details in a middle row: exit 1 naming that event', async () => {
    const original = await rowAt(6);
    assert.equal(original.details, JSON.stringify({ note: 'hello' }));
    await sqlOn(db, 'UPDATE audit_events SET details = ? WHERE seq = ?', [
      JSON.stringify({ note: 'bye' }),
      6,
    ]);
    try {
      const result = await runCli(['audit', 'verify'], env);
      assert.equal(result.code, 1, show(result));
      assert.match(
        result.stdout,
        /^Audit chain BROKEN at event 6: event 6 was modified after it was written$/m,
      );
    } finally {
      await sqlOn(db, 'UPDATE audit_events SET details = ? WHERE seq = ?', [original.details, 6]);
    }
  });

  it('a deleted middle row: exit 1, the event is missing', async () => {
    const original = await rowAt(3);
    await sqlOn(db, 'DELETE FROM audit_events WHERE seq = ?', [3]);
    try {
      const result = await runCli(['audit', 'verify'], env);
      assert.equal(result.code, 1, show(result));
      assert.match(
        result.stdout,
        /^Audit chain BROKEN at event 3: event 3 is missing \(next present is 4\)$/m,
      );
    } finally {
      await reinsert(original);
    }
  });

  it('a deleted last row: exit 1, the chain ends before the recorded head', async () => {
    const original = await rowAt(events);
    await sqlOn(db, 'DELETE FROM audit_events WHERE seq = ?', [events]);
    try {
      const result = await runCli(['audit', 'verify'], env);
      assert.equal(result.code, 1, show(result));
      assert.match(
        result.stdout,
        new RegExp(
          `^Audit chain BROKEN at event ${events}: the chain ends at event ${events - 1} but the head records event ${events}: events were deleted$`,
          'm',
        ),
      );
    } finally {
      await reinsert(original);
    }
  });
});
