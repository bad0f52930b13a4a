import assert from 'node:assert/strict';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, afterEach, before, describe, it } from 'node:test';
import { buildContainer } from '../src/container.ts';
import { newKey } from '../src/crypto/key-file.ts';
import { createKeyRing } from '../src/crypto/keyring.ts';
import { json } from './harness.ts';
import { RETURN, Scenario } from './oauth-scenario.ts';

/**
 * The background refresh worker in one process (SQLite and PostgreSQL), against a real OpenID
 * provider with rotating refresh tokens. The broker runs on a test clock; the provider on the real
 * one (its tokens last an hour).
 */

const MARGIN_S = 300;
const HOUR = 3600_000;

describe('background refresh worker', () => {
  const s = new Scenario();
  before(() =>
    s.start({
      env: {
        NEXUS_REFRESH_MARGIN_SECONDS: String(MARGIN_S),
        NEXUS_REFRESH_JITTER_SECONDS: '60',
        NEXUS_REFRESH_CONCURRENCY: '4',
        NEXUS_REFRESH_PROVIDER_CONCURRENCY: '2',
        NEXUS_REFRESH_GIVE_UP_HOURS: '24',
        // The webhook receiver below listens on loopback.
        NEXUS_EGRESS_ALLOWED_CIDRS: '127.0.0.1/32',
      },
    }),
  );
  after(() => s.close());
  // A failed test must not leave a fault behind for the next one.
  afterEach(() => s.idp.setTokenEndpointFault('none'));

  const worker = () => s.broker.container.refreshWorker;
  const row = async (id: string) => (await s.broker.container.connectionsStore.find(id))!;
  async function eventTypes(id: string): Promise<string[]> {
    const res = await s.call({ method: 'GET', url: `/admin/v1/events?connection_id=${id}` }, 200);
    return json<{ events: { type: string; created_at: string }[] }>(res)
      .events.sort((a, b) => a.created_at.localeCompare(b.created_at))
      .map((e) => e.type);
  }

  it('schedules each new connection inside the margin, with jitter, and refreshes nothing early', async () => {
    const ids = [];
    for (let i = 0; i < 6; i++) ids.push(await s.connect('idp-basic', `early-${i}`));
    const dues = [];
    for (const id of ids) {
      const r = await row(id);
      assert.ok(r.refresh_due_at !== null && r.access_expires_at !== null);
      const lead = r.access_expires_at - r.refresh_due_at;
      assert.ok(lead >= MARGIN_S * 1000 && lead <= (MARGIN_S + 60) * 1000, `lead ${lead}`);
      dues.push(r.refresh_due_at);
    }
    assert.ok(new Set(dues).size > 1, 'jitter spreads connections made in the same second');
    const base = s.idp.counts.refresh_token;
    assert.equal(await worker().runOnce(), 0);
    assert.equal(s.idp.counts.refresh_token, base);
    for (const id of ids) await s.call({ method: 'DELETE', url: `/v1/connections/${id}` }, 200);
  });

  it('refreshes due connections once each, before they expire, and keeps them usable', async () => {
    const ids = [];
    for (let i = 0; i < 10; i++)
      ids.push(await s.connect(i % 2 ? 'idp-basic' : 'idp-discovered', `due-${i}`));
    const before = new Map<string, string>();
    for (const id of ids) before.set(id, (await s.stored(id)).refresh_token!);
    const base = s.idp.counts.refresh_token;
    s.clock += HOUR - (MARGIN_S - 1) * 1000; // every one is due, none has expired
    assert.equal(await worker().runOnce(), 10);
    assert.equal(s.idp.counts.refresh_token - base, 10, 'exactly one upstream refresh per connection');
    for (const id of ids) {
      const r = await row(id);
      assert.equal(r.status, 'active');
      assert.ok(r.refresh_due_at! > s.clock, 'the next refresh is scheduled from the new expiry');
      assert.notEqual((await s.stored(id)).refresh_token, before.get(id), 'the rotated token was kept');
    }
    assert.equal(await worker().runOnce(), 0, 'nothing is due twice');
    // An agent reading the token gets the refreshed one without another upstream call.
    for (const id of ids) assert.ok((await s.token(id)).access_token);
    assert.equal(s.idp.counts.refresh_token - base, 10);
    s.clock -= HOUR - (MARGIN_S - 1) * 1000;
    for (const id of ids) await s.call({ method: 'DELETE', url: `/v1/connections/${id}` }, 200);
  });

  it('a worker whose key ring lacks the connection key leaves it to one that has it, counting no failure', async () => {
    const id = await s.connect('idp-basic', 'key-missing');
    const start = s.clock;
    // A replica that has not been given the key the credentials are sealed with (a rotation
    // rolled out to some processes only), on the same database.
    const lacking = buildContainer(s.broker.container.config, {
      now: () => s.clock,
      keys: { ...s.broker.container.keys, ring: createKeyRing([newKey()]) },
    });
    try {
      s.clock += HOUR - (MARGIN_S - 1) * 1000;
      const base = s.idp.counts.refresh_token;
      assert.equal(await lacking.refreshWorker.runOnce(), 1);
      let r = await row(id);
      assert.equal(r.status, 'active');
      assert.equal(r.refresh_failures, 0, 'not the connection failing');
      assert.equal(r.last_error, null);
      assert.equal(r.failing_since, null);
      assert.ok(r.refresh_due_at! >= s.clock + 60_000, 'left to others for a minute');
      assert.equal(r.refresh_lease_owner, null);
      assert.equal(await lacking.refreshWorker.runOnce(), 0, 'not claimed again at once');
      // A process that holds the key refreshes it when it falls due again.
      s.clock += 61_000;
      assert.equal(await worker().runOnce(), 1);
      r = await row(id);
      assert.equal(r.refresh_failures, 0);
      assert.equal(s.idp.counts.refresh_token - base, 1, 'one upstream refresh, by the process with the key');
    } finally {
      await lacking.close();
      s.clock = start;
      await s.call({ method: 'DELETE', url: `/v1/connections/${id}` }, 200);
    }
  });

  it('backs off on provider failures without touching the connection, then recovers by itself', async () => {
    const id = await s.connect('idp-basic', 'flaky');
    const start = s.clock;
    s.clock += HOUR - (MARGIN_S - 1) * 1000;
    s.idp.setTokenEndpointFault('error500');
    assert.equal(await worker().runOnce(), 1);
    let r = await row(id);
    assert.equal(r.status, 'active', 'a transient failure changes no state');
    assert.equal(r.refresh_failures, 1);
    const wait = r.refresh_due_at! - s.clock;
    assert.ok(wait >= 24_000 && wait <= 36_000, `first retry after ~30 s, got ${wait}`);
    assert.equal(await worker().runOnce(), 0, 'not retried before the backoff');

    s.clock += 40_000;
    s.idp.setTokenEndpointFault('rate_limited');
    assert.equal(await worker().runOnce(), 1);
    r = await row(id);
    assert.equal(r.refresh_failures, 2);
    assert.ok(r.refresh_due_at! - s.clock >= 120_000, 'Retry-After: 120 is honoured');
    assert.ok((await s.token(id)).access_token, 'the still-valid access token keeps being served');

    s.idp.setTokenEndpointFault('none');
    s.clock += 130_000;
    const base = s.idp.counts.refresh_token;
    assert.equal(await worker().runOnce(), 1);
    assert.equal(s.idp.counts.refresh_token - base, 1);
    r = await row(id);
    assert.equal(r.status, 'active');
    assert.equal(r.refresh_failures, 0);
    assert.equal(r.failing_since, null);
    assert.deepEqual(await eventTypes(id), [
      'connection.active',
      'connection.refresh_failed',
      'connection.refresh_recovered',
    ]);
    s.clock = start;
    await s.call({ method: 'DELETE', url: `/v1/connections/${id}` }, 200);
  });

  it('moves a connection whose grant was revoked to attention_required, tells the webhook, and expires it after the horizon', async () => {
    // A receiver that checks the signature the way docs/operations.md tells receivers to.
    const received: { type: string; connection_id: string; verified: boolean }[] = [];
    let secret = '';
    const receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => {
        body += c;
      });
      req.on('end', () => {
        const header = String(req.headers['nexus-signature'] ?? '');
        const t = /t=(\d+)/.exec(header)?.[1] ?? '';
        const v1 = /v1=([0-9a-f]+)/.exec(header)?.[1] ?? '';
        const expected = createHmac('sha256', secret).update(`${t}.${body}`).digest('hex');
        // The broker runs on the test clock, so "now" for the replay window is that clock.
        const fresh = Math.abs(s.clock / 1000 - Number(t)) <= 300;
        const verified =
          fresh && v1.length === expected.length && timingSafeEqual(Buffer.from(v1), Buffer.from(expected));
        const event = JSON.parse(body) as { type: string; data: { connection_id: string } };
        received.push({ type: event.type, connection_id: event.data.connection_id, verified });
        res.writeHead(verified ? 204 : 401);
        res.end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    receiver.unref(); // a failed assertion must not keep the test process alive
    const hook = await s.call(
      {
        method: 'POST',
        url: '/admin/v1/webhooks',
        payload: {
          url: `http://localhost:${(receiver.address() as AddressInfo).port}/nexus`,
          events: ['connection.attention_required'],
        },
      },
      201,
    );
    secret = json<{ secret: string }>(hook).secret;

    const id = await s.connect('idp-discovered', 'revoked-at-idp');
    const start = s.clock;
    await s.idp.revokeAllGrants();
    s.clock += HOUR - (MARGIN_S - 1) * 1000;
    assert.equal(await worker().runOnce(), 1);
    assert.equal((await row(id)).status, 'attention_required');
    const delivered = await s.broker.container.webhookDelivery.runOnce();
    assert.equal(delivered.delivered, 1, JSON.stringify(delivered));
    assert.deepEqual(received, [
      { type: 'connection.attention_required', connection_id: id, verified: true },
    ]);
    receiver.close();
    await s.call({ method: 'DELETE', url: `/admin/v1/webhooks/${json<{ id: string }>(hook).id}` }, 200);
    assert.equal((await row(id)).refresh_due_at, null, 'the worker stops trying');
    assert.equal(await worker().runOnce(), 0);

    s.clock += 25 * HOUR;
    const result = await s.broker.container.housekeeping.runOnce();
    assert.ok(result.gaveUp >= 1);
    const r = await row(id);
    assert.equal(r.status, 'expired');
    assert.equal(r.credentials, null, 'an expired connection keeps no tokens');
    assert.deepEqual(await eventTypes(id), [
      'connection.active',
      'connection.attention_required',
      'connection.expired',
    ]);
    s.clock = start;
  });

  it('expires a connection whose refresh kept failing past the horizon once its token is dead', async () => {
    const id = await s.connect('idp-basic', 'long-outage');
    const start = s.clock;
    s.idp.setTokenEndpointFault('refuse');
    s.clock += HOUR - (MARGIN_S - 1) * 1000;
    await worker().runOnce();
    assert.equal((await row(id)).status, 'active');
    s.clock += 2 * HOUR;
    await worker().runOnce();
    assert.equal((await s.broker.container.housekeeping.runOnce()).gaveUp, 0, 'not before the horizon');
    s.clock += 23 * HOUR;
    assert.equal((await s.broker.container.housekeeping.runOnce()).gaveUp, 1);
    assert.equal((await row(id)).status, 'expired');
    s.idp.setTokenEndpointFault('none');
    s.clock = start;
  });

  it('shares the lease with on-demand refresh: a forced refresh during a background one spends one token', async () => {
    const id = await s.connect('idp-basic', 'racing');
    const start = s.clock;
    s.clock += HOUR - (MARGIN_S - 1) * 1000;
    s.idp.setTokenEndpointFault('slow', 300);
    const base = s.idp.counts.refresh_token;
    const arrived = s.idp.counts.token_requests;
    const [refreshed, forced] = await Promise.all([
      worker().runOnce(),
      (async () => {
        // Once the worker's call is at the provider (held there 300 ms), its lease is taken.
        for (let tries = 0; s.idp.counts.token_requests === arrived; tries++) {
          assert.ok(tries < 2_000, "the worker's call reached the provider within 10 s");
          await new Promise((r) => setTimeout(r, 5));
        }
        return s.call({ method: 'POST', url: `/v1/refresh/${id}` });
      })(),
    ]);
    s.idp.setTokenEndpointFault('none');
    assert.equal(refreshed, 1);
    assert.equal(forced.statusCode, 200, forced.body);
    assert.equal(s.idp.counts.refresh_token - base, 1, 'one upstream refresh for both');
    assert.equal((await row(id)).status, 'active');
    s.clock = start;
    await s.call({ method: 'DELETE', url: `/v1/connections/${id}` }, 200);
  });

  it('reports refreshes, queue depth and connection counts as metrics', async () => {
    const res = await s.call({ method: 'GET', url: '/metrics' }, 200);
    assert.match(res.body, /nexus_refresh_total\{outcome="refreshed",provider="[0-9a-f-]{36}"\} \d+/);
    assert.match(res.body, /nexus_refresh_total\{outcome="failed",provider="[0-9a-f-]{36}"\} \d+/);
    assert.match(res.body, /nexus_refresh_queue_depth \d+/);
    assert.match(res.body, /nexus_connections\{status="expired"\} [1-9]/);
    assert.match(res.body, /nexus_connections\{status="revoked"\} [1-9]/);
    // The gauge is kept by triggers (migration 0018): it must equal what counting the table says.
    const k = s.broker.container.db.kysely;
    const counted = await k
      .selectFrom('connections')
      .select((eb) => ['status', eb.fn.countAll<number>().as('n')])
      .groupBy('status')
      .execute();
    const scraped: Record<string, number> = {};
    for (const m of res.body.matchAll(/^nexus_connections\{status="([a-z_]+)"\} (\d+)$/gm))
      scraped[m[1]!] = Number(m[2]);
    for (const { status, n } of counted) assert.equal(scraped[status], Number(n), status);
    assert.equal(
      Object.values(scraped).reduce((a, b) => a + b, 0),
      counted.reduce((a, r) => a + Number(r.n), 0),
      'no status counted that has no connection',
    );
    // Housekeeping folds the changes too, so they do not pile up where nobody scrapes.
    const id = await s.connect('idp-basic', 'counted');
    await s.call({ method: 'DELETE', url: `/v1/connections/${id}` }, 200);
    const pending = async () =>
      Number(
        (
          await k
            .selectFrom('connection_count_deltas')
            .select((eb) => eb.fn.countAll<number>().as('n'))
            .executeTakeFirst()
        )?.n,
      );
    assert.ok((await pending()) > 0);
    await s.broker.container.housekeeping.runOnce();
    assert.equal(await pending(), 0);
  });
});

describe('two replicas on one database', () => {
  it('completes on one broker a consent started on another', async () => {
    const s = new Scenario();
    await s.start();
    const replica = buildContainer(s.broker.container.config, { now: () => s.clock });
    try {
      const started = json<{ authUrl: string; connection_id: string }>(
        await s.call(
          {
            method: 'POST',
            url: '/v1/request-connection',
            payload: { user_id: 'cross-replica', provider_name: 'idp-basic', return_url: RETURN },
          },
          200,
        ),
      );
      const callback = await s.idp.consent(started.authUrl);
      const outcome = await replica.consent.callback(callback.searchParams, { actor: 'anonymous' });
      assert.equal(outcome.kind, 'redirect');
      const back = new URL((outcome as { location: string }).location);
      assert.equal(back.searchParams.get('status'), 'success', back.href);
      assert.ok((await s.token(started.connection_id)).access_token, 'usable through the first broker');
    } finally {
      await replica.close();
      await s.close();
    }
  });

  it('a connection revoked through one broker is refused at once by another on the same database', async () => {
    const s = new Scenario();
    await s.start();
    // A second broker on the same database: its own pool, its own in-process state.
    const replica = buildContainer(s.broker.container.config, { now: () => s.clock });
    try {
      const id = await s.connect('idp-basic', 'two-replicas');
      const ctx = { actor: 'test' };
      const admin = { kind: 'admin' as const, keyId: 'test', name: 'test' };
      assert.ok((await replica.connections.getToken(ctx, admin, id)).access_token);
      await s.call({ method: 'DELETE', url: `/v1/connections/${id}` }, 200);
      await assert.rejects(replica.connections.getToken(ctx, admin, id), (error: unknown) => {
        assert.equal((error as { code?: string }).code, 'connection_not_active');
        return true;
      });
    } finally {
      await replica.close();
      await s.close();
    }
  });
});
