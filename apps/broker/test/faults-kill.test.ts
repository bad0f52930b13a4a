/**
 * Faults: a process killed with SIGKILL in the middle of its work, then run again; nothing is lost.
 *
 * - `nexus secrets migrate --tokens`, killed at the two moments where a connection's credentials
 *   are in two places: after the backend copy was written and before the row points at it (towards
 *   `secret-backend`), and after the row holds them again and before the copy is deleted (towards
 *   `database`). The process is held at that moment by a trigger on the database (it stalls the
 *   statement, then fails it, so that a write the killed process started can never commit).
 * - `nexus serve`, killed while it exchanges an authorization code (the provider's token endpoint
 *   made slow), then started again on the same database.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import {
  connectionOfPath,
  credentialsPath,
  isBackendMarker,
} from '../src/modules/connections/credential-store.ts';
import { MIGRATION_LEASE_MS } from '../src/modules/connections/tokens-migration.ts';
import {
  baseEnv,
  type CliProcess,
  envKeys,
  fetchWithin,
  freePort,
  killAllChildren,
  runCli,
  show,
  spawnCli,
  sqlOn,
} from './cli-helpers.ts';
import { createTestDatabase, DIALECT, json, type TestDatabase } from './harness.ts';
import { RETURN, Scenario } from './oauth-scenario.ts';
import { type OidcFixture, startOidcProvider } from './oidc-fixture.ts';

after(killAllChildren);

/**
 * Makes the statements `when` selects (a trigger condition over OLD/NEW) stall for a few seconds
 * and then fail: the process that runs one can be killed inside it, and its write never commits
 * (a killed client's PostgreSQL session would otherwise finish the statement and commit it).
 * SQLite burns CPU inside the writer's transaction (it has no sleep; ~8 s here, ample for a loaded
 * machine to poll and kill), PostgreSQL sleeps.
 */
