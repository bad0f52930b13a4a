import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { type CliProcess, killAllChildren, spawnCli } from './cli-helpers.ts';
import { DIALECT, json, startBroker, type TestBroker } from './harness.ts';
import { clients, REDIRECT, RETURN } from './oauth-scenario.ts';
import { type OidcFixture, startOidcProvider } from './oidc-fixture.ts';

/**
 * Several `nexus worker` processes on one PostgreSQL, against a real OpenID provider whose refresh
 * tokens rotate (reusing one revokes the whole grant, so a double refresh would break the
 * connection). PostgreSQL only by nature: SQLite is a single-process database.
 */

const PG_ONLY =
  DIALECT !== 'postgres' && 'multi-replica coordination is PostgreSQL-only: runs in `npm run test:pg`';

/**
 * Access tokens last this long. Their first refresh would fall due after half of it (decision
 * 0012); each test makes its connections due itself (`makeDue`), the way a burst of expiring
 * tokens arrives.
 */
const TTL_S = 150;

interface Setup {
  idp: OidcFixture;
  broker: TestBroker;
  workers: CliProcess[];
}

async function setUp(): Promise<Setup> {
  const idp = await startOidcProvider({ clients, accessTokenTtlSeconds: TTL_S });
  const broker = await startBroker();
  const res = await broker.request({
    method: 'POST',
    url: '/providers',
    payload: {
      profile: {
        name: 'idp',
        auth_header: 'client_secret_basic',
        client_id: 'client-basic',
        client_secret: 'client-basic-secret',
        auth_url: idp.endpoints.authorization,
        token_url: idp.endpoints.token,
        scopes: ['api:read'],
      },
    },
  });
  assert.equal(res.statusCode, 201, res.body);
  return { idp, broker, workers: [] };
}

/** A worker process on the test database; its next refreshes are due 2 minutes later. */
async function startWorker(setup: Setup, extra: Record<string, string> = {}): Promise<CliProcess> {
  const worker = spawnCli(['worker'], {
    ...setup.broker.env,
    LOG_LEVEL: 'info',
    NEXUS_REFRESH_MARGIN_SECONDS: '30',
    NEXUS_REFRESH_JITTER_SECONDS: '0',
    NEXUS_WORKER_POLL_MS: '200',
    NEXUS_UPSTREAM_TIMEOUT_SECONDS: '2',
    NEXUS_REFRESH_LEASE_SECONDS: '5',
    ...extra,
  });
  setup.workers.push(worker);
  await worker.waitFor('stdout', /nexus worker ready/);
  return worker;
}

async function connect(setup: Setup, workspace: string): Promise<string> {
  const started = json<{ authUrl: string; connection_id: string }>(
    await setup.broker.request({
      method: 'POST',
      url: '/v1/request-connection',
      payload: { user_id: workspace, provider_name: 'idp', return_url: RETURN },
    }),
  );
  const callback = await setup.idp.consent(started.authUrl);
  assert.equal(callback.origin + callback.pathname, REDIRECT);
  const res = await setup.broker.request({
    method: 'GET',
    url: callback.pathname + callback.search,
    key: null,
  });
  assert.equal(new URL(res.headers.location as string).searchParams.get('status'), 'success');
  return started.connection_id;
}

const db = (setup: Setup) => setup.broker.container.db.kysely;

/** Makes the connections due for refresh, spread evenly over the next `spreadMs`. */
async function makeDue(setup: Setup, ids: readonly string[], spreadMs: number): Promise<void> {
  const start = Date.now();
  for (const [i, id] of ids.entries())
    await db(setup)
      .updateTable('connections')
      .set({ refresh_due_at: start + Math.floor((i * spreadMs) / ids.length) })
      .where('id', '=', id)
      .execute();
}

