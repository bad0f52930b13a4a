import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { DIALECT } from './harness.ts';
import { Scenario } from './oauth-scenario.ts';

/**
 * A read (`GET /v1/token/{id}`) near the end of a token's life refreshes it first. When that
 * refresh cannot be made, a token that still works is served (decision 0012), whoever held the
 * lease; a connection revoked while the read refreshed is refused with its stable code, never 500.
 * SQLite and PostgreSQL, against the real OpenID provider.
 */
describe('a read whose own refresh fails', () => {
  const s = new Scenario();
  before(() => s.start());
  after(() => s.close());
  afterEach(() => s.idp.setTokenEndpointFault('none'));

  const row = async (id: string) => (await s.broker.container.connectionsStore.find(id))!;

  for (const fault of ['error500', 'down', 'slow'] as const)
    it(`serves the still-valid token when the provider fails (${fault})`, async () => {
      const id = await s.connect('idp-basic', `valid-${fault}`);
      const stored = await s.stored(id);
      const start = s.clock;
      s.clock = (await row(id)).access_expires_at! - 20_000; // inside the read's refresh window
      await s.idp.setTokenEndpointFault(fault, 4_000);
      try {
        const res = await s.call({ method: 'GET', url: `/v1/token/${id}` }, 200);
        assert.equal(JSON.parse(res.body).access_token, stored.access_token, 'the token it had');
        const r = await row(id);
        assert.equal(r.status, 'active');
        assert.equal(
          r.refresh_failures,
          1,
          'the refresh was tried and its failure recorded: the worker retries on schedule',
        );
        assert.equal(r.refresh_lease_owner, null, 'and the lease was given back');
      } finally {
        s.clock = start;
      }
    });

  it('serves a token that still works when there is no refresh token to spend', async () => {
    s.idp.setTokenResponseRewrite(({ refresh_token: _drop, ...rest }) => rest);
    let id: string;
    try {
      id = await s.connect('idp-basic', 'no-refresh-token');
    } finally {
      s.idp.setTokenResponseRewrite(undefined);
    }
    const stored = await s.stored(id);
    assert.equal(stored.refresh_token, undefined);
    const start = s.clock;
    const expiresAt = (await row(id)).access_expires_at!;
    try {
      s.clock = expiresAt - 10_000;
      // Every read of the last seconds, not only the first: each used to answer 409.
      for (let i = 0; i < 3; i++) {
        const res = await s.call({ method: 'GET', url: `/v1/token/${id}` }, 200);
        assert.equal(JSON.parse(res.body).access_token, stored.access_token);
      }
      s.clock = expiresAt + 1_000;
      const expired = await s.call({ method: 'GET', url: `/v1/token/${id}` });
      assert.notEqual(expired.statusCode, 200, 'an expired token is never served');
    } finally {
      s.clock = start;
    }
  });

  it('refuses with connection_not_active, not 500, a connection revoked right after its refresh was written', async () => {
    const id = await s.connect('idp-basic', 'revoked-after-refresh');
    const db = s.broker.container.db.kysely;
    // Stands in for a DELETE committed between the refresh's write and the read's next look at
    // the row: the write that records a refresh revokes the row (credentials gone, as revoke does).
    if (DIALECT === 'sqlite')
      await sql`CREATE TRIGGER test_revoke AFTER UPDATE OF last_refreshed_at ON connections
        WHEN NEW.last_refreshed_at IS NOT OLD.last_refreshed_at AND NEW.status = 'active'
        BEGIN UPDATE connections SET status = 'revoked', credentials = NULL,
          revoked_at = NEW.updated_at, version = NEW.version + 1 WHERE id = NEW.id; END`.execute(db);
    else {
      await sql`CREATE FUNCTION test_revoke() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.last_refreshed_at IS DISTINCT FROM OLD.last_refreshed_at AND NEW.status = 'active' THEN
            NEW.status := 'revoked'; NEW.credentials := NULL; NEW.revoked_at := NEW.updated_at;
          END IF;
          RETURN NEW;
        END $$`.execute(db);
      await sql`CREATE TRIGGER test_revoke BEFORE UPDATE ON connections
        FOR EACH ROW EXECUTE FUNCTION test_revoke()`.execute(db);
    }
    const start = s.clock;
    try {
      s.clock = (await row(id)).access_expires_at! - 5_000;
      const res = await s.call({ method: 'GET', url: `/v1/token/${id}` });
      assert.equal(res.statusCode, 409, res.body);
      assert.equal(JSON.parse(res.body).error, 'connection_not_active');
      assert.equal((await row(id)).status, 'revoked');
    } finally {
      s.clock = start;
      await sql`DROP TRIGGER test_revoke${sql.raw(DIALECT === 'sqlite' ? '' : ' ON connections')}`.execute(
        db,
      );
      if (DIALECT === 'postgres') await sql`DROP FUNCTION test_revoke()`.execute(db);
    }
  });
});

describe('a read whose own refresh hangs', () => {
  const s = new Scenario();
  // The provider answers after 5 s; the broker gives up on it after 2 s (NEXUS_UPSTREAM_TIMEOUT_SECONDS).
  before(() => s.start({ env: { NEXUS_REFRESH_READ_WAIT_MS: '300' } }));
  after(() => s.close());
  afterEach(() => s.idp.setTokenEndpointFault('none'));

  const row = async (id: string) => (await s.broker.container.connectionsStore.find(id))!;

  it('is served the token that still works while the refresh goes on, whose outcome is recorded', async () => {
    // It waited for the whole upstream timeout, by when a short-lived token could have expired
    // and the read failed instead (2026-12-08).
    const id = await s.connect('idp-basic', 'hanging-provider');
    const stored = await s.stored(id);
    const start = s.clock;
    s.clock = (await row(id)).access_expires_at! - 20_000; // inside the read's refresh window
    await s.idp.setTokenEndpointFault('slow', 5_000);
    try {
      const first = await s.call({ method: 'GET', url: `/v1/token/${id}` }, 200);
      assert.equal(JSON.parse(first.body).access_token, stored.access_token, 'the token it had');
      const during = await row(id);
      assert.notEqual(during.refresh_lease_owner, null, 'served while its refresh still held the lease');
      assert.equal(during.refresh_failures, 0);
      // Another read meanwhile is served the same token at once (the lease is held).
      const second = await s.call({ method: 'GET', url: `/v1/token/${id}` }, 200);
      assert.equal(JSON.parse(second.body).access_token, stored.access_token);
      // The refresh runs out its upstream timeout under its lease and records the failure.
      let after = await row(id);
      for (let i = 0; i < 100 && after.refresh_lease_owner !== null; i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        after = await row(id);
      }
      assert.equal(after.refresh_lease_owner, null, 'the lease was given back');
      assert.equal(after.refresh_failures, 1, 'the failure was recorded: the worker retries on schedule');
      assert.equal(after.status, 'active');
    } finally {
      s.clock = start;
    }
  });

  it('a read of a token that has expired still waits for its refresh', async () => {
    const id = await s.connect('idp-basic', 'expired-waits');
    const stored = await s.stored(id);
    const start = s.clock;
    s.clock = (await row(id)).access_expires_at! + 1_000;
    await s.idp.setTokenEndpointFault('slow', 500);
    try {
      const res = await s.call({ method: 'GET', url: `/v1/token/${id}` }, 200);
      assert.notEqual(
        JSON.parse(res.body).access_token,
        stored.access_token,
        'a new token, never the expired one',
      );
    } finally {
      s.clock = start;
    }
  });
});
