/**
 * End-to-end: `nexus admin-keys create|list|revoke` against the database, checked through an
 * in-process broker on the same database (keys are looked up on every request).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import {
  ADMIN_KEY_PATTERN,
  appFor,
  baseEnv,
  envKeys,
  killAllChildren,
  migrateDatabase,
  runCli,
  show,
  sqlOn,
} from './cli-helpers.ts';
import { createTestDatabase, type TestDatabase } from './harness.ts';

after(killAllChildren);

describe('nexus admin-keys', { timeout: 90_000 }, () => {
  let db: TestDatabase;
  let env: Record<string, string>;
  let broker: Awaited<ReturnType<typeof appFor>>;
  let opsKey: string;
  before(async () => {
    db = await createTestDatabase();
    env = { ...baseEnv(), ...db.env, NEXUS_ENV: 'test', ...envKeys() };
    await migrateDatabase(env);
    broker = await appFor(env);
  });
  after(async () => {
    await broker?.close();
    await db.drop();
  });

  const statusWith = async (app: FastifyInstance, key: string) =>
    (await app.inject({ method: 'GET', url: '/providers', headers: { 'x-api-key': key } })).statusCode;

  it('create --name ops prints the key once, on stdout; it authenticates', async () => {
    const result = await runCli(['admin-keys', 'create', '--name', 'ops'], env);
    assert.equal(result.code, 0, show(result));
    assert.match(result.stdout, new RegExp(`^${ADMIN_KEY_PATTERN.source}\\n$`));
    opsKey = result.stdout.trim();
    assert.match(
      result.stderr,
      /^Created admin key "ops" \(id [0-9a-f]{16}\)\. The key above is shown only once\./,
    );
    assert.ok(!result.stderr.includes(opsKey));

    assert.equal(await statusWith(broker.app, opsKey), 200);
    const bearer = await broker.app.inject({
      method: 'GET',
      url: '/providers',
      headers: { authorization: `Bearer ${opsKey}` },
    });
    assert.equal(bearer.statusCode, 200);
    assert.equal((await broker.app.inject({ method: 'GET', url: '/providers' })).statusCode, 401);

    // The creation is audited with the operator as the actor.
    const events = await broker.container.audit.query({ action: 'admin_key.created', limit: 10 });
    assert.equal(events.length, 1);
    assert.match(events[0]!.actor, /^cli:/);
    assert.deepEqual(events[0]!.details, { name: 'ops', scope: 'full' });
  });

  it('list shows the name but never the key or its hash; --json parses', async () => {
    assert.ok(opsKey, 'depends on the create test');
    const [row] = await sqlOn<{ id: string; key_hash: string }>(
      db,
      'SELECT id, key_hash FROM admin_keys WHERE name = ?',
      ['ops'],
    );
    assert.ok(row);
    assert.equal(row.key_hash, createHash('sha256').update(opsKey).digest('hex'));
    const secretPart = opsKey.slice(`nxa_${row.id}_`.length);

    const table = await runCli(['admin-keys', 'list'], env);
    assert.equal(table.code, 0, show(table));
    const lines = table.stdout.trim().split('\n');
    assert.match(lines[0]!, /^ID\s+NAME\s+SCOPE\s+CREATED_AT\s+LAST_USED_AT\s+REVOKED_AT$/);
    assert.ok(
      lines.some((l) => l.startsWith(row.id) && /\sops\s/.test(l)),
      table.stdout,
    );

    const asJson = await runCli(['admin-keys', 'list', '--json'], env);
    assert.equal(asJson.code, 0, show(asJson));
    const listed = JSON.parse(asJson.stdout) as Record<string, unknown>[];
    const ops = listed.find((k) => k.name === 'ops');
    assert.ok(ops);
    assert.equal(ops.id, row.id);
    assert.deepEqual(Object.keys(ops).sort(), [
      'created_at',
      'created_by',
      'id',
      'last_used_at',
      'name',
      'revoked_at',
      'scope',
    ]);
    assert.match(String(ops.created_by), /^cli:/);
    // It was used by the previous test: last use is recorded.
    assert.notEqual(ops.last_used_at, null);

    for (const result of [table, asJson]) {
      const output = result.stdout + result.stderr;
      for (const secret of [opsKey, secretPart, row.key_hash]) {
        assert.ok(!output.includes(secret), `admin-keys list printed a secret\n${show(result)}`);
      }
    }
  });

  it('a second live key with the same name is refused (exit 1) and prints no key', async () => {
    const result = await runCli(['admin-keys', 'create', '--name', 'ops'], env);
    assert.equal(result.code, 1, show(result));
    assert.match(result.stderr, /^admin_key_name_taken: /);
    assert.equal(result.stdout, '');
    assert.doesNotMatch(result.stderr, ADMIN_KEY_PATTERN);
    const [n] = await sqlOn<{ n: number | string }>(
      db,
      'SELECT COUNT(*) AS n FROM admin_keys WHERE name = ? AND revoked_at IS NULL',
      ['ops'],
    );
    assert.equal(Number(n?.n), 1);
  });

  it('rejects a bad name (exit 2), a missing name (exit 2) and an unknown key to revoke (exit 1)', async () => {
    const bad = await runCli(['admin-keys', 'create', '--name', 'no spaces/allowed'], env);
    assert.equal(bad.code, 2, show(bad));
    assert.match(bad.stderr, /--name: 1-64 letters/);
    const missing = await runCli(['admin-keys', 'create'], env);
    assert.equal(missing.code, 2, show(missing));
    assert.match(missing.stderr, /--name is required/);
    const unknown = await runCli(['admin-keys', 'revoke', 'nobody'], env);
    assert.equal(unknown.code, 1, show(unknown));
    assert.match(unknown.stderr, /^admin_key_not_found: /);
    const reserved = await runCli(['admin-keys', 'create', '--name', 'env:x'], env);
    assert.equal(reserved.code, 2, show(reserved));
  });

  it('revoke ops: the key stops working at once; the name is free again', async () => {
    assert.ok(opsKey, 'depends on the create test');
    const result = await runCli(['admin-keys', 'revoke', 'ops'], env);
    assert.equal(result.code, 0, show(result));
    assert.match(result.stdout, /^Revoked admin key "ops" \(id [0-9a-f]{16}\)\.$/m);
    assert.equal(await statusWith(broker.app, opsKey), 401);

    const live = await runCli(['admin-keys', 'list', '--json'], env);
    assert.equal(live.code, 0, show(live));
    assert.ok(!(JSON.parse(live.stdout) as { name: string }[]).some((k) => k.name === 'ops'));
    const all = await runCli(['admin-keys', 'list', '--all', '--json'], env);
    const revoked = (JSON.parse(all.stdout) as { name: string; revoked_at: string | null }[]).find(
      (k) => k.name === 'ops',
    );
    assert.ok(revoked?.revoked_at, all.stdout);

    // Revoking twice is an error, not a silent success.
    const twice = await runCli(['admin-keys', 'revoke', 'ops'], env);
    assert.equal(twice.code, 1, show(twice));

    // A new "ops" key works; the revoked one stays dead. Revoke by id this time.
    const recreated = await runCli(['admin-keys', 'create', '--name', 'ops', '--json'], env);
    assert.equal(recreated.code, 0, show(recreated));
    const created = JSON.parse(recreated.stdout) as { id: string; name: string; key: string };
    assert.equal(created.name, 'ops');
    assert.match(created.key, ADMIN_KEY_PATTERN);
    assert.equal(await statusWith(broker.app, created.key), 200);
    assert.equal(await statusWith(broker.app, opsKey), 401);
    const byId = await runCli(['admin-keys', 'revoke', created.id], env);
    assert.equal(byId.code, 0, show(byId));
    assert.equal(await statusWith(broker.app, created.key), 401);
  });
});
