/**
 * The credential proxy gives back what it holds of an upstream (security review of the proxy,
 * defects 1 and 4): an answer nobody reads any more, a caller that leaves before or during the
 * answer, and an answer with a status no HTTP server may send all release their pooled upstream
 * connection, so that a provider's route never stops for every caller. Real upstreams on loopback;
 * the broker's proxy timeout is 1 s.
 */
import assert from 'node:assert/strict';
import { createServer as createHttpServer, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { headerKeyedConnection } from './capture-helpers.ts';
import { listenOnLoopback } from './free-port.ts';
import { createAgentWithToken, startBroker, type TestBroker } from './harness.ts';

const STRATEGY = { type: 'header', config: { header_name: 'X-Api-Key', credential_field: 'api_key' } };

/** Resolves with `value` or fails with `message` after `ms`. */
const within = <T>(promise: Promise<T>, ms: number, message: string) =>
  Promise.race([promise, new Promise<never>((_, fail) => setTimeout(() => fail(new Error(message)), ms))]);

describe('the proxy releases upstream connections', { timeout: 60_000 }, () => {
  let broker: TestBroker;
  let brokerUrl: string;
  let token: string;
  const connections: Record<string, string> = {};
  /** Each upstream answer, by request target: resolves when its connection to the broker closes. */
  const closed = new Map<string, Promise<void>>();
  /** Resolves when the answer to `target` has reached the upstream and was then closed. */
  const released = async (target: string) => {
    while (!closed.has(target)) await new Promise((done) => setTimeout(done, 10));
    await closed.get(target);
  };
  const http = createHttpServer((req, res: ServerResponse) => {
    closed.set(req.url ?? '', new Promise<void>((done) => res.once('close', () => done())));
    if (new URL(req.url ?? '/', 'http://x').pathname.includes('/late')) {
      // Answers after 500 ms, then streams until the other side goes away.
      setTimeout(() => {
        if (res.destroyed) return;
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        const tick = setInterval(() => (res.destroyed ? clearInterval(tick) : res.write('x')), 20);
      }, 500);
      return;
    }
    // An endless download: 64 KiB chunks as fast as the reader takes them.
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    const chunk = Buffer.alloc(64 * 1024, 7);
    const more = () => {
      while (!res.destroyed && res.write(chunk));
    };
    res.on('drain', more);
    more();
  });
  /** Answers the status named by the last path segment, then keeps its chunked body open. */
  const sockets = new Set<Socket>();
  const raw = createTcpServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.once('data', (data) => {
      const status = String(data).split(' ')[1]?.split('/').pop();
      socket.write(
        `HTTP/1.1 ${status} Odd\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n`,
      );
    });
  });

  before(async () => {
    const httpUrl = await listenOnLoopback(http);
    const rawUrl = await listenOnLoopback(raw);
    broker = await startBroker({
      env: {
        NEXUS_EGRESS_ALLOWED_CIDRS: '127.0.0.1/32',
        NEXUS_PROXY_TIMEOUT_SECONDS: '1',
        NEXUS_MCP_GATEWAY_ROUTES: 'files,late',
      },
    });
    for (const [name, base] of [
      ['files', `${httpUrl}/api`],
      ['late', `${httpUrl}/api/late`],
      ['odd', rawUrl],
    ] as const) {
      connections[name] = await headerKeyedConnection(broker, name, base, STRATEGY);
    }
    token = (
      await createAgentWithToken(broker, 'agent-1', { allowed_providers: ['*'], allowed_workspaces: ['*'] })
    ).token;
    brokerUrl = await broker.app.listen({ port: 0, host: '127.0.0.1' });
  });
  after(async () => {
    await broker?.close();
    http.closeAllConnections();
    http.close();
    for (const socket of sockets) socket.destroy();
    raw.close();
  });

  const headers = (name: string) => ({
    authorization: `Bearer ${token}`,
    'x-nexus-connection-id': connections[name]!,
  });

  it('an answer its in-process reader stopped reading (the MCP tool) is released after the proxy timeout', async () => {
    const res = await broker.app.inject({
      method: 'GET',
      url: '/proxy/files/abandoned',
      headers: headers('files'),
      payloadAsStream: true,
    });
    assert.equal(res.statusCode, 200);
    const stream = res.stream();
    stream.on('error', () => {});
    // Reads one chunk, then neither reads nor closes: the reader has gone away without a word.
    await new Promise((done) => stream.once('data', done));
    stream.pause();
    await within(
      released('/api/abandoned'),
      5_000,
      'the upstream answer was still held 5 s after its reader stopped',
    );
  });

  for (const surface of ['/proxy', '/mcp-gateway'] as const) {
    it(`${surface}: a caller that leaves during the answer, or before it, releases the upstream connection`, async () => {
      const [during, late] =
        surface === '/proxy'
          ? [
              ['/proxy/files/during', '/api/during'],
              ['/proxy/late', '/api/late/'],
            ]
          : [
              ['/mcp-gateway/files?during', '/api?during'],
              ['/mcp-gateway/late?early', '/api/late?early'],
            ];
      const answer = await fetch(`${brokerUrl}${during[0]}`, { headers: headers('files') });
      assert.equal(answer.status, 200);
      const reader = (answer.body as ReadableStream<Uint8Array>).getReader();
      await reader.read();
      await reader.cancel();
      await within(released(during[1]!), 3_000, 'the upstream answer went on after the caller left');

      await assert.rejects(
        fetch(`${brokerUrl}${late[0]}`, { headers: headers('late'), signal: AbortSignal.timeout(100) }),
      );
      await within(
        released(late[1]!),
        3_000,
        'the upstream answer that started after the caller left was never stopped',
      );
    });
  }

  it('an upstream status outside 100–599 answers 502 upstream_error and closes the upstream connection', async () => {
    for (const status of ['600', '999']) {
      const res = await fetch(`${brokerUrl}/proxy/odd/s/${status}`, { headers: headers('odd') });
      assert.equal(res.status, 502, status);
      assert.equal(((await res.json()) as { error: string }).error, 'upstream_error');
    }
    await within(
      (async () => {
        while (sockets.size > 0) await new Promise((d) => setTimeout(d, 20));
      })(),
      3_000,
      `the upstream connections of the odd answers are still open (${sockets.size})`,
    );
  });
});
