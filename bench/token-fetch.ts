/**
 * GET /v1/token/{id} (authenticated, audited read) against GET /health (no-op) on the same server,
 * with wrk (Debian package `wrk`), 50 connections. Usage:
 *
 *   node bench/token-fetch.ts [--pg] [--seconds 15]
 *
 * --pg uses PostgreSQL (scripts/services.sh ensure-postgres; a fresh schema is created and dropped).
 * The connection is a static-credential one (captured API key): the read path is the same as for
 * OAuth (one indexed query, decrypt, group-committed audit event) without an identity provider.
 * Targets (DEVELOPERS.md): token fetch >= 0.3x the no-op route, p99 <= 5 ms, on PostgreSQL.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';

const { values } = parseArgs({
  options: { pg: { type: 'boolean' }, seconds: { type: 'string', default: '15' } },
});
const seconds = Number(values.seconds);
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

interface WrkResult {
  rps: number;
  p50: number;
  p99: number;
  errors: string;
}

function ms(text: string): number {
  const m = /([\d.]+)(us|ms|s)/.exec(text);
  if (!m) return Number.NaN;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
}

function wrk(url: string, headers: string[]): WrkResult {
  const args = ['-t2', '-c50', `-d${seconds}s`, '--latency', ...headers.flatMap((h) => ['-H', h]), url];
  const out = execFileSync('wrk', args, { encoding: 'utf8' });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const p50 = ms(/\s50%\s+(\S+)/.exec(out)?.[1] ?? '');
  const p99 = ms(/\s99%\s+(\S+)/.exec(out)?.[1] ?? '');
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1];
  const socket = /Socket errors:[^\n]+/.exec(out)?.[0];
  return {
    rps,
    p50,
    p99,
    errors: [non2xx ? `${non2xx} non-2xx` : '', socket ?? ''].filter(Boolean).join('; ') || 'none',
  };
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

const port = await freePort();
env.PORT = String(port);
const base = `http://127.0.0.1:${port}`;
const nodeFlags = process.env.BENCH_NODE_FLAGS ? process.env.BENCH_NODE_FLAGS.split(' ') : [];
const broker = spawn(process.execPath, [...nodeFlags, bin, 'serve'], {
  env,
  stdio: ['ignore', 'ignore', 'pipe'],
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
    user_id: 'bench',
    provider_name: 'bench',
    return_url: 'http://localhost/done',
  });
  await admin('POST', '/v1/capture-credential', {
    state: started.state,
    credentials: { api_key: 'sk_bench_123' },
  });
  const id = started.connection_id!;
  await admin('GET', `/v1/token/${id}`);

  // Warm-up, then the two measurements back to back on the same server.
  wrk(`${base}/health`, []);
  const noop = wrk(`${base}/health`, []);
  const token = wrk(`${base}/v1/token/${id}`, [`X-API-Key: ${apiKey}`]);
  const ratio = token.rps / noop.rps;
  const fmt = (r: WrkResult) =>
    `${r.rps.toFixed(0).padStart(7)} req/s   p50 ${r.p50.toFixed(2).padStart(6)} ms   p99 ${r.p99.toFixed(2).padStart(6)} ms   errors: ${r.errors}`;
  console.log(
    `machine: ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), node ${process.version}, database ${values.pg ? 'postgresql' : 'sqlite'}, wrk -t2 -c50 -d${seconds}s`,
  );
  console.log(`GET /health (no-op)      ${fmt(noop)}`);
  console.log(`GET /v1/token/{id}       ${fmt(token)}`);
  console.log(
    `ratio token/no-op: ${ratio.toFixed(2)} (target >= 0.30: ${ratio >= 0.3 ? 'MET' : 'NOT MET'}); token p99 target <= 5 ms: ${token.p99 <= 5 ? 'MET' : 'NOT MET'}`,
  );
} finally {
  broker.kill('SIGTERM');
  await new Promise((r) => broker.once('exit', r));
  rmSync(dataDir, { recursive: true, force: true });
  if (schema !== undefined && pgUrl !== undefined) {
    const client = new pg.Client({ connectionString: pgUrl });
    await client.connect();
    await client.query(`DROP SCHEMA ${schema} CASCADE`);
    await client.end();
  }
}
