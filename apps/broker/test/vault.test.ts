import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { buildContainer, type Container } from '../src/container.ts';
import { FLOW_RETENTION_MS } from '../src/modules/housekeeping/housekeeping.ts';
import { json } from './harness.ts';
import { RETURN, Scenario } from './oauth-scenario.ts';

describe('refresh is single-flight across processes', () => {
  const s = new Scenario();
  let replica: Container;
  before(async () => {
    await s.start();
    // A second broker on the same database: its own pool, its own in-process state, its own lease owner.
    replica = buildContainer(s.broker.container.config, { now: () => s.clock });
  });
  after(async () => {
    await replica.close();
    await s.close();
  });

  it('makes exactly one upstream refresh for 40 concurrent refreshes on two replicas', async () => {
    const id = await s.connect('idp-basic');
    const before = await s.stored(id);
    const base = s.idp.counts.refresh_token;
    const ctx = { actor: 'test' };
    const principal = { kind: 'admin' as const, keyId: 'test', name: 'test' };
    const calls = Array.from({ length: 40 }, (_, i) =>
      (i % 2 === 0 ? s.broker.container.connections : replica.connections).refresh(ctx, principal, id),
    );
    const results = await Promise.all(calls);
    assert.equal(s.idp.counts.refresh_token - base, 1, 'one refresh reached the provider');
    assert.equal(
      new Set(results.map((r) => r.access_token)).size,
      1,
      'both replicas hand out the same new token',
    );
    const after = await s.stored(id);
    assert.notEqual(after.refresh_token, before.refresh_token);
    // The rotated refresh token is the one stored: the next refresh, from the other replica, works
    // (past the 30 s floor between forced refreshes of one connection).
    s.clock += 31_000;
    await replica.connections.refresh(ctx, principal, id);
    assert.equal(s.idp.counts.refresh_token - base, 2);
  });
});

describe('housekeeping', () => {
  const s = new Scenario();
  before(() => s.start());
  after(() => s.close());

  it('expires pending connections past their deadline and deletes old flow rows', async () => {
    const started = json<{ connection_id: string }>(
      await s.call(
        {
          method: 'POST',
          url: '/v1/request-connection',
          payload: { user_id: 'hk', provider_name: 'idp-basic', return_url: RETURN },
        },
        200,
      ),
    );
    const keeper = s.broker.container.housekeeping;
    assert.deepEqual(await keeper.runOnce(), {
      expiredConnections: 0,
      gaveUp: 0,
      deletedFlows: 0,
      auditRemoved: 0,
      eventsRemoved: 0,
    });
    s.clock += 11 * 60_000;
    const first = await keeper.runOnce();
    assert.equal(first.expiredConnections, 1);
    const row = await s.broker.container.connectionsStore.find(started.connection_id);
    assert.equal(row?.status, 'expired');
    s.clock += FLOW_RETENTION_MS;
    assert.equal((await keeper.runOnce()).deletedFlows, 1);
    const flows = await s.broker.container.db.kysely
      .selectFrom('consent_flows')
      .select('id')
      .where('connection_id', '=', started.connection_id)
      .execute();
    assert.equal(flows.length, 0);
  });
});
