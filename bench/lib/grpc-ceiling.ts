/**
 * The transports under the broker's gRPC listener, with no service work: a unary gRPC answer (a
 * 60-byte message and `grpc-status: 0` in trailers) for any call. Run as a child process by
 * bench/grpc-transport.ts: `node bench/lib/grpc-ceiling.ts http2|grpc-js PORT`; prints `listening`.
 *
 * - `http2`: written directly on `node:http2`, the least any gRPC server on Node can do per call.
 * - `grpc-js`: `@grpc/grpc-js` (the broker's gRPC server) with one unary method taking and
 *   answering raw bytes, so no protobuf encoding is counted.
 */
import { createServer } from 'node:http2';
import * as grpc from '@grpc/grpc-js';

const [kind, portText] = process.argv.slice(2);
const port = Number(portText);
const answer = Buffer.alloc(60, 1);

if (kind === 'http2') {
  const frame = Buffer.alloc(5 + answer.length);
  frame.writeUInt32BE(answer.length, 1);
  answer.copy(frame, 5);
  const server = createServer();
  server.on('stream', (stream) => {
    stream.resume();
    stream.on('end', () => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(frame);
    });
  });
  server.listen(port, '127.0.0.1', () => process.stdout.write('listening\n'));
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
} else if (kind === 'grpc-js') {
  const bytes = (b: Buffer) => b;
  const server = new grpc.Server();
  server.addService(
    {
      Get: {
        path: '/bench.Ceiling/Get',
        requestStream: false,
        responseStream: false,
        requestSerialize: bytes,
        requestDeserialize: bytes,
        responseSerialize: bytes,
        responseDeserialize: bytes,
      },
    },
    { Get: (_call: unknown, callback: grpc.sendUnaryData<Buffer>) => callback(null, answer) },
  );
  server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (error) => {
    if (error) throw error;
    process.stdout.write('listening\n');
  });
  process.on('SIGTERM', () => server.tryShutdown(() => process.exit(0)));
} else {
  throw new Error(`usage: node bench/lib/grpc-ceiling.ts http2|grpc-js PORT (got ${kind})`);
}
