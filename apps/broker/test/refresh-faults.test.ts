import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, afterEach, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { assertProblem, DIALECT, json } from './harness.ts';
import { RETURN, Scenario } from './oauth-scenario.ts';

/**
 * Refresh you can trust (decision 0012), in one broker process on SQLite and PostgreSQL, against a
 * real OpenID provider with rotating refresh tokens and reuse detection: answers that do not
 * extend the token, answers that are lost after the provider processed the call, a provider that
 * hangs, one that is down, and a lease held by another replica. The broker runs on a test clock;
 * the provider's tokens last an hour on the real one.
 */

const HOUR = 3600_000;
const MARGIN_S = 300;

describe('refresh under provider faults', () => {
  const s = new Scenario();
  before(() =>
    s.start({
      env: { NEXUS_REFRESH_MARGIN_SECONDS: String(MARGIN_S), NEXUS_REFRESH_JITTER_SECONDS: '0' },
    }),
  );
  after(() => s.close());
  /** Connections made by the current test, revoked after it so the next one's worker sees only its own. */
  const made: string[] = [];
  afterEach(async () => {
    await s.idp.setTokenEndpointFault('none');
    s.idp.setTokenResponseRewrite(undefined);
    for (const id of made.splice(0)) await s.call({ method: 'DELETE', url: `/v1/connections/${id}` });
  });
  async function connect(workspace: string): Promise<string> {
    const id = await s.connect('idp-basic', workspace);
    made.push(id);
    return id;
  }

  const worker = () => s.broker.container.refreshWorker;
  const row = async (id: string) => (await s.broker.container.connectionsStore.find(id))!;
  async function eventTypes(id: string): Promise<{ type: string; reason?: unknown }[]> {
    const res = await s.call({ method: 'GET', url: `/admin/v1/events?connection_id=${id}` }, 200);
    return json<{ events: { type: string; created_at: string; details: { reason?: unknown } }[] }>(res)
      .events.sort((a, b) => a.created_at.localeCompare(b.created_at))
      .map((e) => ({
        type: e.type,
        ...(e.details.reason === undefined ? {} : { reason: e.details.reason }),
      }));
  }
  /** A fresh connection whose background refresh is due now (its token still has 300 s to live). */
  async function dueConnection(workspace: string): Promise<string> {
    const id = await connect(workspace);
    s.clock = (await row(id)).refresh_due_at!;
    return id;
  }

  // 0.5: a lifetime under a second is none (whole seconds), not a token due again at once.
  for (const lifetime of [0, 0.5])
    it(`backs off when the provider answers an already expired token (expires_in: ${lifetime}), and serves no loop`, async () => {
      const start = s.clock;
      const id = await dueConnection(`expires-in-${lifetime}`);
      s.idp.setTokenResponseRewrite((body) => ({ ...body, expires_in: lifetime }));
      const base = s.idp.counts.refresh_token;
      assert.equal(await worker().runOnce(), 1);
      let r = await row(id);
      assert.equal(r.status, 'active');
      assert.equal(r.last_error, 'token_not_extended');
      assert.equal(r.refresh_failures, 1);
      assert.ok(r.refresh_due_at! - s.clock >= 24_000, 'the next attempt backs off');
      // Agents reading the expired token do not turn into refresh calls: each is told when to retry.
      for (let i = 0; i < 20; i++) {
        const res = await s.call({ method: 'GET', url: `/v1/token/${id}` });
        assertProblem(res, 502, 'provider_unavailable');
        assert.ok(json<{ details: { retry_after_seconds: number } }>(res).details.retry_after_seconds > 0);
        assert.ok(Number(res.headers['retry-after']) > 0, 'and in Retry-After');
      }
      assert.equal(await worker().runOnce(), 0, 'nothing due before the backoff');
      assert.equal(s.idp.counts.refresh_token - base, 1, 'one call to the provider in all');
      // The provider mends its ways; a read after the floor refreshes once and the connection recovers.
      s.idp.setTokenResponseRewrite(undefined);
      s.clock += 16_000;
      const token = await s.token(id);
      assert.ok(Date.parse(token.expires_at!) > s.clock);
      assert.equal(s.idp.counts.refresh_token - base, 2);
      r = await row(id);
      assert.equal(r.refresh_failures, 0);
      assert.ok(r.refresh_due_at! > s.clock + HOUR / 2, 'scheduled from the new token');
      assert.deepEqual(await eventTypes(id), [
        { type: 'connection.active' },
        { type: 'connection.refresh_failed', reason: 'token_not_extended' },
        { type: 'connection.refresh_recovered' },
      ]);
      s.clock = start;
    });

  it('does not follow a provider that keeps answering the same expiry into shorter and shorter refreshes', async () => {
    const start = s.clock;
    const id = await dueConnection('same-expiry');
    const expiry = (await row(id)).access_expires_at!;
    // Whatever the time, the answer expires when the first token did (a capped session).
    s.idp.setTokenResponseRewrite((body) => ({
      ...body,
      expires_in: Math.max(0, Math.round((expiry - s.clock) / 1000)),
    }));
    const base = s.idp.counts.refresh_token;
    // Walk the remaining 300 s of the token's life in 5 s steps, with the worker and a reader.
    while (s.clock < expiry + 60_000) {
      await worker().runOnce();
      await s.call({ method: 'GET', url: `/v1/token/${id}` });
      s.clock += 5_000;
    }
    const calls = s.idp.counts.refresh_token - base;
    assert.ok(calls >= 2 && calls <= 6, `${calls} refreshes over 6 minutes; backoff keeps them few`);
    assert.equal((await row(id)).status, 'active', 'not given up on: the provider still answers');
    s.clock = start;
  });

  it('a refresh whose answer was lost after the provider rotated the token: tried once, then attention_required (refresh_outcome_lost)', async () => {
    const start = s.clock;
    const id = await dueConnection('answer-lost');
    await s.idp.setTokenEndpointFault('answer_lost', 10_000);
    const base = { ...s.idp.counts };
    assert.equal(await worker().runOnce(), 1);
    let r = await row(id);
    assert.equal(r.status, 'active', 'the outcome is unknown, not a lost grant yet');
    assert.notEqual(r.refresh_started_at, null, 'the row remembers that a call was in flight');
    assert.equal(s.idp.counts.refresh_token - base.refresh_token, 1, 'the provider processed it');
    await s.idp.setTokenEndpointFault('none');
    s.clock += 40_000;
    assert.equal(await worker().runOnce(), 1, 'the stored token is tried once');
    r = await row(id);
    assert.equal(r.status, 'attention_required');
    assert.equal(r.last_error, 'refresh_outcome_lost');
    assert.equal(r.refresh_due_at, null);
    assert.equal(r.refresh_started_at, null);
    assert.equal(
      s.idp.counts.refresh_reused - base.refresh_reused,
      1,
      'the one presentation the crash forced',
    );
    s.clock += HOUR;
    assert.equal(await worker().runOnce(), 0, 'never retried in a loop');
    const res = await s.call({ method: 'GET', url: `/v1/token/${id}` });
    assertProblem(res, 409, 'attention_required');
    assert.deepEqual(await eventTypes(id), [
      { type: 'connection.active' },
      { type: 'connection.refresh_failed', reason: 'timeout' },
      { type: 'connection.attention_required', reason: 'refresh_outcome_lost' },
    ]);
    assert.equal(s.idp.counts.refresh_token - base.refresh_token, 2);
    s.clock = start;
  });

  it('a provider that hangs for several refresh cycles, then comes back: the connection recovers by itself', async () => {
    const start = s.clock;
    const id = await dueConnection('hanging');
    // Requests are held longer than the broker waits (2 s); the ones it gave up on never arrive.
    await s.idp.setTokenEndpointFault('slow', 4_000);
    const base = { ...s.idp.counts };
    for (let i = 0; i < 3; i++) {
      assert.equal(await worker().runOnce(), 1);
      const r = await row(id);
      assert.equal(r.status, 'active');
      assert.equal(r.refresh_failures, i + 1);
      assert.notEqual(r.refresh_started_at, null, 'a timed-out call may have been processed');
      s.clock = r.refresh_due_at!;
    }
    await s.idp.setTokenEndpointFault('none');
    assert.equal(await worker().runOnce(), 1);
    const r = await row(id);
    assert.equal(r.status, 'active');
    assert.equal(r.refresh_failures, 0);
    assert.equal(r.refresh_started_at, null);
    assert.equal(
      s.idp.counts.refresh_token - base.refresh_token,
      1,
      'only the last call reached the provider',
    );
    assert.equal(s.idp.counts.refresh_reused, base.refresh_reused);
    assert.ok((await s.token(id)).access_token);
    s.clock = start;
  });

  it('a provider that is down: reads of expired tokens do not multiply attempts, and recovery is one refresh each', async () => {
    const start = s.clock;
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await connect(`down-${i}`));
    s.clock += HOUR + 1_000; // every token has expired
    await s.idp.setTokenEndpointFault('down');
    for (let round = 1; round <= 2; round++) {
      for (let i = 0; i < 10; i++)
        for (const id of ids) {
          const res = await s.call({ method: 'GET', url: `/v1/token/${id}` });
          assert.equal(res.statusCode, 502, res.body);
        }
      for (const id of ids) {
        const r = await row(id);
        assert.equal(r.refresh_failures, round, 'one attempt per connection per round, not one per read');
        assert.equal(r.refresh_started_at, null, 'a refused connection spent nothing');
      }
      // Past the floor between read-triggered attempts: 15 s after one failure, 30 s after two.
      s.clock += round * 15_000 + 1_000;
    }
    await s.idp.setTokenEndpointFault('none');
    const base = s.idp.counts.refresh_token;
    for (let i = 0; i < 10; i++) for (const id of ids) assert.ok((await s.token(id)).access_token);
    assert.equal(s.idp.counts.refresh_token - base, 5, 'one refresh per connection on recovery');
    for (const id of ids) assert.equal((await row(id)).refresh_failures, 0);
    s.clock = start;
  });

  it('a read never waits for another replica holding the lease while its token still works', async () => {
    const start = s.clock;
    const id = await connect('leased-elsewhere');
    const store = s.broker.container.connectionsStore;
    const before = await s.stored(id);
    // Another replica is refreshing (its lease is on the row), and this token is inside the read skew.
    assert.ok(await store.holdLease(id, 'other-replica:1', 60_000));
    s.clock = (await row(id)).access_expires_at! - 10_000;
    const base = s.idp.counts.token_requests;
    const res = await s.call({ method: 'GET', url: `/v1/token/${id}` }, 200);
    assert.equal(json<{ access_token: string }>(res).access_token, before.access_token);
    assert.equal(s.idp.counts.token_requests, base, 'the holder refreshes, not this read');
    // Expired, and the holder does not finish: a bounded wait, then a clean 503.
    s.clock += 20_000;
    const late = await s.call({ method: 'GET', url: `/v1/token/${id}` });
    assertProblem(late, 503, 'refresh_in_progress');
    assert.equal(late.headers['retry-after'], '1');
    await store.dropLease(id, 'other-replica:1');
    assert.notEqual((await s.token(id)).access_token, before.access_token);
    s.clock = start;
  });

  it('only the current lease holder writes: a holder whose lease was taken over is fenced out', async () => {
    const id = await s.connect('idp-basic', 'fenced');
    const store = s.broker.container.connectionsStore;
    const lease = { leaseMs: 1_000, graceMs: 1_000 };
    const version = (await row(id)).version;
    assert.ok(await store.acquireLease(id, 'a:1', version, lease));
    assert.ok(await store.markInFlight(id, 'a:1', lease.leaseMs));
    await new Promise((r) => setTimeout(r, 1_300));
    // Asked with a long grace: a loaded machine may stretch the pause above past a 1 s one.
    assert.equal(
      await store.acquireLease(id, 'b:1', version, { ...lease, graceMs: 60_000 }),
      false,
      'a lease with a call in flight is left alone for a grace period after it runs out',
    );
    await new Promise((r) => setTimeout(r, 1_000));
    assert.ok(await store.acquireLease(id, 'b:1', version, lease), 'taken over after the grace');
    assert.equal(
      (await row(id)).refresh_started_at !== null,
      true,
      'the new holder sees the unknown outcome',
    );
    assert.equal(await store.markInFlight(id, 'a:1', lease.leaseMs), false);
    assert.equal(await store.renewLease(id, 'a:1', lease.leaseMs), false);
    assert.equal(await store.completeLease(id, 'a:1', 'active', { last_error: 'stale' }, s.clock), false);
    assert.ok(await store.completeLease(id, 'b:1', 'active', {}, s.clock));
    const r = await row(id);
    assert.equal(r.last_error, null, 'the stale holder wrote nothing');
    assert.equal(r.refresh_lease_owner, null);
    await s.call({ method: 'DELETE', url: `/v1/connections/${id}` }, 200);
  });

  it('a refusal sent as a 200 with an error body (GitHub) is a lost grant, not an unknown outcome', async () => {
    const id = await connect('github-style-refusal');
    s.idp.setTokenResponseRewrite(() => ({
      error: 'bad_refresh_token',
      error_description: 'The refresh token passed is incorrect or expired.',
    }));
    const res = await s.call({ method: 'POST', url: `/v1/refresh/${id}` });
    assertProblem(res, 409, 'attention_required');
    const r = await row(id);
    assert.equal(r.status, 'attention_required');
    assert.equal(r.last_error, 'invalid_grant');
    assert.equal(r.refresh_started_at, null, 'settled, not left unknown');
  });

  it('request-connection and consent still work after all of this', async () => {
    const started = json<{ connection_id: string }>(
      await s.call(
        {
          method: 'POST',
          url: '/v1/request-connection',
          payload: { user_id: 'after-faults', provider_name: 'idp-basic', return_url: RETURN },
        },
        200,
      ),
    );
    assert.ok(started.connection_id);
  });
});

