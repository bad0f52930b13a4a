/**
 * GET /v1/token/{id} (authenticated, audited read) against GET /health (no-op) on the same server,
 * with wrk (Debian package `wrk`), 50 connections. Usage:
 *
 *   node bench/token-fetch.ts [--pg] [--seconds 15] [--key env|db|agent] [--clients 50] [--connections 1]
 *
 * --pg uses PostgreSQL (scripts/services.sh ensure-postgres; a fresh schema is created and dropped).
 * --key picks the credential: `env` (default) an API_KEY from the environment, `db` an `nxa_` key
 * made with the admin-keys API (looked up in the database on every request), `agent` an agent's ES256
 * access token from POST /oauth/token (verified, agent re-read and grant checked on every request). --clients sets wrk's
 * open connections (the targets are for 50). --connections N spreads the token requests over N
 * connections (a wrk Lua script cycles through them), so concurrent reads are not all for one row.
 * Each phase also reports where the machine's CPU went, from /proc, in CPU microseconds per
 * request: the broker, PostgreSQL (all its processes), wrk, and the rest (kernel work not charged
 * to a process, and any other process: a large figure there means the run was disturbed).
 * The connection is a static-credential one (captured API key): the read path is the same as for
 * OAuth (one indexed query, decrypt, group-committed audit event) without an identity provider.
 * Targets (DEVELOPERS.md): token fetch >= 0.3x the no-op route, p99 <= 5 ms, on PostgreSQL.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';

const { values } = parseArgs({
  options: {
    pg: { type: 'boolean' },
    seconds: { type: 'string', default: '15' },
    key: { type: 'string', default: 'env' },
    clients: { type: 'string', default: '50' },
    connections: { type: 'string', default: '1' },
  },
});
const clients = Number(values.clients);
const connectionCount = Number(values.connections);
if (values.key !== 'env' && values.key !== 'db' && values.key !== 'agent')
  throw new Error('--key is env, db or agent');
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
  /** CPU microseconds per request: broker, PostgreSQL (all its processes), wrk, everything else. */
  cpu: { broker: number; pg: number; wrk: number; other: number };
}

const TICK_US = 1e6 / 100; // USER_HZ is 100 on Linux

/** utime + stime of a process (or, with `children`, of its reaped children), in clock ticks. */
function procTicks(pid: number | string, children = false): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const at = children ? 13 : 11;
    return Number(fields[at]) + Number(fields[at + 1]);
  } catch {
    return 0;
  }
}

function cpuSnapshot(brokerPid: number) {
  let pgTicks = 0;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'postgres') pgTicks += procTicks(pid);
    } catch {}
  }
  const all = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal: busy = all but idle and iowait
  const busy = all.slice(0, 8).reduce((a, b) => a + b, 0) - all[3]! - all[4]!;
  // wrk has exited and been waited for when the phase ends: it counts in our children's time.
  return { broker: procTicks(brokerPid), pg: pgTicks, wrk: procTicks('self', true), busy };
}

function ms(text: string): number {
  const m = /([\d.]+)(us|ms|s)/.exec(text);
  if (!m) return Number.NaN;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
}

function wrk(url: string, headers: string[], brokerPid: number, script?: string): WrkResult {
  const args = [
    '-t2',
    `-c${clients}`,
    `-d${seconds}s`,
    '--latency',
    ...(script === undefined ? [] : ['-s', script]),
    ...headers.flatMap((h) => ['-H', h]),
    url,
  ];
  const before = cpuSnapshot(brokerPid);
  const out = execFileSync('wrk', args, { encoding: 'utf8' });
  const after = cpuSnapshot(brokerPid);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const p50 = ms(/\s50%\s+(\S+)/.exec(out)?.[1] ?? '');
  const p99 = ms(/\s99%\s+(\S+)/.exec(out)?.[1] ?? '');
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1];
  const socket = /Socket errors:[^\n]+/.exec(out)?.[0];
  const requests = Number(/(\d+) requests in/.exec(out)?.[1]);
  const perRequest = (ticks: number) => (ticks * TICK_US) / requests;
  const broker = perRequest(after.broker - before.broker);
  const pgCpu = perRequest(after.pg - before.pg);
  const wrkCpu = perRequest(after.wrk - before.wrk);
  return {
    rps,
    p50,
    p99,
    cpu: {
      broker,
      pg: pgCpu,
      wrk: wrkCpu,
      other: perRequest(after.busy - before.busy) - broker - pgCpu - wrkCpu,
    },
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
  const ids: string[] = [];
  for (let i = 0; i < connectionCount; i++) {
    const started = await admin('POST', '/v1/request-connection', {
      user_id: `bench-${i}`,
      provider_name: 'bench',
      return_url: 'http://localhost/done',
    });
    await admin('POST', '/v1/capture-credential', {
      state: started.state,
      credentials: { api_key: `sk_bench_${i}` },
    });
    ids.push(started.connection_id!);
  }
  const id = ids[0]!;
  let script: string | undefined;
  if (ids.length > 1) {
    script = join(dataDir, 'ids.lua');
    writeFileSync(
      script,
      `local ids = {${ids.map((i) => `"${i}"`).join(',')}}\nlocal n = math.random(#ids)\n` +
        'request = function()\n  n = n % #ids + 1\n  return wrk.format("GET", "/v1/token/" .. ids[n])\nend\n',
    );
  }
  let header: string;
  if (values.key === 'agent') {
    // The agents' hot path: an ES256 access token from POST /oauth/token, verified on every request,
    // with the agent re-read (deactivation takes effect at once) and its grant checked.
    const agent = await admin('POST', '/admin/v1/agents', {
      agent_id: 'bench-agent',
      allowed_scopes: [],
      allowed_providers: ['bench'],
      allowed_workspaces: ['*'],
    });
    const issued = await fetch(`${base}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: 'bench-agent',
        client_secret: agent.client_secret!,
      }),
    });
    header = `Authorization: Bearer ${((await issued.json()) as { access_token: string }).access_token}`;
  } else {
    const key =
      values.key === 'db' ? (await admin('POST', '/admin/v1/admin-keys', { name: 'bench' })).key! : apiKey;
    header = `X-API-Key: ${key}`;
  }
  const [headerName, headerValue] = [
    header.slice(0, header.indexOf(':')),
    header.slice(header.indexOf(':') + 2),
  ];
  const check = await fetch(`${base}/v1/token/${id}`, { headers: { [headerName]: headerValue } });
  if (!check.ok) throw new Error(`token fetch: ${check.status} ${await check.text()}`);

  // Warm-up, then the two measurements back to back on the same server.
  const pid = broker.pid!;
  wrk(`${base}/health`, [], pid);
  const noop = wrk(`${base}/health`, [], pid);
  const token = wrk(`${base}/v1/token/${id}`, [header], pid, script);
  const ratio = token.rps / noop.rps;
  const fmt = (r: WrkResult) =>
    `${r.rps.toFixed(0).padStart(7)} req/s   p50 ${r.p50.toFixed(2).padStart(6)} ms   p99 ${r.p99.toFixed(2).padStart(6)} ms   errors: ${r.errors}\n` +
    `                         CPU per request: broker ${r.cpu.broker.toFixed(0)} µs, postgres ${r.cpu.pg.toFixed(0)} µs, wrk ${r.cpu.wrk.toFixed(0)} µs, other (kernel, other processes) ${r.cpu.other.toFixed(0)} µs`;
  console.log(
    `machine: ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), node ${process.version}, database ${values.pg ? 'postgresql' : 'sqlite'}, key ${values.key}, ${ids.length} connection(s), wrk -t2 -c${clients} -d${seconds}s`,
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
