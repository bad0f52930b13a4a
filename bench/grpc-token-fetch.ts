/**
 * gRPC `nexus.v1.NexusService/GetToken` against REST `GET /v1/token/{id}`: the same broker
 * (`nexus serve` with GRPC_PORT), the same connection, the same credential, the same concurrency,
 * and the same load generator for both, h2load (Debian package `nghttp2-client`): HTTP/1.1 for
 * REST (`--h1`, like wrk), HTTP/2 cleartext for gRPC. Usage:
 *
 *   node bench/grpc-token-fetch.ts [--pg] [--seconds 15] [--clients 50] [--grpc-connections N]
 *
 * --clients is the number of requests in flight (50, as in bench/token-fetch.ts): REST uses that
 * many HTTP/1.1 connections, one request at a time each. --grpc-connections (default: the same
 * number) spreads the gRPC calls over fewer HTTP/2 connections, clients / N concurrent streams each,
 * which is what a gRPC channel does (one connection, many calls). h2load counts HTTP statuses only, and gRPC errors travel in
 * trailers with HTTP 200, so every gRPC call is also checked in the broker's access log (`code`).
 * Percentiles come from h2load's per-request log. The connection is a static-credential one, as in
 * bench/token-fetch.ts (one indexed query, decrypt, group-committed audit event per call).
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';

const { values } = parseArgs({
  options: {
    pg: { type: 'boolean' },
    seconds: { type: 'string', default: '15' },
    clients: { type: 'string', default: '50' },
    'grpc-connections': { type: 'string' },
  },
});
const seconds = Number(values.seconds);
const clients = Number(values.clients);
const grpcConnections = Number(values['grpc-connections'] ?? clients);
const streams = Math.ceil(clients / grpcConnections);
const root = join(import.meta.dirname, '..');
const bin = join(root, 'apps', 'broker', 'bin', 'nexus.js');

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

const TICK_US = 1e6 / 100; // USER_HZ is 100 on Linux

/** utime + stime of a process, in clock ticks. */
function procTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

interface Result {
  rps: number;
  p50: number;
  p99: number;
  failed: number;
  /** Broker CPU microseconds per request. */
  brokerCpu: number;
}

/** One h2load phase; `args` say the protocol, the method and the body. */
function h2load(url: string, connections: number, args: string[], brokerPid: number, dir: string): Result {
  const log = join(dir, `h2load-${randomBytes(4).toString('hex')}.tsv`);
  const before = procTicks(brokerPid);
  const out = execFileSync(
    'h2load',
    ['-t2', `-c${connections}`, `-D${seconds}`, '--warm-up-time=2', `--log-file=${log}`, ...args, url],
    { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 },
  );
  const ticks = procTicks(brokerPid) - before;
  // Columns: start (µs since epoch), HTTP status, request time (µs). Status 0: still in flight
  // when the duration ended (cut off, not failed).
  const rows = readFileSync(log, 'utf8')
    .trim()
    .split('\n')
    .map((line) => line.split('\t').map(Number))
    .filter((r) => r[1] !== 0);
  rmSync(log, { force: true });
  const times = rows.map((r) => r[2]! / 1000).sort((a, b) => a - b);
  const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))] ?? Number.NaN;
  const rps = Number(/finished in [^,]+, ([\d.]+) req\/s/.exec(out)?.[1]);
  const failed = rows.filter((r) => r[1]! < 200 || r[1]! >= 300).length;

  // h2load's own count covers the whole run (warm-up included): per-request CPU over the same span.
  const done = Number(/requests: \d+ total, \d+ started, (\d+) done/.exec(out)?.[1]);
  return { rps, p50: at(0.5), p99: at(0.99), failed, brokerCpu: (ticks * TICK_US) / done };
}

const dataDir = mkdtempSync(join(tmpdir(), 'nexus-bench-'));
const apiKey = `bench-${randomBytes(16).toString('hex')}`;
const env: Record<string, string> = {
  PATH: process.env.PATH ?? '',
  NEXUS_DATA_DIR: dataDir,
  ENCRYPTION_KEY: randomBytes(32).toString('base64'),
  STATE_KEY: randomBytes(32).toString('base64'),
  API_KEY: apiKey,
  LOG_LEVEL: process.env.LOG_LEVEL ?? 'info',
  // The benchmark measures the token path, not the per-client limit (which would cap it).
  RATE_LIMIT_ENABLED: 'false',
  NODE_COMPILE_CACHE: join(dataDir, 'cc'),
};
let schema: string | undefined;
let pgUrl: string | undefined;
if (values.pg) {
  pgUrl = execFileSync('bash', [join(root, 'scripts', 'services.sh'), 'ensure-postgres'], {
    encoding: 'utf8',
  }).trim();
  schema = `bench_${randomBytes(4).toString('hex')}`;
  const client = new pg.Client({ connectionString: pgUrl });
  await client.connect();
  await client.query(`CREATE SCHEMA ${schema}`);
  await client.end();
  env.DATABASE_URL = `${pgUrl}?options=-c%20search_path%3D${schema}`;
  env.DATABASE_POOL_MAX = '10';
}