describe('a refresh call the broker holds back', {
  skip:
    DIALECT !== 'postgres' &&
    'a statement that stalls inside the database (a trigger running pg_sleep): runs in `npm run test:pg`',
}, () => {
  // A 3 s lease: a call is sent only while the lease was confirmed less than 1.5 s before.
  const s = new Scenario();
  before(() =>
    s.start({
      env: {
        NEXUS_REFRESH_MARGIN_SECONDS: String(MARGIN_S),
        NEXUS_REFRESH_JITTER_SECONDS: '0',
        NEXUS_UPSTREAM_TIMEOUT_SECONDS: '1',
        NEXUS_REFRESH_LEASE_SECONDS: '3',
      },
    }),
  );
  after(() => s.close());

  it('when the database stalled under its lease: not sent, no failure counted, sent by the next claim', async () => {
    const id = await s.connect('idp-basic', 'held-back');
    const store = s.broker.container.connectionsStore;
    s.clock = (await store.find(id))!.refresh_due_at!;
    // The database stalls for 2 s on the statement that marks the call in flight; the lease
    // renewals wait behind its row lock. The broker cannot vouch for its lease when the mark returns.
    const db = s.broker.container.db.kysely;
    await sql`CREATE FUNCTION nexus_test_stall() RETURNS trigger LANGUAGE plpgsql
      AS $$ BEGIN PERFORM pg_sleep(2); RETURN NEW; END $$`.execute(db);
    await sql`CREATE TRIGGER nexus_test_stall BEFORE UPDATE ON connections FOR EACH ROW
      WHEN (OLD.refresh_started_at IS NULL AND NEW.refresh_started_at IS NOT NULL)
      EXECUTE FUNCTION nexus_test_stall()`.execute(db);
    const base = { ...s.idp.counts };
    try {
      assert.equal(await s.broker.container.refreshWorker.runOnce(), 1, 'claimed');
    } finally {
      await sql`DROP TRIGGER nexus_test_stall ON connections`.execute(db);
      await sql`DROP FUNCTION nexus_test_stall()`.execute(db);
    }
    assert.equal(s.idp.counts.token_requests, base.token_requests, 'nothing reached the provider');
    const held = (await store.find(id))!;
    assert.equal(held.refresh_failures, 0, 'no failure counted');
    assert.equal(held.last_error, null);
    assert.equal(held.refresh_started_at, null, 'known not sent: no unknown outcome left behind');
    assert.equal(held.refresh_lease_owner, null, 'the lease is free for any replica');
    assert.ok(held.refresh_due_at! <= s.clock + 1_000, 'due again in a second, without backoff');
    const events = json<{ events: { type: string }[] }>(
      await s.call({ method: 'GET', url: `/admin/v1/events?connection_id=${id}` }, 200),
    ).events.map((e) => e.type);
    assert.ok(!events.includes('connection.refresh_failed'), events.join());
    // The next pass, a second later, sends it once, and the connection is refreshed.
    s.clock += 1_000;
    assert.equal(await s.broker.container.refreshWorker.runOnce(), 1);
    assert.equal(s.idp.counts.refresh_token - base.refresh_token, 1);
    const after = (await store.find(id))!;
    assert.equal(after.status, 'active');
    assert.notEqual(after.last_refreshed_at, null);
    assert.equal(after.refresh_failures, 0);
  });
});

