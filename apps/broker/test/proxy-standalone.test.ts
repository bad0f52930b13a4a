/**
 * `nexus proxy` in its own process (security review of the proxy, defects 3 to 5): a connection
 * revoked at the broker is refused at once although its token is cached; a request target that is
 * not a path (`*`, absolute-form) is a bad request, not an internal error; an upstream status no
 * HTTP server may send is an upstream failure. Real upstreams on loopback, a real broker.
 */
import assert from 'node:assert/strict';
import { createServer as createHttpServer } from 'node:http';
import { connect, createServer as createTcpServer, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { headerKeyedConnection } from './capture-helpers.ts';
import { freePort, killAllChildren, spawnCli } from './cli-helpers.ts';
import { listenOnLoopback } from './free-port.ts';
import { createAgentWithToken, startBroker, type TestBroker } from './harness.ts';
import { endsWithin, readStream } from './streamed-answer.ts';

after(killAllChildren);

const STRATEGY = { type: 'header', config: { header_name: 'X-Key', credential_field: 'api_key' } };

/** Sends `text` on a new connection; the answer's status and body (chunked framing removed). */
const exchange = (port: number, text: string) =>
  new Promise<{ status: number; body: string }>((done, fail) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(text));
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', fail);
    socket.on('close', () => {
      const answer = Buffer.concat(chunks);
      const at = answer.indexOf('\r\n\r\n');
      const head = answer.subarray(0, at).toString();
      let rest = answer.subarray(at + 4);
      let body = rest;
      if (/^transfer-encoding: *chunked/im.test(head)) {
        const parts: Buffer[] = [];
        for (let size = Number.parseInt(rest.toString(), 16); size > 0; ) {
          const start = rest.indexOf('\r\n') + 2;
          parts.push(rest.subarray(start, start + size));
          rest = rest.subarray(start + size + 2);
          size = Number.parseInt(rest.toString(), 16);
        }
        body = Buffer.concat(parts);
      }
      done({ status: Number(head.split(' ')[1]), body: body.toString() });
    });
  });

