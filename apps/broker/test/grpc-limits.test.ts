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

  it('answers a message that is not protobuf with INVALID_ARGUMENT, not INTERNAL', async () => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    try {
      const stream = session.request({
        ':method': 'POST',
        ':path': '/nexus.v1.NexusService/GetToken',
        'content-type': 'application/grpc',
        te: 'trailers',
        'x-api-key': broker.adminKey,
      });
      // One uncompressed gRPC frame whose payload is not a protobuf message (a truncated varint).
      const payload = Buffer.from([0x0a, 0xff, 0xff, 0xff]);
      const frame = Buffer.alloc(5 + payload.length);
      frame.writeUInt32BE(payload.length, 1);
      payload.copy(frame, 5);
      stream.end(frame);
      stream.resume();
      // The status comes in trailers, or in the headers of a trailers-only answer.
      const trailers = await new Promise<http2.IncomingHttpHeaders>((done, fail) => {
        stream.once('response', (headers) => {
          if (headers['grpc-status'] !== undefined) done(headers);
        });
        stream.once('trailers', done);
        stream.once('error', fail);
      });
      assert.equal(trailers['grpc-status'], String(3), JSON.stringify(trailers));
      assert.equal(trailers['nexus-error-code'], 'invalid_request');
    } finally {
      session.destroy();
    }
  });
});
