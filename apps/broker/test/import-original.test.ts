/**
 * End-to-end: `nexus import original` (issue #25). The test builds the original's database in
 * PostgreSQL from the schema in the contract (fixtures/original-schema.sql), fills it with
 * providers, aliases, connections of every status and tokens sealed the original's way (AES-256-GCM
 * under its ENCRYPTION_KEY, no associated data), with refresh tokens a real OpenID provider
 * (oidc-provider) issued. It runs the real CLI, then checks through a broker on the same Nexus
 * database (SQLite under `npm test`, PostgreSQL under `npm run test:pg`).
 *
 * The source is PostgreSQL by nature, also when Nexus runs on SQLite: without
 * NEXUS_TEST_DATABASE_URL the test ensures the test server itself (scripts/services.sh
 * ensure-postgres, as CI does before `npm test`) and fails, never skips, when it cannot.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  appFor,
  baseEnv,
  type CliResult,
  envKeys,
  freePort,
  killAllChildren,
  migrateDatabase,
  runCli,
  show,
  sqlOn,
} from './cli-helpers.ts';
import { createTestDatabase, type TestDatabase } from './harness.ts';
import { clients } from './oauth-scenario.ts';
import { type OidcFixture, startOidcProvider } from './oidc-fixture.ts';
import {
  freshDatabase,
  login,
  OriginalDatabase,
  sealOriginal,
  seedScenario,
  testServerUrl,
} from './original-db.ts';

after(killAllChildren);

const CLI_TIMEOUT_MS = 60_000;

describe('nexus import original', { timeout: 300_000 }, () => {
  const originalKey = randomBytes(32);
  const secrets: string[] = [];
  const results: CliResult[] = [];
  let server: string;
  let original: OriginalDatabase;
  let idp: OidcFixture;
  let db: TestDatabase;
  let env: Record<string, string>;
  let broker: Awaited<ReturnType<typeof appFor>>;
  let alice: Awaited<ReturnType<typeof login>>;
  let bob: Awaited<ReturnType<typeof login>>;

  const cli = async (args: string[], key = originalKey.toString('base64'), url?: string) => {
    const result = await runCli(
      ['import', 'original', '--database-url', url ?? original.url, '--encryption-key', key, ...args],
      env,
      CLI_TIMEOUT_MS,
    );
    results.push(result);
    return result;
  };
  const api = (method: 'GET' | 'POST', url: string) =>
    broker.app.inject({ method, url, headers: { 'x-api-key': env.API_KEY! } });
  /** What Nexus holds, table by table: a run that writes nothing leaves it as it was. */
  const snapshot = async () => {
    const out: Record<string, unknown> = {};
    for (const table of ['providers', 'provider_aliases', 'connections', 'secret_store', 'audit_events'])
      out[table] = (await sqlOn<{ n: unknown }>(db, `SELECT count(*) AS n FROM ${table}`))[0]?.n;
    out.versions = await sqlOn(db, 'SELECT id, version, status FROM connections ORDER BY id');
    return JSON.stringify(out);
  };

  before(async () => {
    server = await testServerUrl();
    original = await OriginalDatabase.create(server, originalKey);
    idp = await startOidcProvider({ clients, rotateRefreshTokens: true });
    alice = await login(idp, clients[0]!, 'alice');
    bob = await login(idp, clients[1]!, 'bob');

    db = await createTestDatabase();
    env = {
      ...baseEnv(),
      ...db.env,
      NEXUS_ENV: 'test',
      ...envKeys(),
      API_KEY: `import-admin-${randomBytes(16).toString('hex')}`,
    };
    await migrateDatabase(env);
    broker = await appFor(env);
    // Nexus already has a "github" of its own, with another client: the original's is in conflict.
    const github = await broker.app.inject({
      method: 'POST',
      url: '/providers',
      headers: { 'x-api-key': env.API_KEY! },
      payload: {
        profile: {
          name: 'github',
          client_id: 'nexus-own-client',
          client_secret: 'nexus-own-secret',
          auth_url: 'https://github.com/login/oauth/authorize',
          token_url: 'https://github.com/login/oauth/access_token',
        },
      },
    });
    assert.equal(github.statusCode, 201, github.body);

    const weatherKey = `wk_${randomBytes(12).toString('hex')}`;
    secrets.push(alice.access_token, alice.refresh_token, bob.access_token, bob.refresh_token, weatherKey);
    secrets.push(
      ...clients.map((c) => c.client_secret),
      'gh-original-secret',
      originalKey.toString('base64'),
    );
    await seedScenario(original, { idp, alice, bob, weatherKey });
  });

  after(async () => {
    await broker?.close();
    await db?.drop();
    await original?.close();
    await idp?.close();
  });

  it('refuses a key that is not 32 bytes of base64, and a URL that is not PostgreSQL', async () => {
    const short = await cli([], randomBytes(16).toString('base64'));
    assert.equal(short.code, 2, show(short));
    assert.match(short.stderr, /32 bytes in standard base64/);
    const mysql = await cli([], undefined, 'mysql://user:pw@127.0.0.1/db');
    assert.equal(mysql.code, 2, show(mysql));
    assert.match(mysql.stderr, /must be a PostgreSQL URL/);
  });

  it('stops with a clear message when the source is unreachable or has no original schema', async () => {
    const before = await snapshot();
    const port = await freePort();
    const down = await cli(
      ['--apply'],
      undefined,
      `postgres://nexus_test:nexus_test@127.0.0.1:${port}/nowhere`,
    );
    assert.equal(down.code, 1, show(down));
    assert.match(
      down.stderr,
      new RegExp(`cannot reach the original's database at 127\\.0\\.0\\.1:${port}/nowhere`),
    );
    const empty = await freshDatabase(server, 'nexus_empty');
    try {
      const none = await cli(['--apply'], undefined, empty.url);
      assert.equal(none.code, 1, show(none));
      assert.match(
        none.stderr,
        /no original schema at .*provider_profiles, provider_aliases, connections, tokens not found/,
      );
    } finally {
      await empty.drop();
    }
    assert.equal(await snapshot(), before);
  });

  it('a dry run reports every row and what it would do, and writes nothing', async () => {
    const before = await snapshot();
    const dry = await cli([]);
    assert.equal(dry.code, 1, `failed rows make the exit code 1\n${show(dry)}`);
    assert.match(dry.stdout, /Dry run against the original .*nothing was written/);
    assert.match(dry.stdout, /providers: {3}3 would be created, 1 skipped, 2 failed/);
    assert.match(dry.stdout, /connections: 4 would be imported/);
    // The scratch registry ran Nexus's own validation: the same refusal --apply gets.
    assert.match(
      dry.stdout,
      new RegExp(
        `provider ${original.providerIds.bad} \\(bad\\): failed: invalid_provider: .*client_id: not used by auth_type api_key`,
      ),
    );
    assert.equal(await snapshot(), before);
    const report = JSON.parse((await cli(['--json'])).stdout);
    assert.equal(report.dry_run, true);
    assert.equal(report.connections.would_import, 4, JSON.stringify(report.connections));
    assert.equal(await snapshot(), before);
  });

  it('a wrong key fails clearly and writes nothing', async () => {
    const before = await snapshot();
    const wrong = await cli(['--apply'], randomBytes(32).toString('base64'));
    assert.equal(wrong.code, 1, show(wrong));
    assert.match(wrong.stderr, /does not decrypt the original's tokens .*Nothing was imported/);
    assert.equal(await snapshot(), before);
  });

  it('imports providers, aliases and connections under their original ids, and says why for every row it skips', async () => {
    const applied = await cli(['--apply']);
    assert.equal(applied.code, 1, show(applied));
    const out = applied.stdout;
    assert.match(out, /providers: {3}3 created, 1 skipped, 2 failed/);
    assert.match(out, /aliases: {5}1 created, 1 skipped/);
    assert.match(out, /connections: 4 imported, 3 skipped, 3 failed/);
    const line = (label: string) =>
      out.split('\n').find((l) => l.includes(`connection ${original.ids[label]}`)) ?? '';
    assert.match(line('pending'), /skipped: pending in the original/);
    assert.match(line('failed'), /skipped: failed in the original/);
    assert.match(line('deleted-provider'), /failed|skipped/);
    assert.match(line('deleted-provider'), /its provider was deleted in the original/);
    assert.match(line('invalid-provider'), /failed: its provider bad was not imported/);
    assert.match(line('conflict'), /failed: its provider github was not imported/);
    assert.match(
      out,
      /provider .* \(github\): failed: name conflict: Nexus already has a provider named github with a different client_id/,
    );
    assert.match(line('foreign-key'), /failed: tokens\.encrypted_data does not decrypt under this key/);

    // The provider secret went to the secret backend, sealed: never into the row in clear.
    const rows = await sqlOn<{ profile: string }>(db, "SELECT profile FROM providers WHERE name = 'idp'");
    assert.ok(!rows[0]!.profile.includes(clients[0]!.client_secret));
    const idp = JSON.parse((await api('GET', '/providers/by-name/idp')).body);
    const view = JSON.parse((await api('GET', `/providers/${idp.id}`)).body);
    assert.equal(view.has_client_secret, true);
    assert.deepEqual(view.aliases, ['identity']);
  });

  it('an agent gets the imported token by its original id, never its refresh token or id_token', async () => {
    const res = await api('GET', `/v1/token/${original.ids.alice}`);
    assert.equal(res.statusCode, 200, res.body);
    const token = JSON.parse(res.body);
    assert.equal(token.connection_id, original.ids.alice);
    assert.equal(token.access_token, alice.access_token);
    assert.equal(token.strategy.type, 'oauth2');
    for (const secret of [alice.refresh_token, 'header.claims.signature', clients[0]!.client_secret])
      assert.ok(!res.body.includes(secret));
    assert.ok(!/refresh_token|id_token/.test(res.body), res.body);
    // Scheduled like a fresh activation: refreshed by the worker ahead of the expiry.
    const [row] = await sqlOn<{ access_expires_at: unknown; refresh_due_at: unknown }>(
      db,
      'SELECT access_expires_at, refresh_due_at FROM connections WHERE id = ?',
      [original.ids.alice],
    );
    const expires = Number(row!.access_expires_at);
    assert.ok(
      Math.abs(expires - (Date.now() + 3600_000)) < 120_000,
      `expires ${new Date(expires).toISOString()}`,
    );
    assert.ok(Number(row!.refresh_due_at) < expires && Number(row!.refresh_due_at) > Date.now());

    const resolved = await api('GET', '/v1/resolve?workspace_id=alice&provider_name=identity');
    assert.equal(JSON.parse(resolved.body).connection_id, original.ids.alice, resolved.body);
    const weather = JSON.parse((await api('GET', `/v1/token/${original.ids.weather}`)).body);
    assert.equal(weather.credentials.api_key.startsWith('wk_'), true);
    // Provider ids are kept too: an agent that stored one keeps working.
    assert.equal(weather.provider_id, original.providerIds.weather, JSON.stringify(weather.provider_id));
    const byId = await api('GET', `/providers/${original.providerIds.weather}`);
    assert.equal(byId.statusCode, 200, byId.body);

    const attention = await api('GET', `/v1/token/${original.ids.attention}`);
    assert.equal(attention.statusCode, 409, attention.body);
    assert.equal(JSON.parse(attention.body).error, 'attention_required');
    const check = await api('GET', `/v1/check-connection/${original.ids.attention}`);
    assert.equal(JSON.parse(check.body).status, 'attention_required');
    for (const label of [
      'pending',
      'failed',
      'deleted-provider',
      'invalid-provider',
      'conflict',
      'foreign-key',
    ])
      assert.equal((await api('GET', `/v1/token/${original.ids[label]}`)).statusCode, 404, label);
  });

  it('the imported refresh tokens work against the provider that issued them', async () => {
    const before = idp.counts.refresh_token;
    const refreshed = await api('POST', `/v1/refresh/${original.ids.alice}`);
    assert.equal(refreshed.statusCode, 200, refreshed.body);
    const token = JSON.parse(refreshed.body);
    assert.notEqual(token.access_token, alice.access_token);
    assert.equal(idp.counts.refresh_token, before + 1);
    assert.ok(!refreshed.body.includes('refresh_token'));
    // Bob's token had expired in the original: the first read refreshes it (client_secret_basic).
    const read = await api('GET', `/v1/token/${original.ids.bob}`);
    assert.equal(read.statusCode, 200, read.body);
    assert.notEqual(JSON.parse(read.body).access_token, bob.access_token);
    assert.equal(idp.counts.refresh_token, before + 2);
    assert.equal(idp.counts.refresh_reused, 0);
  });

  it('a re-run imports only what is new, updates what the original changed, and duplicates nothing', async () => {
    const providersBefore = await sqlOn(db, 'SELECT id, name, version FROM providers ORDER BY id');
    // The original changed a provider during the cut-over: the re-run keeps Nexus's and says which
    // settings differ (review, 2026-12-07: it said nothing).
    await original.client.query(
      `UPDATE provider_profiles SET scopes = $1, params = params || $2::jsonb WHERE name = 'idp'`,
      [['api:read', 'api:write'], JSON.stringify({ revocation_endpoint: 'https://idp.example/revoke-v2' })],
    );
    await original.addConnection('late', 'weather', 'heidi', 'active', {
      value: { api_key: 'wk_made_during_cutover' },
    });
    secrets.push('wk_made_during_cutover', 'wk_recaptured');
    await original.client.query('UPDATE tokens SET encrypted_data = $1 WHERE connection_id = $2', [
      sealOriginal(originalKey, { api_key: 'wk_recaptured' }),
      original.ids.weather,
    ]);
    const keyFile = join(db.dataDir, 'original.key');
    writeFileSync(keyFile, `${originalKey.toString('base64')}\n`, { mode: 0o600 });
    const again = await runCli(
      [
        'import',
        'original',
        '--database-url',
        original.url,
        '--encryption-key-file',
        keyFile,
        '--apply',
        '--with-audit',
      ],
      env,
      CLI_TIMEOUT_MS,
    );
    results.push(again);
    assert.equal(again.code, 1, show(again));
    assert.match(again.stdout, /providers: {3}3 already there, 1 skipped, 2 failed/);
    assert.match(again.stdout, /connections: 1 imported, 1 updated, 3 already there, 3 skipped, 3 failed/);
    assert.match(again.stdout, /audit: {7}3 imported/);
    assert.match(
      again.stdout,
      new RegExp(`connection ${original.ids.alice} \\(idp\\): already there: Nexus has refreshed it`),
    );
    assert.match(
      again.stdout,
      new RegExp(
        `provider ${original.providerIds.idp} \\(idp\\): already there → Nexus id [0-9a-f-]+: these settings differ from the original's, and Nexus's are kept \\(change with PATCH /providers/\\{id\\}\\): scopes, params\\.revocation_endpoint`,
      ),
    );
    assert.doesNotMatch(
      again.stdout,
      /provider [0-9a-f-]+ \((idp-basic|weather)\): already there[^\n]*differ/,
    );
    assert.deepEqual(await sqlOn(db, 'SELECT id, name, version FROM providers ORDER BY id'), providersBefore);
    assert.equal(
      JSON.parse((await api('GET', `/v1/token/${original.ids.late}`)).body).credentials.api_key,
      'wk_made_during_cutover',
    );
    assert.equal(
      JSON.parse((await api('GET', `/v1/token/${original.ids.weather}`)).body).credentials.api_key,
      'wk_recaptured',
    );

    const history = await sqlOn<{ action: string; resource_id: string; details: string }>(
      db,
      "SELECT action, resource_id, details FROM audit_events WHERE actor = 'original' ORDER BY seq",
    );
    assert.deepEqual(
      history.map((h) => h.action),
      ['original.oauth_flow_completed', 'original.token_retrieved', 'original.token_refresh_fatal'],
    );
    assert.ok(history.every((h) => h.resource_id === original.ids.alice));
    assert.ok(
      !history.some((h) => h.details.includes('leaked-in-history')),
      'token values in history are redacted',
    );

    // Consumers of the original's GET /audit read the history under its own names and times.
    const fatal = JSON.parse(
      (await api('GET', '/audit?format=original&event_type=token_refresh_fatal&limit=10')).body,
    );
    assert.equal(fatal.length, 1, JSON.stringify(fatal));
    assert.equal(fatal[0].connection_id, original.ids.alice);
    assert.deepEqual(JSON.parse(fatal[0].event_data), { error: 'invalid_grant' });
    assert.ok(
      Date.now() - Date.parse(fatal[0].created_at) > 50 * 60_000,
      'the original time, not the import time',
    );
    const read = JSON.parse(
      (await api('GET', '/audit?format=original&event_type=token_retrieved&limit=10')).body,
    );
    const imported = read.filter((e: { ip_address: string | null }) => e.ip_address === '10.0.0.2');
    assert.equal(imported.length, 1, JSON.stringify(read));
    assert.ok(!imported[0].event_data.includes('leaked-in-history'));

    const third = await cli(['--apply', '--with-audit', '--json']);
    const report = JSON.parse(third.stdout);
    assert.deepEqual(report.connections, { unchanged: 5, skipped: 3, failed: 3 });
    assert.deepEqual(report.audit, {}, 'no history appended twice');
    assert.equal((await sqlOn(db, "SELECT id FROM audit_events WHERE actor = 'original'")).length, 3);
  });

  it('never prints a secret', () => {
    assert.ok(results.length >= 8);
    for (const result of results) {
      const text = result.stdout + result.stderr;
      for (const secret of secrets)
        assert.ok(!text.includes(secret), `a secret in the output of a run:\n${show(result)}`);
      assert.ok(!text.includes('nexus_test@'), 'the source URL is shown without its credentials');
    }
  });
});