describe('nexus proxy', { timeout: 60_000 }, () => {
  let broker: TestBroker;
  let brokerUrl: string;
  let proxyPort: number;
  let caller: string;
  const connections: Record<string, string> = {};
  /** The credentials that reached the upstream, one per request. */
  const seen: string[] = [];
  const upstream = createHttpServer((req, res) => {
    seen.push(String(req.headers['x-key']));
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
  });
  /** An event stream: an event every 50 ms for as long as the caller reads. */
  const events = createHttpServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const timer = setInterval(() => res.write('data: tick\n\n'), 50);
    res.on('close', () => clearInterval(timer));
  });
  /** Answers status 600 and keeps its chunked body open. */
  const sockets = new Set<Socket>();
  const odd = createTcpServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.once('data', () =>
      socket.write(
        'HTTP/1.1 600 Odd\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n',
      ),
    );
  });

  before(async () => {
    const upstreamUrl = await listenOnLoopback(upstream);
    const oddUrl = await listenOnLoopback(odd);
    const eventsUrl = await listenOnLoopback(events);
    broker = await startBroker({ env: { NEXUS_EGRESS_ALLOWED_CIDRS: '127.0.0.1/32' } });
    for (const [name, base] of [
      ['svc', upstreamUrl],
      ['other', upstreamUrl],
      ['odd', oddUrl],
      ['events', eventsUrl],
    ] as const) {
      connections[name] = await headerKeyedConnection(broker, name, base, STRATEGY);
    }
    const grants = { allowed_providers: ['*'], allowed_workspaces: ['*'] };
    caller = (await createAgentWithToken(broker, 'caller', grants)).token;
    const sidecar = await createAgentWithToken(broker, 'sidecar', grants);
    brokerUrl = await broker.app.listen({ port: 0, host: '127.0.0.1' });
    proxyPort = await freePort();
    const child = spawnCli(['proxy'], {
      PATH: process.env.PATH ?? '',
      NEXUS_URL: brokerUrl,
      NEXUS_CLIENT_ID: 'sidecar',
      NEXUS_CLIENT_SECRET: sidecar.secret,
      // The base URLs have no path: the caller's path is all of the upstream's.
      NEXUS_ROUTES: `svc=${upstreamUrl},other=${upstreamUrl},odd=${oddUrl},events=${eventsUrl}`,
      NEXUS_EGRESS_ALLOWED_CIDRS: '127.0.0.1/32',
      PROXY_PORT: String(proxyPort),
      TOKEN_CACHE_TTL: '60',
      LOG_LEVEL: 'info',
    });
    await child.waitFor('stdout', /nexus proxy ready/, 15_000);
  });
  after(async () => {
    await broker?.close();
    upstream.closeAllConnections();
    upstream.close();
    events.closeAllConnections();
    events.close();
    for (const socket of sockets) socket.destroy();
    odd.close();
  });

  const call = (path: string, connection: string) =>
    fetch(`http://127.0.0.1:${proxyPort}${path}`, {
      headers: { authorization: `Bearer ${caller}`, 'x-nexus-connection-id': connection },
    });

  it('refuses a connection revoked at the broker at once, though its token is cached', async () => {
    const first = await call('/svc/x', connections.svc!);
    assert.equal(first.status, 200, await first.clone().text());
    const revoked = await broker.request({ method: 'DELETE', url: `/connections/${connections.svc}` });
    assert.equal(revoked.statusCode, 200, revoked.body);
    seen.length = 0;
    const after = await call('/svc/x', connections.svc!);
    assert.equal(after.status, 409, 'the revoked connection is not used');
    assert.equal(((await after.json()) as { error: string }).error, 'connection_not_active');
    assert.deepEqual(seen, [], 'nothing reached the upstream');
  });

  it('ends an answer still streaming once its connection is revoked at the broker', async () => {
    // It went on for as long as the upstream sent (2026-12-08); the in-broker proxy's already ended.
    const res = await call('/events/stream', connections.events!);
    assert.equal(res.status, 200);
    const stream = readStream(res);
    try {
      assert.equal(await endsWithin(stream.ended, 300), false, 'control: it streams');
      assert.ok(stream.chunks() > 0);
      const revoked = await broker.request({ method: 'DELETE', url: `/connections/${connections.events}` });
      assert.equal(revoked.statusCode, 200, revoked.body);
      assert.equal(await endsWithin(stream.ended, 15_000), true, 'the answer ended after the revocation');
    } finally {
      await stream.cancel();
    }
  });

  it('answers 400 invalid_request to a request target that is not a path (`*`, absolute-form), in the broker too', async () => {
    const headers = [
      'Host: proxy.test',
      `Authorization: Bearer ${caller}`,
      `X-Nexus-Connection-ID: ${connections.other}`,
      'X-Nexus-Provider: other',
      'Connection: close',
    ].join('\r\n');
    seen.length = 0;
    const brokerPort = Number(new URL(brokerUrl).port);
    for (const [port, line] of [
      [proxyPort, 'OPTIONS * HTTP/1.1'],
      [proxyPort, 'GET http://elsewhere.test/x HTTP/1.1'],
      [brokerPort, 'GET http://elsewhere.test/proxy/x HTTP/1.1'],
    ] as const) {
      const answer = await exchange(port, `${line}\r\n${headers}\r\n\r\n`);
      assert.equal(answer.status, 400, `${line}: ${answer.body}`);
      assert.equal((JSON.parse(answer.body) as { error: string }).error, 'invalid_request', line);
    }
    assert.deepEqual(seen, [], 'nothing reached the upstream');
  });

  it('answers 502 upstream_error to an upstream status outside 100–599, and closes that connection', async () => {
    const answer = await call('/odd/x', connections.odd!);
    assert.equal(answer.status, 502);
    assert.equal(((await answer.json()) as { error: string }).error, 'upstream_error');
    const until = Date.now() + 3_000;
    while (sockets.size > 0 && Date.now() < until) await new Promise((done) => setTimeout(done, 20));
    assert.equal(sockets.size, 0, 'the upstream connection is closed');
  });
});
