/**
 * Connection events are pruned by housekeeping after NEXUS_EVENT_RETENTION_DAYS, with their
 * finished webhook deliveries; an event whose delivery is still pending stays until it finishes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { json, startBroker, type TestBroker } from './harness.ts';

const DAY = 86_400_000;

describe('event retention', () => {
  let broker: TestBroker;
  let clock = Date.now();
  const ids = { workspaceId: 'ws-1', providerId: 'prov-1' };

  before(async () => {
    broker = await startBroker({
      env: { NEXUS_EVENT_RETENTION_DAYS: '30', NEXUS_EGRESS_ALLOWED_CIDRS: '127.0.0.1/32' },
      now: () => clock,
    });
  });
  after(async () => broker.close());

  const events = async () =>
    json<{ events: { connection_id: string }[] }>(
      await broker.request({ method: 'GET', url: '/admin/v1/events' }),
    )
      .events.map((e) => e.connection_id)
      .sort();

  it('deletes events past the retention, keeps recent ones and those a delivery still waits for', async () => {
    await broker.container.events.emit({ ...ids, connectionId: 'old-1', type: 'connection.expired' });
    await broker.container.events.emit({ ...ids, connectionId: 'old-2', type: 'connection.expired' });
    const hook = await broker.request({
      method: 'POST',
      url: '/admin/v1/webhooks',
      payload: { url: 'http://127.0.0.1:9/hooks', events: ['connection.revoked'] },
    });
    assert.equal(hook.statusCode, 201, hook.body);
    // Never delivered (nothing listens there, and the delivery worker is not run): pending.
    await broker.container.events.emit({ ...ids, connectionId: 'old-pending', type: 'connection.revoked' });

    assert.equal((await broker.container.housekeeping.runOnce()).eventsRemoved, 0, 'nothing is old yet');
    clock += 31 * DAY;
    await broker.container.events.emit({ ...ids, connectionId: 'recent', type: 'connection.expired' });

    assert.equal((await broker.container.housekeeping.runOnce()).eventsRemoved, 2);
    assert.deepEqual(await events(), ['old-pending', 'recent']);
    assert.equal(
      (await broker.container.housekeeping.runOnce()).eventsRemoved,
      0,
      'a second pass finds nothing',
    );
  });
});
