/**
 * maintainWebSocket against the testbed's WebSocket server, which checks the credential at the
 * handshake (oauth2 through the provider's userinfo endpoint) and while the connection lasts, with
 * the project's own broker and a real OpenID provider behind the SDK (issue #17).
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import {
  AttentionRequiredError,
  type BridgeMetrics,
  type DisconnectReason,
  type LogLevel,
  MessageTooLargeError,
  NotConnectedError,
  PermanentConnectionError,
  WebSocketCloseError,
} from '../src/index.ts';
import { startTestbed, type Testbed } from './testbed.ts';
import {
  abortAll,
  agentClient,
  eventually,
  FAST,
  isAbort,
  label,
  maintain,
  Recorder,
  sleepMs,
  wsEndpoint,
  wsStats,
} from './ws-helpers.ts';

let tb: Testbed;
before(async () => {
  tb = await startTestbed();
});
afterEach(abortAll);
after(async () => {
  await tb?.stop();
});

describe('the credential at the handshake', () => {
  for (const strategy of ['oauth2', 'header', 'query_param', 'basic_auth', 'aws_sigv4'] as const) {
    test(`${strategy}: the server accepts it, messages flow, abort ends the loop`, async () => {
      const lbl = label(strategy);
      const rec = new Recorder();
      const m = maintain(tb, tb.info.connections[strategy], wsEndpoint(tb, strategy, lbl), rec);
      await eventually('welcome', 20_000, () => rec.welcomes() === 1);
      await rec.echo(`hello ${strategy}`);
      m.abort();
      assert.ok(isAbort(await m.wait()));
      const s = await wsStats(tb, lbl);
      assert.equal(s.opened, 1);
      assert.equal(s.credentials, 1);
      assert.deepEqual(
        s.handshakes.map((h) => h.status),
        [101],
      );
    });
  }

  test('the server really checks the credential', async () => {
    const ws = new WebSocket(wsEndpoint(tb, 'oauth2', label('check')), {
      headers: { authorization: 'Bearer not-a-token' },
    });
    const status = await new Promise<number>((resolve) => {
      ws.on('unexpected-response', (_req, res) => {
        resolve(res.statusCode ?? 0);
        ws.terminate();
      });
      ws.on('open', () => resolve(101));
      ws.on('error', () => undefined);
    });
    assert.equal(status, 401);
  });

  test('hmac_payload has no handshake form: a permanent error, nothing dialled', async () => {
    const lbl = label('hmac');
    const m = maintain(
      tb,
      tb.info.connections.hmac_payload,
      wsEndpoint(tb, 'hmac_payload', lbl),
      new Recorder(),
    );
    const error = await m.wait();
    assert.ok(error instanceof PermanentConnectionError, String(error));
    assert.equal(error.code, 'strategy_not_applicable');
    assert.equal(error.connectionId, tb.info.connections.hmac_payload);
    assert.equal((await tb.stats()).ws[lbl], undefined);
  });

  test('an endpoint that is not ws:// or wss:// is refused at once', async () => {
    const m = maintain(tb, tb.info.connections.header, `${tb.info.upstream_url}/header/x`, new Recorder());
    const error = await m.wait(2000);
    assert.ok(error instanceof PermanentConnectionError);
    assert.equal(error.reason, 'invalid endpoint');
  });
});

describe('drops and reconnects', () => {
  test('the server drops the connection: reconnect after a backoff; metrics and logs say so', async () => {
    const lbl = label('drop');
    const id = tb.info.connections.header;
    const events: string[] = [];
    const status: boolean[] = [];
    const metrics: BridgeMetrics = {
      connection: (t) => events.push(`connection ${t}`),
      disconnect: (t, reason: DisconnectReason) => events.push(`disconnect ${t} ${reason}`),
      status: (_t, cid, up) => {
        assert.equal(cid, id);
        status.push(up);
      },
    };
    const logs: { level: LogLevel; message: string; fields: Record<string, unknown> }[] = [];
    const rec = new Recorder();
    // A first wait of 300–600 ms: longer than reading the credential again and dialling take.
    const retry = { minBackoffMs: 600, maxBackoffMs: 1000 };
    const m = maintain(tb, id, wsEndpoint(tb, 'header', lbl), rec, {
      retry,
      metrics,
      log: (level, message, fields) => logs.push({ level, message, fields }),
    });
    await eventually('welcome', 20_000, () => rec.welcomes() === 1);
    assert.deepEqual(status, [true]);

    const { dropped } = await tb.control<{ dropped: number }>('POST', '/ws/drop', { label: lbl });
    assert.equal(dropped, 1);
    await eventually('a second connection', 20_000, () => rec.welcomes() === 2);
    await rec.echo('after the drop');
    assert.equal(rec.connects, 2);
    assert.equal(rec.disconnects.length, 1);
    assert.ok(rec.lastDisconnect() instanceof WebSocketCloseError);
    assert.equal((rec.lastDisconnect() as WebSocketCloseError).code, 1006);

    const s = await wsStats(tb, lbl);
    assert.equal(s.opened, 2);
    assert.equal(s.closed['1006'], 1);
    assert.equal(s.handshakes.length, 2);
    // The second handshake waited for the backoff (at least half of minBackoffMs).
    const gap = s.handshakes[1]!.at - s.handshakes[0]!.at;
    assert.ok(gap >= retry.minBackoffMs / 2, `reconnected after ${gap} ms, before any backoff`);
    assert.deepEqual(events, [
      'connection websocket',
      'disconnect websocket dropped',
      'connection websocket',
    ]);

    m.abort();
    assert.ok(isAbort(await m.wait()));
    assert.deepEqual(status, [true, false, true, false]);
    const messages = logs.map((l) => l.message);
    for (const want of ['connected', 'reconnecting', 'disconnected'])
      assert.ok(messages.includes(want), `no "${want}" log in ${messages.join(', ')}`);
    assert.ok(logs.every((l) => l.fields.connection_id === id && l.fields.transport === 'websocket'));
    const token = await agentClient(tb).getToken(id);
    assert.ok(!JSON.stringify(logs).includes(token.credentials.api_key!), 'the logs contain the credential');
  });

  test('failed attempts back off exponentially (503 three times)', async () => {
    const lbl = label('backoff');
    const rec = new Recorder();
    const m = maintain(tb, tb.info.connections.basic_auth, wsEndpoint(tb, 'basic_auth', lbl), rec, {
      retry: FAST,
    });
    await eventually('welcome', 20_000, () => rec.welcomes() === 1);
    await tb.control('POST', '/ws/refuse-next', { label: lbl, count: 3, status: 503 });
    await tb.control('POST', '/ws/drop', { label: lbl });
    await eventually('the connection after three refusals', 20_000, () => rec.welcomes() === 2);
    const h = (await wsStats(tb, lbl)).handshakes;
    assert.deepEqual(
      h.map((x) => x.status),
      [101, 503, 503, 503, 101],
    );
    // Attempt n waits within [min·2ⁿ/2, min·2ⁿ]; the first wait follows the drop.
    for (let n = 1; n <= 3; n++) {
      const low = (FAST.minBackoffMs * 2 ** n) / 2;
      const gap = h[n + 1]!.at - h[n]!.at;
      assert.ok(gap >= low - 5, `wait ${n} was ${gap} ms, below ${low} ms: no exponential backoff`);
    }
    m.abort();
    await m.wait();
  });

  test('a permanent close code (1008) stops the loop', async () => {
    const lbl = label('policy');
    const rec = new Recorder();
    const id = tb.info.connections.header;
    const m = maintain(tb, id, wsEndpoint(tb, 'header', lbl), rec, { retry: FAST });
    await eventually('welcome', 20_000, () => rec.welcomes() === 1);
    await tb.control('POST', '/ws/drop', { label: lbl, code: 1008, reason: 'policy' });
    const error = await m.wait();
    assert.ok(error instanceof PermanentConnectionError, String(error));
    assert.equal(error.closeCode, 1008);
    assert.equal(error.connectionId, id);
    assert.ok(error.cause instanceof WebSocketCloseError);
    assert.equal(rec.disconnects.length, 1);
    await sleepMs(2 * FAST.maxBackoffMs);
    const s = await wsStats(tb, lbl);
    assert.equal(s.opened, 1, 'connected again after a permanent close code');
    assert.equal(s.handshakes.length, 1);
  });

  test('a handshake answered another 4xx (404) stops the loop; 401 would not', async () => {
    const lbl = label('gone');
    await tb.control('POST', '/ws/refuse-next', { label: lbl, count: 1, status: 404 });
    const rec = new Recorder();
    const m = maintain(tb, tb.info.connections.header, wsEndpoint(tb, 'header', lbl), rec, { retry: FAST });
    const error = await m.wait();
    assert.ok(error instanceof PermanentConnectionError, String(error));
    assert.equal(error.reason, 'handshake answered 404');
    assert.equal(rec.connects, 0);
    await sleepMs(2 * FAST.maxBackoffMs);
    assert.equal((await wsStats(tb, lbl)).handshakes.length, 1);
  });
});

describe('revocation stops the loop with a typed error', () => {
  test('the grant revoked at the provider: attention_required', async () => {
    const id = await tb.connect('oauth2');
    const lbl = label('idp-revoke');
    const rec = new Recorder();
    const m = maintain(tb, id, wsEndpoint(tb, 'oauth2', lbl), rec, { retry: FAST });
    await eventually('welcome', 20_000, () => rec.welcomes() === 1);
    await tb.control('POST', '/idp/revoke', { connection_id: id });
    const error = await m.wait(20_000);
    assert.ok(error instanceof PermanentConnectionError, String(error));
    assert.equal(error.code, 'attention_required');
    assert.equal(error.connectionId, id);
    assert.ok(error.cause instanceof AttentionRequiredError);
    const s = await wsStats(tb, lbl);
    assert.equal(s.opened, 1);
    assert.equal(s.unauthorized, 1);
  });

  // An API key stays valid upstream after the broker revoked its connection: only reading the
  // credential again before reconnecting (not the cached one) stops the loop.
  test('a static connection revoked at the broker: not reconnected with the cached credential', async () => {
    const id = await tb.connect('header');
    const lbl = label('broker-revoke');
    const client = agentClient(tb);
    const rec = new Recorder();
    const m = maintain(tb, id, wsEndpoint(tb, 'header', lbl), rec, { retry: FAST }, client);
    await eventually('welcome', 20_000, () => rec.welcomes() === 1);
    await client.revokeConnection(id, { reason: 'test' });
    await tb.control('POST', '/ws/drop', { label: lbl });
    const error = await m.wait(20_000);
    assert.ok(error instanceof PermanentConnectionError, String(error));
    assert.ok(
      ['connection_not_active', 'not_found', 'connection_not_found'].includes(error.code),
      error.code,
    );
    assert.equal((await wsStats(tb, lbl)).opened, 1, 'connected again with a revoked connection');
  });
});

describe('message size limit', () => {
  test('outgoing: refused, nothing written; incoming: closed 1009, then reconnected', async () => {
    const lbl = label('size');
    const rec = new Recorder();
    const m = maintain(tb, tb.info.connections.header, wsEndpoint(tb, 'header', lbl), rec, {
      maxMessageBytes: 1024,
      retry: FAST,
    });
    await eventually('welcome', 20_000, () => rec.welcomes() === 1);

    await assert.rejects(rec.send(new Uint8Array(1025)), MessageTooLargeError);
    await assert.rejects(rec.send('é'.repeat(513)), MessageTooLargeError, 'strings count UTF-8 bytes');
    await rec.echo('x'.repeat(1024));
    assert.equal((await wsStats(tb, lbl)).messages, 1);

    await rec.send(JSON.stringify({ type: 'blob', bytes: 2048 }));
    await eventually('a second connection', 20_000, () => rec.welcomes() === 2);
    assert.ok(rec.lastDisconnect() instanceof MessageTooLargeError, String(rec.lastDisconnect()));
    assert.ok(!rec.messages.some((msg) => msg instanceof Uint8Array), 'the oversized message was delivered');
    const s = await wsStats(tb, lbl);
    assert.equal(s.closed['1009'], 1);
    assert.equal(s.opened, 2);
    // A binary message within the limit arrives as bytes.
    await rec.send(JSON.stringify({ type: 'blob', bytes: 1000 }));
    await eventually('a binary message', 10_000, () => rec.messages.some((msg) => msg instanceof Uint8Array));
    m.abort();
    await m.wait();
  });
});

test('pings: pongs keep an idle connection up; a server that stops answering is replaced', async () => {
  const lbl = label('ping');
  const rec = new Recorder();
  const m = maintain(tb, tb.info.connections.header, wsEndpoint(tb, 'header', lbl), rec, {
    pingIntervalMs: 200,
    writeTimeoutMs: 400,
    retry: FAST,
  });
  await eventually('welcome', 20_000, () => rec.welcomes() === 1);
  await eventually('three pings', 10_000, async () => (await wsStats(tb, lbl)).pings >= 3);
  await sleepMs(1000);
  assert.equal(rec.connects, 1, 'an idle connection with pongs was dropped');
  const { muted } = await tb.control<{ muted: number }>('POST', '/ws/mute', { label: lbl });
  assert.equal(muted, 1);
  await eventually('a new connection after the pongs stopped', 10_000, () => rec.welcomes() === 2);
  assert.match(String(rec.lastDisconnect()), /No pong nor message/);
  m.abort();
  await m.wait();
});

test('cancellation: a close handshake with 1000, then the loop ends with the abort reason', async () => {
  const lbl = label('cancel');
  const rec = new Recorder();
  const m = maintain(tb, tb.info.connections.header, wsEndpoint(tb, 'header', lbl), rec);
  await eventually('welcome', 20_000, () => rec.welcomes() === 1);
  const start = Date.now();
  m.abort();
  const error = await m.wait(5000);
  assert.ok(isAbort(error), String(error));
  assert.ok(Date.now() - start < 3000, `took ${Date.now() - start} ms to end`);
  assert.ok(isAbort(rec.lastDisconnect()));
  await assert.rejects(rec.send('late'), NotConnectedError);
  await eventually('the server saw the close', 5000, async () => {
    const s = await wsStats(tb, lbl);
    return s.closed['1000'] === 1 && s.open === 0;
  });
  assert.equal(m.running, false);
});

test('an abort while waiting to reconnect ends the loop at once', async () => {
  const lbl = label('cancel-wait');
  const rec = new Recorder();
  const m = maintain(tb, tb.info.connections.header, wsEndpoint(tb, 'header', lbl), rec, {
    retry: { minBackoffMs: 60_000, maxBackoffMs: 60_000 },
  });
  await eventually('welcome', 20_000, () => rec.welcomes() === 1);
  await tb.control('POST', '/ws/drop', { label: lbl });
  await eventually('the drop', 5000, () => rec.disconnects.length === 1);
  m.abort();
  assert.ok(isAbort(await m.wait(2000)));
});

test('a handler that throws is logged; the connection stays', async () => {
  const lbl = label('throws');
  const rec = new Recorder();
  const logged: string[] = [];
  const handler = {
    onConnect: (send: Parameters<Recorder['onConnect']>[0]) => rec.onConnect(send),
    onMessage: (message: string | Uint8Array) => {
      rec.onMessage(message);
      throw new Error('a bug in the handler');
    },
    onDisconnect: (error: unknown) => rec.onDisconnect(error),
  };
  const m = maintain(tb, tb.info.connections.header, wsEndpoint(tb, 'header', lbl), handler, {
    log: (level, message) => logged.push(`${level} ${message}`),
  });
  await eventually('welcome', 20_000, () => rec.welcomes() === 1);
  await rec.echo('still here');
  assert.equal(rec.disconnects.length, 0);
  assert.ok(logged.includes("error the handler's onMessage threw"), logged.join('\n'));
  m.abort();
  assert.ok(isAbort(await m.wait()));
});
