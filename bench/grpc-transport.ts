/**
 * What the gRPC target ("GetToken over gRPC at least as fast as REST") is up against before any
 * service work: the server CPU per call of three transports answering a trivial request, with the
 * same 50 requests in flight, in one run, with h2load (`scripts/services.sh ensure-h2load`):
 *
 * - Fastify on HTTP/1.1 (bench/lib/hello.ts), what REST runs on: 50 connections;
 * - a unary gRPC answer written directly on `node:http2` (bench/lib/grpc-ceiling.ts `http2`);
 * - `@grpc/grpc-js`, the broker's gRPC server, with a raw-bytes method (`grpc-js`);
 *
 * the two gRPC ones with one stream on each of 50 connections and with 25 streams on each of two
 * (a gRPC channel multiplexes its calls). Usage: `node bench/grpc-transport.ts [--seconds 8]`.
 * The token fetch adds the same service work on either protocol (bench/grpc-token-fetch.ts measures
 * both end to end), so the transport's cost per call decides the ratio.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { procTicks, TICK_MS } from './lib/proc.ts';
import { freePort } from './lib/services.ts';
import { startListening } from './lib/wrk.ts';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '8' } } });
const seconds = Number(values.seconds);
const dir = mkdtempSync(join(tmpdir(), 'nexus-bench-'));
// One gRPC message of 5 bytes behind its 5-byte prefix (uncompressed, length 5).
const body = join(dir, 'call.bin');
writeFileSync(body, Buffer.from([0, 0, 0, 0, 5, 0x0a, 3, 0x61, 0x62, 0x63]));
const grpcHeaders = ['-d', body, '-H', 'content-type: application/grpc', '-H', 'te: trailers'];

interface Row {
  name: string;
  rps: number;
  cpuUs: number;
}

async function phase(name: string, file: string, args: string[], path: string, load: string[]): Promise<Row> {
  const port = await freePort();
  const server = await startListening(file, [...args, String(port)]);
  try {
    const run = (duration: number) =>
      execFileSync('h2load', ['-t2', `-D${duration}`, ...load, `http://127.0.0.1:${port}${path}`], {
        encoding: 'utf8',
      });
    run(2); // warm-up
    const before = procTicks(server.pid);
    const out = run(seconds);
    const ticks = procTicks(server.pid) - before;
    const done = Number(/requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded/.exec(out)?.[2]);
    const failed = Number(/(\d+) failed/.exec(out)?.[1]);
    if (!(done > 0) || failed > 0) throw new Error(`${name}: ${done} succeeded, ${failed} failed\n${out}`);
    return { name, rps: done / seconds, cpuUs: (ticks * TICK_MS * 1000) / done };
  } finally {
    await server.stop();
  }
}

const lib = join(import.meta.dirname, 'lib');
const ceiling = join(lib, 'grpc-ceiling.ts');
const path = '/bench.Ceiling/Get';
try {
  const rows = [
    await phase('Fastify, HTTP/1.1, 50 connections', join(lib, 'hello.ts'), [], '/', ['--h1', '-c50']),
    await phase('node:http2 gRPC, 50 × 1 stream', ceiling, ['http2'], path, ['-c50', '-m1', ...grpcHeaders]),
    await phase('node:http2 gRPC, 2 × 25 streams', ceiling, ['http2'], path, ['-c2', '-m25', ...grpcHeaders]),
    await phase('grpc-js, 50 × 1 stream', ceiling, ['grpc-js'], path, ['-c50', '-m1', ...grpcHeaders]),
    await phase('grpc-js, 2 × 25 streams', ceiling, ['grpc-js'], path, ['-c2', '-m25', ...grpcHeaders]),
  ];
  const base = rows[0]!.cpuUs;
  console.log(
    `machine: ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), node ${process.version}, h2load -t2 -D${seconds}`,
  );
  for (const r of rows)
    console.log(
      `${r.name.padEnd(36)} ${r.rps.toFixed(0).padStart(7)} req/s   server CPU ${r.cpuUs.toFixed(1).padStart(5)} µs/request (${(r.cpuUs / base).toFixed(2)}× HTTP/1.1)`,
    );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
