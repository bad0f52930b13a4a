/**
 * An answer the credential proxy is still streaming (an event stream, a long download) ends once
 * its connection is revoked or its agent deactivated, as a new request would be refused (security
 * review, 2026-12-07: the stream went on for as long as the upstream sent). SQLite and PostgreSQL,
 * a real upstream on loopback sending an event every 50 ms.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { capture, startCapture } from './capture-helpers.ts';
import { createAgentWithToken, DIALECT, startBroker, type TestBroker } from './harness.ts';
import { endsWithin, readStream } from './streamed-answer.ts';

describe(`proxy: a streaming answer ends when its access is withdrawn (${DIALECT})`, () => {
  let broker: TestBroker;
  let url = '';
  let n = 0;
  const upstream = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const timer = setInterval(() => res.write(`data: ${n++}\n\n`), 50);
    res.on('close', () => clearInterval(timer));
  });

  before(async () => {
    await new Promise<void>((done) => upstream.listen(0, '127.0.0.1', done));
    const base = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/api`;
    broker = await startBroker({ env: { NEXUS_EGRESS_ALLOWED_CIDRS: '127.0.0.1/32' } });
    const created = await broker.request({
      method: 'POST',
      url: '/providers',
      payload: { profile: { name: 'events', auth_type: 'api_key', api_base_url: base } },
    });
    assert.equal(created.statusCode, 201, created.body);
    url = await broker.app.listen({ port: 0, host: '127.0.0.1' });
  });
  after(async () => {
    upstream.closeAllConnections();
    upstream.close();
    await broker?.close();
  });

  /** A connection of `user` and an agent allowed it. */
  async function setUp(user: string) {
    const flow = await startCapture(broker, 'events', user);
    assert.equal((await capture(broker, flow.state, { api_key: `key-${user}` })).statusCode, 200);
    const agent = await createAgentWithToken(broker, `streamer-${user}`, {
      allowed_providers: ['*'],
      allowed_workspaces: [user],
    });
    return { connection: flow.connection_id, agent };
  }

  /** Opens the stream; `ended` resolves when the caller's body ends or breaks off. */
  async function open(token: string, connection: string) {
    const res = await fetch(`${url}/proxy/events/stream`, {
      headers: { authorization: `Bearer ${token}`, 'x-nexus-connection-id': connection },
    });
    assert.equal(res.status, 200);
    return readStream(res);
  }

  it('revoking the connection ends its open stream', async () => {
    const { connection, agent } = await setUp('user-1');
    const stream = await open(agent.token, connection);
    try {
      assert.equal(await endsWithin(stream.ended, 300), false, 'control: it streams');
      assert.ok(stream.chunks() > 0);
      const revoked = await broker.request({ method: 'DELETE', url: `/connections/${connection}` });
      assert.equal(revoked.statusCode, 200, revoked.body);
      assert.equal(await endsWithin(stream.ended, 15_000), true, 'the answer ended after the revocation');
    } finally {
      await stream.cancel();
    }
  });

  it("deactivating the agent ends its open stream; another agent's goes on", async () => {
    const { connection, agent } = await setUp('user-2');
    const other = await setUp('user-3');
    const stream = await open(agent.token, connection);
    const kept = await open(other.agent.token, other.connection);
    try {
      assert.equal(await endsWithin(stream.ended, 300), false, 'control: it streams');
      const off = await broker.request({
        method: 'PATCH',
        url: `/admin/v1/agents/${agent.id}`,
        payload: { active: false },
      });
      assert.equal(off.statusCode, 200, off.body);
      assert.equal(await endsWithin(stream.ended, 15_000), true, 'the answer ended after the deactivation');
      const before = kept.chunks();
      for (let i = 0; i < 100 && kept.chunks() <= before; i++) await new Promise((r) => setTimeout(r, 50));
      assert.ok(kept.chunks() > before, "the other agent's answer goes on");
      assert.equal(await endsWithin(kept.ended, 100), false, "the other agent's answer has not ended");
    } finally {
      await stream.cancel();
      await kept.cancel();
    }
  });
});
