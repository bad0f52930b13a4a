/**
 * End-to-end: `nexus secrets set|get|list|versions|delete` on the broker's database and secret
 * backend, checked through an in-process broker on the same database.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  appFor,
  baseEnv,
  envKeys,
  killAllChildren,
  migrateDatabase,
  newKeyBase64,
  runCli,
  show,
} from './cli-helpers.ts';
import { createTestDatabase, type TestDatabase } from './harness.ts';

after(killAllChildren);

describe('nexus secrets (user secrets)', { timeout: 90_000 }, () => {
  let db: TestDatabase;
  let env: Record<string, string>;
  let broker: Awaited<ReturnType<typeof appFor>>;
  const cli = (args: string[], input?: string) => runCli(['secrets', ...args], env, undefined, input);

  before(async () => {
    db = await createTestDatabase();
    env = {
      ...baseEnv(),
      ...db.env,
      NEXUS_ENV: 'test',
      ...envKeys(),
      USER_SECRETS_KEY: newKeyBase64(),
      API_KEY: `cli-secrets-admin-${newKeyBase64()}`,
    };
    await migrateDatabase(env);
    broker = await appFor(env);
  });
  after(async () => {
    await broker?.close();
    await db.drop();
  });

  it('stores a value from stdin, a file or an explicit --value, never from a bare argument', async () => {
    const fromStdin = await cli(['set', 'stripe', '--user', 'alice'], 'sk_from_stdin\n');
    assert.equal(fromStdin.code, 0, show(fromStdin));
    assert.match(fromStdin.stdout, /version 1/);
    const file = join(db.dataDir, 'value.txt');
    writeFileSync(file, 'sk_from_file');
    assert.equal((await cli(['set', 'stripe', '--user', 'alice', '--from-file', file])).code, 0);
    const explicit = await cli(['set', 'stripe', '--user', 'alice', '--value', 'sk_explicit', '--json']);
    assert.equal(JSON.parse(explicit.stdout).version, 3);
    const empty = await cli(['set', 'stripe', '--user', 'alice'], '');
    assert.equal(empty.code, 2, 'an empty value is refused');
    for (const result of [fromStdin, explicit])
      assert.ok(!result.stdout.includes('sk_'), 'values are not echoed');
  });

  it('refuses a name, zone or user the REST API would refuse, storing nothing', async () => {
    // Review (2026-12-07): `secrets set "Prod DB/password" --zone Prod` stored a secret that no
    // agent, REST call or `nexus-secret:` reference could ever name.
    for (const [args, message] of [
      [['set', 'Prod DB/password', '--user', 'alice', '--value', 'x'], /the name must be/],
      [['set', 'db', '--user', 'alice', '--zone', 'Prod', '--value', 'x'], /--zone must be/],
      [['set', 'db', '--user', '   ', '--value', 'x'], /--user must be/],
      [['set', 'db', '--user', 'alice', '--value', 'x'.repeat(65_537)], /longer than 65536/],
      [['get', '../db', '--user', 'alice'], /the name must be/],
    ] as const) {
      const refused = await cli([...args]);
      assert.equal(refused.code, 2, show(refused));
      assert.match(refused.stderr, message);
    }
    const listed = await broker.app.inject({
      method: 'GET',
      url: '/api/v2/secrets?user_id=alice&zone=default',
      headers: { 'x-api-key': env.API_KEY! },
    });
    assert.equal(listed.statusCode, 200, listed.body);
    assert.ok(!listed.body.includes('"db"'), 'nothing was stored');
  });

  it('reads the current or a given version, lists and deletes, as the broker sees it', async () => {
    assert.equal((await cli(['get', 'stripe', '--user', 'alice'])).stdout, 'sk_explicit\n');
    assert.equal(
      (await cli(['get', 'stripe', '--user', 'alice', '--at-version', '1'])).stdout,
      'sk_from_stdin\n',
    );
    const versions = JSON.parse((await cli(['versions', 'stripe', '--user', 'alice', '--json'])).stdout);
    assert.deepEqual(
      versions.map((v: { version: number }) => v.version),
      [3, 2, 1],
    );
    assert.match(versions[0].created_by, /^cli:/);
    const listed = await cli(['list', '--user', 'alice']);
    assert.match(listed.stdout, /stripe\s+3\s+true/);
    assert.ok(!listed.stdout.includes('sk_'));

    const viaApi = await broker.app.inject({
      method: 'GET',
      url: '/api/v2/secrets/stripe?user_id=alice',
      headers: { 'x-api-key': env.API_KEY! },
    });
    assert.equal(JSON.parse(viaApi.body).value, 'sk_explicit');

    assert.equal(
      (await cli(['get', 'stripe', '--user', 'bob'])).code,
      1,
      "another user's secret does not exist",
    );
    assert.equal((await cli(['delete', 'stripe', '--user', 'alice'])).code, 0);
    const gone = await cli(['get', 'stripe', '--user', 'alice']);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /No secret with that name/);
    assert.equal((await cli(['get', 'stripe'])).code, 2, '--user is required');
  });
});