const [port, grpcPort] = [await freePort(), await freePort()];
env.PORT = String(port);
env.GRPC_PORT = String(grpcPort);
const base = `http://127.0.0.1:${port}`;
// The access log goes to a file (as cheap as the REST bench's ignored stdout), read afterwards.
const logFile = join(dataDir, 'broker.log');
const logFd = openSync(logFile, 'w');
const nodeFlags = process.env.BENCH_NODE_FLAGS ? process.env.BENCH_NODE_FLAGS.split(' ') : [];
const broker = spawn(process.execPath, [...nodeFlags, bin, 'serve', '--no-worker'], {
  env,
  stdio: ['ignore', logFd, 'pipe'],
});
try {
  for (let i = 0; ; i++) {
    if (i > 100) throw new Error('broker did not start');
    try {
      if ((await fetch(`${base}/health`)).ok) break;
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  const admin = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { 'x-api-key': apiKey, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
    return res.json() as Promise<Record<string, string>>;
  };
  await admin('POST', '/providers', { profile: { name: 'bench', auth_type: 'api_key' } });
  const started = await admin('POST', '/v1/request-connection', {
    user_id: 'bench-0',
    provider_name: 'bench',
    return_url: 'http://localhost/done',
  });
  await admin('POST', '/v1/capture-credential', {
    state: started.state,
    credentials: { api_key: 'sk_bench_0' },
  });
  const id = started.connection_id!;

  // GetTokenRequest {connection_id = 1} in one gRPC length-prefixed message (uncompressed).
  const message = Buffer.concat([Buffer.from([0x0a, Buffer.byteLength(id)]), Buffer.from(id)]);
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  message.copy(frame, 5);
  const body = join(dataDir, 'get-token.bin');
  writeFileSync(body, frame);
  const grpcArgs = [
    `-m${streams}`,
    '-d',
    body,
    '-H',
    'content-type: application/grpc',
    '-H',
    'te: trailers',
    '-H',
    `x-api-key: ${apiKey}`,
  ];
  const grpcUrl = `http://127.0.0.1:${grpcPort}/nexus.v1.NexusService/GetToken`;
  const restArgs = ['--h1', '-H', `x-api-key: ${apiKey}`];
  const restUrl = `${base}/v1/token/${id}`;

  const pid = broker.pid!;
  const rest = h2load(restUrl, clients, restArgs, pid, dataDir);
  const grpc = h2load(grpcUrl, grpcConnections, grpcArgs, pid, dataDir);
  // gRPC answers 200 even for a failed call: the status is in the access log, complete once the
  // broker has exited (it writes its log in blocks).
  const exited = new Promise((r) => broker.once('exit', r));
  broker.kill('SIGTERM');
  await exited;
  const calls = readFileSync(logFile, 'utf8')
    .split('\n')
    .filter((line) => line.includes('"method":"GetToken"'));
  const grpcFailed = calls.filter((line) => !line.includes('"code":"OK"')).length;

  const fmt = (r: Result, failed: number) =>
    `${r.rps.toFixed(0).padStart(7)} req/s   p50 ${r.p50.toFixed(2).padStart(6)} ms   p99 ${r.p99.toFixed(2).padStart(6)} ms   failed: ${failed}   broker CPU ${r.brokerCpu.toFixed(0)} µs/request`;
  console.log(
    `machine: ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), node ${process.version}, database ${values.pg ? 'postgresql' : 'sqlite'}, h2load -t2 -D${seconds}, ${clients} in flight: REST -c${clients}, gRPC -c${grpcConnections} -m${streams}`,
  );
  console.log(`REST GET /v1/token/{id}   ${fmt(rest, rest.failed)}`);
  console.log(
    `gRPC GetToken             ${fmt(grpc, grpc.failed + grpcFailed)}  (${calls.length} calls logged)`,
  );
  console.log(`ratio gRPC/REST: ${(grpc.rps / rest.rps).toFixed(2)} (target >= 1)`);
  if (rest.failed + grpc.failed + grpcFailed > 0 || calls.length === 0) process.exitCode = 1;
} finally {
  if (broker.exitCode === null && broker.signalCode === null) {
    broker.kill('SIGTERM');
    await new Promise((r) => broker.once('exit', r));
  }
  closeSync(logFd);
  rmSync(dataDir, { recursive: true, force: true });
  if (schema !== undefined && pgUrl !== undefined) {
    const client = new pg.Client({ connectionString: pgUrl });
    await client.connect();
    await client.query(`DROP SCHEMA ${schema} CASCADE`);
    await client.end();
  }
}
