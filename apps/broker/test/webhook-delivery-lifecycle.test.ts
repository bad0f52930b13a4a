import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { buildContainer } from '../src/container.ts';
import { newKey } from '../src/crypto/key-file.ts';
import { createKeyRing } from '../src/crypto/keyring.ts';
import { PER_WEBHOOK } from '../src/modules/events/webhook-delivery.ts';
import { createWebhooksService } from '../src/modules/events/webhooks.service.ts';
import { createWebhooksStore } from '../src/modules/events/webhooks.store.ts';
import { json, startBroker, type TestBroker } from './harness.ts';

/**
 * Webhook delivery across a key rotation and a shutdown (SQLite and PostgreSQL), to a real local
 * receiver: a process whose key ring lacks the key of a webhook's secret leaves the delivery to
 * one that has it without spending an attempt, stopping the delivery loop waits for the
 * deliveries being sent to record their results, and a receiver that hangs holds up only its own
 * deliveries.
 */
describe('webhook delivery: key rotation, shutdown and a hanging receiver', () => {
  let broker: TestBroker;
  let receiver: http.Server;
  let url = '';
  let answerAfterMs = 0;
  const received: string[] = [];
  let clock = Date.now();

  before(async () => {
    receiver = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        received.push(req.headers['nexus-delivery-id'] as string);
        setTimeout(() => res.writeHead(204).end(), answerAfterMs);
      });
    });
    await new Promise<void>((done) => receiver.listen(0, '127.0.0.1', done));
    url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
    broker = await startBroker({ env: { NEXUS_EGRESS_ALLOWED_CIDRS: '127.0.0.1/32' }, now: () => clock });
  });
  after(async () => {
    await broker.close();
    receiver.close();
  });

  async function hookWithOneEvent(connectionId: string) {
    const res = await broker.request({
      method: 'POST',
      url: '/admin/v1/webhooks',
      payload: { url, events: ['connection.expired'] },
    });
    assert.equal(res.statusCode, 201, res.body);
    const hook = json<{ id: string }>(res);
    await broker.container.events.emit({
      connectionId,
      workspaceId: 'ws',
      providerId: 'prov',
      type: 'connection.expired',
    });
    return hook;
  }
  async function deliveriesOf(hookId: string) {
    const res = await broker.request({ method: 'GET', url: `/admin/v1/webhooks/${hookId}/deliveries` });
    assert.equal(res.statusCode, 200, res.body);
    return json<{
      deliveries: { id: string; status: string; attempts: number; last_error: string | null }[];
    }>(res).deliveries;
  }

  it('a process lacking the key of the webhook secret spends no attempt and leaves it to one that has it', async () => {
    const hook = await hookWithOneEvent('conn-key');
    const lacking = buildContainer(broker.container.config, {
      now: () => clock,
      keys: { ...broker.container.keys, ring: createKeyRing([newKey()]) },
    });
    try {
      const before = received.length;
      // However often it looks, it neither sends nor uses up the delivery's attempts.
      for (let i = 0; i < 15; i++) {
        await lacking.webhookDelivery.runOnce();
        clock += 61_000;
      }
      assert.equal(received.length, before, 'nothing sent');
      const [pending] = await deliveriesOf(hook.id);
      assert.equal(pending!.status, 'pending');
      assert.equal(pending!.attempts, 0);
      assert.match(pending!.last_error ?? '', /key_not_in_ring/);
      assert.deepEqual(await broker.container.webhookDelivery.runOnce(), {
        delivered: 1,
        failed: 0,
        retried: 0,
      });
      assert.equal((await deliveriesOf(hook.id))[0]!.status, 'delivered');
    } finally {
      await lacking.close();
      await broker.request({ method: 'DELETE', url: `/admin/v1/webhooks/${hook.id}` });
    }
  });

  it('a receiver that hangs holds at most PER_WEBHOOK sends; the rest of the queue goes out past it', async () => {
    // A receiver that reads each request and answers only when released.
    const held: http.ServerResponse[] = [];
    const hangingIds: string[] = [];
    let hang = true;
    const hanging = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        hangingIds.push(req.headers['nexus-delivery-id'] as string);
        if (hang) held.push(res);
        else res.writeHead(204).end();
      });
    });
    await new Promise<void>((done) => hanging.listen(0, '127.0.0.1', done));
    const hangingUrl = `http://127.0.0.1:${(hanging.address() as AddressInfo).port}/stuck`;
    const create = async (payload: Record<string, unknown>) => {
      const res = await broker.request({ method: 'POST', url: '/admin/v1/webhooks', payload });
      assert.equal(res.statusCode, 201, res.body);
      return json<{ id: string }>(res);
    };
    const stuck = await create({ url: hangingUrl, events: ['connection.revoked'] });
    const healthy = await create({ url, events: ['connection.active'] });
    const event = (type: 'connection.revoked' | 'connection.active', connectionId: string) =>
      broker.container.events.emit({ connectionId, workspaceId: 'ws', providerId: 'prov', type });
    // The stuck receiver's twelve deliveries are older than the healthy one's: in due order they
    // come first, enough to fill the old lock-step batch of ten.
    for (let i = 0; i < 12; i++) await event('connection.revoked', `conn-stuck-${i}`);
    await event('connection.active', 'conn-healthy');
    const before = received.length;
    const pass = broker.container.webhookDelivery.runOnce();
    try {
      for (let i = 0; i < 500 && received.length === before; i++)
        await new Promise((resolve) => setTimeout(resolve, 10));
      assert.equal(received.length, before + 1, 'the healthy receiver got its event while the other hangs');
      // The stuck receiver's share may still be arriving: wait for it, then see that no more come.
      for (let i = 0; i < 500 && held.length < PER_WEBHOOK; i++)
        await new Promise((resolve) => setTimeout(resolve, 10));
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(held.length, PER_WEBHOOK, 'the hanging receiver holds only its own share of the sends');
      const [delivered] = await deliveriesOf(healthy.id);
      assert.equal(delivered!.status, 'delivered');
      const waiting = (await deliveriesOf(stuck.id)).filter((d) => d.attempts === 0);
      assert.equal(waiting.length, 12 - PER_WEBHOOK, 'the rest of its queue waits unsent, no attempt spent');
    } finally {
      // The receiver recovers: what it holds is answered, and the rest goes out in the same pass.
      hang = false;
      for (const res of held.splice(0)) res.writeHead(204).end();
      try {
        assert.deepEqual(await pass, { delivered: 13, failed: 0, retried: 0 });
      } finally {
        // Whatever failed above: a server left listening would keep the test file from ending.
        hanging.closeAllConnections();
        hanging.close();
      }
    }
    assert.equal(new Set(hangingIds).size, 12, 'each of its deliveries sent once');
    assert.ok((await deliveriesOf(stuck.id)).every((d) => d.status === 'delivered' && d.attempts === 1));
    for (const hook of [stuck, healthy])
      await broker.request({ method: 'DELETE', url: `/admin/v1/webhooks/${hook.id}` });
  });

  it('a redelivery racing retention is 404 webhook_delivery_not_found, not a 500', async () => {
    const hook = await hookWithOneEvent('conn-retention');
    await broker.container.webhookDelivery.runOnce();
    const [delivered] = await deliveriesOf(hook.id);
    assert.equal(delivered!.status, 'delivered');
    // Retention removes the event and its finished deliveries between the read and the insert.
    const store = createWebhooksStore(broker.container.db);
    const racing = createWebhooksService({
      store: {
        ...store,
        async insertDelivery(row) {
          const k = broker.container.db.kysely;
          await k.deleteFrom('webhook_deliveries').where('event_id', '=', row.event_id).execute();
          await k.deleteFrom('connection_events').where('id', '=', row.event_id).execute();
          return store.insertDelivery(row);
        },
      },
      ring: broker.container.keys.ring,
      audit: { record: async () => {} },
      allowLoopbackHttp: true,
    });
    await assert.rejects(racing.redeliver({ actor: 'test' } as never, delivered!.id), (error: Error) => {
      assert.equal((error as { code?: string }).code, 'webhook_delivery_not_found');
      assert.match(error.message, /removed by retention/);
      return true;
    });
    await broker.request({ method: 'DELETE', url: `/admin/v1/webhooks/${hook.id}` });
  });

  it('stopping the delivery loop waits for a delivery being sent to record its result', async () => {
    const hook = await hookWithOneEvent('conn-stop');
    answerAfterMs = 400;
    const before = received.length;
    const stop = broker.container.webhookDelivery.start(60_000, () => {});
    try {
      for (let i = 0; i < 200 && received.length === before; i++)
        await new Promise((resolve) => setTimeout(resolve, 10));
      assert.equal(received.length, before + 1, 'the receiver has the request, not yet answered');
    } finally {
      await stop();
      answerAfterMs = 0;
    }
    const [delivery] = await deliveriesOf(hook.id);
    assert.equal(delivery!.status, 'delivered', 'recorded before stop() resolved');
    assert.equal(delivery!.attempts, 1);
  });
});