async function refreshedCount(setup: Setup, ids: readonly string[]): Promise<number> {
  const row = await db(setup)
    .selectFrom('connections')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('id', 'in', [...ids])
    .where('last_refreshed_at', 'is not', null)
    .executeTakeFirst();
  return Number(row?.n ?? 0);
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** `connection.refreshed` audit events per connection, and the replicas that wrote them. */
async function refreshAudit(setup: Setup, ids: readonly string[]) {
  const rows = await db(setup)
    .selectFrom('audit_events')
    .select(['resource_id', 'details'])
    .where('action', '=', 'connection.refreshed')
    .where('resource_id', 'in', [...ids])
    .execute();
  const perConnection = new Map<string, number>();
  const replicas = new Set<string>();
  for (const r of rows) {
    perConnection.set(r.resource_id!, (perConnection.get(r.resource_id!) ?? 0) + 1);
    replicas.add((JSON.parse(r.details ?? '{}') as { replica?: string }).replica ?? '?');
  }
  return { perConnection, replicas };
}

async function statuses(setup: Setup, ids: readonly string[]): Promise<Record<string, number>> {
  const rows = await db(setup)
    .selectFrom('connections')
    .select((eb) => ['status', eb.fn.countAll<number>().as('n')])
    .where('id', 'in', [...ids])
    .groupBy('status')
    .execute();
  return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
}

async function tearDown(setup: Setup | undefined): Promise<void> {
  if (setup === undefined) return;
  for (const w of setup.workers) w.kill('SIGTERM');
  await Promise.allSettled(setup.workers.map((w) => w.wait(15_000)));
  killAllChildren();
  await setup.broker.close();
  await setup.idp.close();
}

describe('refresh worker on several replicas', { skip: PG_ONLY }, () => {
  let setup: Setup;
  before(async () => {
    setup = await setUp();
  });
  after(() => tearDown(setup));

  it('three workers refresh 200 connections due within the same minute, each exactly once', async () => {
    for (let i = 0; i < 3; i++) await startWorker(setup);
    const base = setup.idp.counts.refresh_token;
    const ids: string[] = [];
    for (let i = 0; i < 200; i++) ids.push(await connect(setup, `replica-user-${i}`));
    await makeDue(setup, ids, 10_000);
    await waitFor(
      'every connection refreshed',
      async () => (await refreshedCount(setup, ids)) === 200,
      90_000,
    );
    // Audit events are group-committed just after the refresh itself: wait for the last batch.
    await waitFor(
      'every refresh audited',
      async () => (await refreshAudit(setup, ids)).perConnection.size === 200,
      10_000,
    );
    // The next round is two minutes away: what happened so far is the whole first round.
    assert.equal(setup.idp.counts.refresh_token - base, 200, 'one token-endpoint call per connection');
    const { perConnection, replicas } = await refreshAudit(setup, ids);
    assert.equal(perConnection.size, 200);
    assert.deepEqual([...new Set(perConnection.values())], [1], 'no connection refreshed twice');
    assert.ok(replicas.size >= 2, `the work was shared (${replicas.size} replica(s) refreshed)`);
    assert.deepEqual(await statuses(setup, ids), { active: 200 }, 'none broken, none expired');
  });
});

describe('a worker killed in the middle of a batch', { skip: PG_ONLY }, () => {
  let setup: Setup | undefined;
  afterEach(async () => {
    await tearDown(setup);
    setup = undefined;
  });

  it('leaves its leased connections to the others once the lease expires; none is refreshed twice', async () => {
    setup = await setUp();
    const s = setup;
    const ids: string[] = [];
    for (let i = 0; i < 30; i++) ids.push(await connect(s, `killed-${i}`));
    await makeDue(s, ids, 0);
    // Token requests are held 20 s before reaching the provider: the doomed worker's never arrive.
    s.idp.setTokenEndpointFault('slow', 20_000);
    const base = s.idp.counts.refresh_token;
    const doomed = await startWorker(s, {
      // A wide window to kill it in, even on a loaded machine, before its own requests time out.
      NEXUS_UPSTREAM_TIMEOUT_SECONDS: '8',
      NEXUS_REFRESH_LEASE_SECONDS: '11',
    });
    let leased: string[] = [];
    await waitFor(
      'the first worker to lease a batch',
      async () => {
        const rows = await db(s)
          .selectFrom('connections')
          .select('id')
          .where('id', 'in', ids)
          .where('refresh_lease_owner', 'is not', null)
          .execute();
        leased = rows.map((r) => r.id);
        return leased.length >= 10;
      },
      20_000,
    );
    doomed.kill('SIGKILL');
    await doomed.wait(5_000);
    s.idp.setTokenEndpointFault('none');
    for (let i = 0; i < 2; i++) await startWorker(s);
    await waitFor('every connection refreshed', async () => (await refreshedCount(s, ids)) === 30, 90_000);
    // Audit events are group-committed just after the refresh itself: wait for the last batch (as
    // the tests above do; without it a loaded CI machine read the audit before the last commit).
    await waitFor(
      'every refresh audited',
      async () => (await refreshAudit(s, ids)).perConnection.size === 30,
      10_000,
    );
    assert.equal(s.idp.counts.refresh_token - base, 30, 'one token-endpoint call per connection');
    const { perConnection } = await refreshAudit(s, ids);
    assert.deepEqual([...new Set(perConnection.values())], [1]);
    for (const id of leased) assert.equal(perConnection.get(id), 1, `${id}, leased by the killed worker`);
    assert.deepEqual(await statuses(s, ids), { active: 30 });
  });
});

describe('a worker starved of CPU in the middle of a refresh', { skip: PG_ONLY }, () => {
  let setup: Setup | undefined;
  afterEach(async () => {
    await tearDown(setup);
    setup = undefined;
  });

  it('keeps its lease past the lease time while its call is in flight: nobody else spends the token (decision 0012)', async () => {
    setup = await setUp();
    const s = setup;
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push(await connect(s, `starved-${i}`));
    const leaseEnv = { NEXUS_UPSTREAM_TIMEOUT_SECONDS: '8', NEXUS_REFRESH_LEASE_SECONDS: '10' };
    // Held 3 s, then processed: the provider rotates the token while the worker is stopped.
    await s.idp.setTokenEndpointFault('slow', 3_000);
    const base = { ...s.idp.counts };
    const starved = await startWorker(s, leaseEnv);
    await makeDue(s, ids, 0);
    await waitFor(
      'the first worker to call the provider for every connection',
      async () => {
        const rows = await db(s)
          .selectFrom('connections')
          .select('id')
          .where('id', 'in', ids)
          .where('refresh_started_at', 'is not', null)
          .execute();
        return rows.length === ids.length;
      },
      20_000,
    );
    // Stopped only once every call has left: the provider holds all three.
    await waitFor(
      'the provider to receive every call',
      async () => s.idp.counts.token_requests - base.token_requests >= ids.length,
      20_000,
    );
    starved.kill('SIGSTOP');
    const stoppedAt = performance.now();
    const other = await startWorker(s, leaseEnv);
    // Longer than the lease (10 s), shorter than the lease and its grace for a call in flight,
    // counted from the stop: a slow start of the other worker does not eat into the grace.
    await new Promise((r) => setTimeout(r, Math.max(0, stoppedAt + 13_000 - performance.now())));
    assert.equal(await refreshedCount(s, ids), 0, 'the other worker did not take the leases over');
    starved.kill('SIGCONT');
    await s.idp.setTokenEndpointFault('none');
    await waitFor('every connection refreshed', async () => (await refreshedCount(s, ids)) === 3, 30_000);
    assert.equal(
      s.idp.counts.refresh_token - base.refresh_token,
      3,
      'one token-endpoint call per connection',
    );
    assert.equal(s.idp.counts.refresh_reused, base.refresh_reused, 'no refresh token presented twice');
    await waitFor(
      'every refresh audited',
      async () => (await refreshAudit(s, ids)).perConnection.size === 3,
      10_000,
    );
    assert.deepEqual([...new Set((await refreshAudit(s, ids)).perConnection.values())], [1]);
    assert.deepEqual(await statuses(s, ids), { active: 3 });
    assert.ok(!other.exited);
  });
});
