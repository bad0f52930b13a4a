/**
 * The gRPC listener bounds what a client may hold without sending anything, as the REST listener
 * does (2026-12-07 review: raw sockets and header-only streams were held for ever, without
 * credentials): a connection with no call closes after NEXUS_HTTP_KEEP_ALIVE_TIMEOUT_SECONDS, and
 * one connection carries at most 100 calls at once.
 */
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { after, before, describe, it } from 'node:test';
import type { GrpcServer } from '../src/grpc/server.ts';
import { startGrpc } from './grpc-client.ts';
import { startBroker, type TestBroker } from './harness.ts';

describe('gRPC listener limits', () => {
  let broker: TestBroker;
  let server: GrpcServer;
  let port = 0;

  before(async () => {
    broker = await startBroker({ env: { NEXUS_HTTP_KEEP_ALIVE_TIMEOUT_SECONDS: '1' } });
    const started = await startGrpc(broker);
    server = started.server;
    port = Number(started.address.split(':')[1]);
  });
  after(async () => {
    await server?.close(0);
    await broker?.close();
  });

  it('closes an HTTP/2 connection that makes no call once the keep-alive timeout has passed', async () => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', () => {});
    const closed = new Promise<boolean>((done) => session.once('close', () => done(true)));
    // A bound, not a timing goal: the timeout is 1 s; without it the connection stays open for ever.
    const within = await Promise.race([
      closed,
      new Promise<boolean>((done) => setTimeout(() => done(false), 10_000)),
    ]);
    session.destroy();
    assert.equal(within, true, 'the idle connection was closed');
  });

  it('announces at most 100 concurrent calls per connection', async () => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    try {
      const settings = await new Promise<http2.Settings>((done, fail) => {
        session.once('remoteSettings', done);
        session.once('error', fail);
      });
      assert.equal(settings.maxConcurrentStreams, 100);
    } finally {
      session.destroy();
    }
  });
});