describe('a database that is away when the rotated refresh token comes back', () => {
  // PostgreSQL: statements are cut after 2 s, so a stalled write fails as an outage does.
  const s = new Scenario();
  before(() =>
    s.start({
      env: {
        NEXUS_REFRESH_MARGIN_SECONDS: String(MARGIN_S),
        NEXUS_REFRESH_JITTER_SECONDS: '0',
        DATABASE_QUERY_TIMEOUT_MS: '2000',
      },
    }),
  );
  after(() => s.close());

  /**
   * Makes the database unavailable for the write that stores the refresh's outcome, once:
   * PostgreSQL stalls that UPDATE past the statement timeout (a trigger, the first time only);
   * SQLite has another connection take the write lock as the provider answers, and let it go a
   * moment later (the broker's write waits out its busy timeout, then gets SQLITE_BUSY).
   */
  async function awayOnce(): Promise<() => Promise<void>> {
    const db = s.broker.container.db.kysely;
    if (DIALECT === 'postgres') {
      await sql`CREATE SEQUENCE nexus_test_away`.execute(db);
      await sql`CREATE FUNCTION nexus_test_away() RETURNS trigger LANGUAGE plpgsql
        AS $$ BEGIN IF nextval('nexus_test_away') = 1 THEN PERFORM pg_sleep(5); END IF; RETURN NEW; END $$`.execute(
        db,
      );
      await sql`CREATE TRIGGER nexus_test_away BEFORE UPDATE ON connections FOR EACH ROW
        WHEN (OLD.refresh_started_at IS NOT NULL AND NEW.refresh_started_at IS NULL
          AND NEW.credentials IS DISTINCT FROM OLD.credentials)
        EXECUTE FUNCTION nexus_test_away()`.execute(db);
      return async () => {
        await sql`DROP TRIGGER nexus_test_away ON connections`.execute(db);
        await sql`DROP FUNCTION nexus_test_away()`.execute(db);
        await sql`DROP SEQUENCE nexus_test_away`.execute(db);
      };
    }
    const other = new DatabaseSync(join(s.broker.db.dataDir, 'nexus.db'));
    s.idp.setTokenResponseRewrite((body) => {
      other.exec('BEGIN IMMEDIATE');
      setTimeout(() => other.exec('ROLLBACK'), 100);
      s.idp.setTokenResponseRewrite(undefined);
      return body;
    });
    return async () => {
      s.idp.setTokenResponseRewrite(undefined);
      other.close();
    };
  }

  it('keeps the new refresh token once the database answers again, and the grant lives on', async () => {
    const id = await s.connect('idp-basic', 'away-at-keep');
    const store = s.broker.container.connectionsStore;
    s.clock = (await store.find(id))!.refresh_due_at!;
    const before = (await s.stored(id)).refresh_token;
    const base = { ...s.idp.counts };
    const restore = await awayOnce();
    try {
      assert.equal(await s.broker.container.refreshWorker.runOnce(), 1);
    } finally {
      await restore();
    }
    assert.equal(s.idp.counts.refresh_token - base.refresh_token, 1, 'one refresh at the provider');
    const kept = (await store.find(id))!;
    assert.equal(kept.status, 'active');
    assert.equal(kept.last_error, null, String(kept.last_error));
    assert.equal(kept.refresh_started_at, null, 'no unknown outcome left behind');
    assert.notEqual((await s.stored(id)).refresh_token, before, 'the rotated refresh token is stored');
    // The next refresh presents it: no reuse at the provider, the grant is whole.
    s.clock = kept.refresh_due_at!;
    assert.equal(await s.broker.container.refreshWorker.runOnce(), 1);
    assert.equal(s.idp.counts.refresh_reused, base.refresh_reused, 'no refresh token presented twice');
    assert.equal((await store.find(id))!.status, 'active');
  });
});