async function stallStatements(
  db: TestDatabase,
  table: 'connections' | 'secret_store',
  event: 'UPDATE' | 'DELETE',
  when: { sqlite: string; postgres: string },
): Promise<() => Promise<void>> {
  if (DIALECT === 'sqlite') {
    await sqlOn(
      db,
      `CREATE TRIGGER nexus_test_stall BEFORE ${event} ON ${table} WHEN ${when.sqlite} BEGIN
         SELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 60000000) SELECT x FROM c);
         SELECT RAISE(ABORT, 'nexus test stall');
       END`,
    );
    return async () => {
      await sqlOn(db, 'DROP TRIGGER IF EXISTS nexus_test_stall');
    };
  }
  await sqlOn(
    db,
    `CREATE FUNCTION nexus_test_stall() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN PERFORM pg_sleep(4); RAISE EXCEPTION 'nexus test stall'; END $$`,
  );
  await sqlOn(
    db,
    `CREATE TRIGGER nexus_test_stall BEFORE ${event} ON ${table} FOR EACH ROW WHEN (${when.postgres})
       EXECUTE FUNCTION nexus_test_stall()`,
  );
  return async () => {
    await sqlOn(db, `DROP TRIGGER IF EXISTS nexus_test_stall ON ${table}`);
    await sqlOn(db, 'DROP FUNCTION IF EXISTS nexus_test_stall()');
  };
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('kill -9 during `nexus secrets migrate --tokens`, then run again', { timeout: 180_000 }, () => {
  const s = new Scenario();
  const ids: string[] = [];
  /** What GET /v1/token/{id} answered before any migration. */
  const expected = new Map<string, string>();

  before(async () => {
    await s.start();
    await s.call(
      { method: 'POST', url: '/providers', payload: { profile: { name: 'crm', auth_type: 'api_key' } } },
      201,
    );
    // A few OAuth grants (with refresh tokens) and many captured keys: enough rows that the run
    // is caught in its middle.
    for (let i = 0; i < 3; i++) ids.push(await s.connect('idp-basic', `oauth-${i}`));
    for (let i = 0; i < 37; i++) {
      const started = json<{ state: string; connection_id: string }>(
        await s.call(
          {
            method: 'POST',
            url: '/v1/request-connection',
            payload: { user_id: `key-${i}`, provider_name: 'crm', return_url: RETURN },
          },
          200,
        ),
      );
      await s.call(
        {
          method: 'POST',
          url: '/v1/capture-credential',
          key: null,
          payload: {
            state: started.state,
            credentials: { api_key: `k-${i}-${randomBytes(8).toString('hex')}` },
          },
        },
        200,
      );
      ids.push(started.connection_id);
    }
    ids.sort();
    for (const id of ids) expected.set(id, await served(id));
  });
  after(() => s.close());

  /** The credentials a caller gets for `id` from the broker, as text to compare. */
  async function served(id: string): Promise<string> {
    const token = await s.token(id);
    return JSON.stringify({ access_token: token.access_token, credentials: token.credentials });
  }
  async function assertNothingLost(when: string) {
    for (const id of ids)
      assert.equal(await served(id), expected.get(id), `${when}: ${id} serves what it did`);
  }
  const db = () => s.broker.db;
  const env = (to: 'database' | 'secret-backend') => ({ ...s.broker.env, TOKEN_STORE: to });
  async function rows() {
    const all = await s.broker.container.db.kysely
      .selectFrom('connections')
      .select(['id', 'credentials', 'refresh_lease_owner', 'refresh_lease_until'])
      .where('id', 'in', ids)
      .execute();
    return new Map(
      all.map((r) => [
        r.id,
        {
          marker: isBackendMarker(r.credentials),
          lease: r.refresh_lease_owner,
        },
      ]),
    );
  }
  /** The connections with a copy in the backend. */
  async function copies(): Promise<Set<string>> {
    return new Set((await copyPaths()).map((p) => connectionOfPath(p)!));
  }
  const copyPaths = () => s.broker.container.secrets.list(credentialsPath(''), { limit: 1000 });
  /** Runs the command to completion: exit 0, nothing failed, nothing busy; its JSON summary. */
  async function rerun(to: 'database' | 'secret-backend') {
    const started = Date.now();
    const result = await runCli(['secrets', 'migrate', '--tokens', '--json'], env(to), 60_000);
    assert.equal(result.code, 0, show(result));
    const summary = JSON.parse(result.stdout.trim().split('\n').pop()!) as {
      moved: number;
      leftoversDeleted: number;
      busy: number;
      failed: unknown[];
    };
    assert.deepEqual([summary.busy, summary.failed], [0, []], show(result));
    assert.ok(
      Date.now() - started < MIGRATION_LEASE_MS + 15_000,
      'the rerun waited only for the lease left behind',
    );
    return { result, summary };
  }

  it('towards the backend: killed between the copy and the switch; the rerun waits for the lease and finishes', async () => {
    const x = ids[Math.floor(ids.length / 2)]!;
    const release = await stallStatements(db(), 'connections', 'UPDATE', {
      sqlite: `OLD.id = '${x}' AND OLD.credentials IS NOT NEW.credentials`,
      postgres: `OLD.id = '${x}' AND OLD.credentials IS DISTINCT FROM NEW.credentials`,
    });
    let cli: CliProcess | undefined;
    try {
      cli = spawnCli(['secrets', 'migrate', '--tokens', '--json'], env('secret-backend'));
      // Its copy written, its lease held: the run is in the switch of `x`, which stalls.
      await until('the run to reach the middle connection', async () => {
        const lease = (await rows()).get(x)?.lease ?? '';
        return lease.startsWith('migrate-') && (await copies()).has(x);
      });
      await pause(200);
      cli.kill('SIGKILL');
      const killed = await cli.wait();
      assert.equal(killed.signal, 'SIGKILL', show(killed));
    } finally {
      cli?.kill('SIGKILL');
      await release();
    }

    const state = await rows();
    const stored = await copies();
    assert.ok(state.get(x)!.lease?.startsWith('migrate-'), 'the killed run left its lease');
    assert.ok(!state.get(x)!.marker && stored.has(x), 'x: copied, the row not switched');
    const moved = ids.filter((id) => state.get(id)!.marker);
    assert.ok(moved.length > 0 && moved.length < ids.length, `killed mid-run (${moved.length} moved)`);
    for (const id of moved) assert.ok(stored.has(id), `${id}: the row points at a copy that exists`);
    await assertNothingLost('after the kill');

    const { result, summary } = await rerun('secret-backend');
    assert.match(result.stderr, /leased, by a refresh or by a run of this command that was interrupted/);
    assert.equal(summary.moved, ids.length - moved.length);
    const done = await rows();
    assert.deepEqual(
      ids.filter((id) => !done.get(id)!.marker || done.get(id)!.lease !== null),
      [],
      'every row points at the backend, no lease left',
    );
    assert.deepEqual(
      (await copyPaths()).map((p) => connectionOfPath(p)!).sort(),
      ids,
      'one copy per connection (what the killed run copied for x deleted), no other',
    );
    await assertNothingLost('after the rerun');
  });

  it('back to the database: killed between the switch and the delete; the rerun deletes the leftover copy', async () => {
    const x = ids[Math.floor(ids.length / 3)]!;
    const path = (
      await sqlOn<{ path: string }>(db(), 'SELECT path FROM secret_store WHERE path LIKE ?', [`%${x}%`])
    )[0]?.path;
    assert.ok(path, `the copy of ${x} in secret_store`);
    const release = await stallStatements(db(), 'secret_store', 'DELETE', {
      sqlite: `OLD.path = '${path}'`,
      postgres: `OLD.path = '${path}'`,
    });
    let cli: CliProcess | undefined;
    try {
      cli = spawnCli(['secrets', 'migrate', '--tokens', '--json'], env('database'));
      // The row holds the credentials again, the lease is held: the run is deleting the copy.
      await until('the run to reach the connection', async () => {
        const row = (await rows()).get(x);
        return row?.marker === false && (row.lease ?? '').startsWith('migrate-');
      });
      await pause(200);
      cli.kill('SIGKILL');
      const killed = await cli.wait();
      assert.equal(killed.signal, 'SIGKILL', show(killed));
    } finally {
      cli?.kill('SIGKILL');
      await release();
    }

    const state = await rows();
    const stored = await copies();
    assert.ok(stored.has(x) && !state.get(x)!.marker, 'x: back in the row, its copy not yet deleted');
    for (const id of ids.filter((i) => state.get(i)!.marker))
      assert.ok(stored.has(id), `${id}: the row points at a copy that exists`);
    await assertNothingLost('after the kill');

    const { summary } = await rerun('database');
    assert.equal(summary.leftoversDeleted, 1, 'the copy the killed run left is deleted');
    const done = await rows();
    assert.deepEqual(
      ids.filter((id) => done.get(id)!.marker || done.get(id)!.lease !== null),
      [],
      'every row holds its credentials, no lease left',
    );
    assert.deepEqual([...(await copies())], [], 'no copy left in the backend');
    await assertNothingLost('after the rerun');
  });
});

describe('kill -9 during a consent callback, then run again', { timeout: 180_000 }, () => {
  let idp: OidcFixture;
  let database: TestDatabase;
  let base: string;
  let env: Record<string, string>;
  let broker: CliProcess | undefined;
  const adminKey = `nxtest_${randomBytes(16).toString('hex')}`;

  /** `nexus serve` (with its background jobs) on the test database, on the same port every time. */
  async function serve(): Promise<CliProcess> {
    const started = spawnCli(['serve'], env);
    await started.waitFor('stdout', /"msg":"nexus ready"/, 20_000);
    broker = started;
    return started;
  }
  async function kill(signal: NodeJS.Signals) {
    broker?.kill(signal);
    const result = await broker?.wait(15_000);
    broker = undefined;
    return result;
  }
  async function api(method: string, path: string, body?: unknown): Promise<Response> {
    return fetchWithin(`${base}${path}`, {
      method,
      headers: {
        'x-api-key': adminKey,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  }
  /** request-connection, then the provider's own login and consent pages: the callback URL (not requested). */
  async function startConsent(user: string): Promise<{ id: string; callback: string }> {
    const res = await api('POST', '/v1/request-connection', {
      user_id: user,
      provider_name: 'idp',
      return_url: RETURN,
    });
    const started = (await res.json()) as { authUrl: string; connection_id: string };
    assert.equal(res.status, 200, JSON.stringify(started));
    const back = await idp.consent(started.authUrl);
    return { id: started.connection_id, callback: `${base}${back.pathname}${back.search}` };
  }
  /** The browser arriving at the callback: where the broker sends it back to. */
  async function callback(url: string): Promise<URL> {
    const res = await fetchWithin(url, { redirect: 'manual' }, 20_000);
    await res.body?.cancel();
    assert.equal(res.status, 302, `the callback answers a redirect, not ${res.status}`);
    return new URL(res.headers.get('location')!);
  }
  async function connect(user: string): Promise<string> {
    const { id, callback: url } = await startConsent(user);
    const back = await callback(url);
    assert.equal(back.searchParams.get('status'), 'success', back.href);
    return id;
  }
  async function token(id: string): Promise<{ status: number; access_token?: string }> {
    const res = await api('GET', `/v1/token/${id}`);
    return { status: res.status, ...((await res.json()) as { access_token?: string }) };
  }
  async function status(id: string): Promise<string> {
    const rows = await sqlOn<{ status: string }>(database, 'SELECT status FROM connections WHERE id = ?', [
      id,
    ]);
    return rows[0]!.status;
  }
  async function copyOf(id: string): Promise<boolean> {
    const rows = await sqlOn(database, 'SELECT path FROM secret_store WHERE path = ? OR path LIKE ?', [
      credentialsPath(id),
      `${credentialsPath(id)}/%`,
    ]);
    return rows.length > 0;
  }
  /** Ten minutes pass for `id`'s consent; the restarted broker's housekeeping (it runs at start) expires it. */
  async function expireByHousekeeping(id: string) {
    await sqlOn(database, 'UPDATE connections SET pending_expires_at = ? WHERE id = ?', [Date.now() - 1, id]);
    await kill('SIGTERM');
    const restarted = await serve();
    await restarted.waitFor('stdout', /"expiredConnections":[1-9].*"msg":"housekeeping"/, 15_000);
    await until(
      'housekeeping to expire the interrupted connection',
      async () => (await status(id)) === 'expired',
    );
    const events = await sqlOn<{ details: string }>(
      database,
      "SELECT details FROM connection_events WHERE connection_id = ? AND type = 'connection.expired'",
      [id],
    );
    assert.deepEqual(
      events.map((e) => JSON.parse(e.details)),
      [{ reason: 'not_completed' }],
      'one connection.expired event',
    );
  }

  before(async () => {
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    idp = await startOidcProvider({
      clients: [
        {
          client_id: 'client-basic',
          client_secret: 'client-basic-secret',
          token_endpoint_auth_method: 'client_secret_basic',
          redirect_uris: [`${base}/auth/callback`],
        },
      ],
    });
    database = await createTestDatabase();
    env = {
      ...baseEnv(),
      ...database.env,
      ...envKeys(),
      NEXUS_ENV: 'test',
      HOST: '127.0.0.1',
      PORT: String(port),
      BASE_URL: base,
      API_KEYS: `admin:${adminKey}`,
      ALLOWED_RETURN_DOMAINS: 'localhost',
      TOKEN_STORE: 'secret-backend',
      LOG_LEVEL: 'info',
    };
    await serve();
    const created = await api('POST', '/providers', {
      profile: {
        name: 'idp',
        auth_header: 'client_secret_basic',
        client_id: 'client-basic',
        client_secret: 'client-basic-secret',
        auth_url: idp.endpoints.authorization,
        token_url: idp.endpoints.token,
        scopes: ['api:read'],
      },
    });
    assert.equal(created.status, 201, await created.text());
  });
  after(async () => {
    killAllChildren();
    await idp?.close();
    await database?.drop();
  });

  it('killed inside the code exchange: the retried callback fails cleanly, the active connection stays, a new consent completes, the pending one expires', async () => {
    const old = await connect('user-1');
    const oldToken = await token(old);
    assert.equal(oldToken.status, 200);

    // The user reconnects; the provider's token endpoint holds the code exchange for a minute.
    const pending = await startConsent('user-1');
    idp.setTokenEndpointFault('slow', 60_000);
    const inFlight = fetchWithin(pending.callback, { redirect: 'manual' }, 30_000).then(
      (r) => `answered ${r.status}`,
      () => 'no answer',
    );
    await until('the broker to consume the flow and call the provider', async () => {
      const flows = await sqlOn<{ used_at: number | null }>(
        database,
        'SELECT used_at FROM consent_flows WHERE connection_id = ?',
        [pending.id],
      );
      return flows[0]?.used_at != null;
    });
    await pause(500);
    const killed = await kill('SIGKILL');
    assert.equal(killed?.signal, 'SIGKILL');
    assert.equal(await inFlight, 'no answer', 'the browser saw the connection drop');
    idp.setTokenEndpointFault('none');
    assert.equal(await status(pending.id), 'pending');
    assert.equal(await copyOf(pending.id), false, 'nothing was stored for it');

    await serve();
    // The browser retries the same URL: a clean failure, back to the application.
    const retried = await callback(pending.callback);
    assert.equal(retried.origin + retried.pathname, RETURN);
    assert.equal(retried.searchParams.get('status'), 'failed');
    assert.equal(retried.searchParams.get('error'), 'state_reused');
    // The connection the user had is untouched, and still serves its token.
    assert.equal(await status(old), 'active');
    assert.equal((await token(old)).access_token, oldToken.access_token);

    // Run again: a new consent completes and replaces the old connection.
    const fresh = await connect('user-1');
    assert.equal((await token(fresh)).status, 200);
    assert.equal(await status(old), 'revoked', 'superseded by the new one');
    assert.ok((await token(old)).status >= 400);
    assert.deepEqual(
      [await copyOf(fresh), await copyOf(old), await copyOf(pending.id)],
      [true, false, false],
      'copies: the new connection only',
    );

    await expireByHousekeeping(pending.id);
    assert.equal(await copyOf(pending.id), false);
    assert.equal((await token(fresh)).status, 200, 'the new connection is unaffected');
  });

  it('killed after the tokens were stored and before the connection was activated: nothing is left behind', async () => {
    const pending = await startConsent('user-2');
    // The activation of this connection stalls (then fails): the broker is killed inside it.
    const release = await stallStatements(database, 'connections', 'UPDATE', {
      sqlite: `OLD.id = '${pending.id}' AND NEW.status = 'active'`,
      postgres: `OLD.id = '${pending.id}' AND NEW.status = 'active'`,
    });
    try {
      const inFlight = fetchWithin(pending.callback, { redirect: 'manual' }, 30_000).then(
        (r) => `answered ${r.status}`,
        () => 'no answer',
      );
      await until('the tokens to be stored', () => copyOf(pending.id));
      await pause(200);
      assert.equal((await kill('SIGKILL'))?.signal, 'SIGKILL');
      assert.equal(await inFlight, 'no answer');
    } finally {
      await release();
    }
    assert.equal(await status(pending.id), 'pending');

    await serve();
    const retried = await callback(pending.callback);
    assert.equal(retried.searchParams.get('status'), 'failed');
    await expireByHousekeeping(pending.id);
    assert.equal(await copyOf(pending.id), false, 'no copy left for the expired connection');
  });
});
