import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { buildContainer } from '../src/container.ts';
import { newKey } from '../src/crypto/key-file.ts';
import { createKeyRing } from '../src/crypto/keyring.ts';
import { json, startBroker, type TestBroker } from './harness.ts';

/**
 * Webhook delivery across a key rotation and a shutdown (SQLite and PostgreSQL), to a real local
 * receiver: a process whose key ring lacks the key of a webhook's secret leaves the delivery to
 * one that has it without spending an attempt, and stopping the delivery loop waits for the
 * deliveries being sent to record their results.
 */
describe('webhook delivery: key rotation and shutdown', () => {
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
