/**
 * GET /v1/token/{id} (authenticated, audited read) against GET /health (no-op) on the same server
 * and against a Fastify hello on the same Node (lib/hello.ts), all in one run, with wrk (Debian
 * package `wrk`; `scripts/services.sh ensure-wrk`), 50 connections. Usage:
 *
 *   node bench/token-fetch.ts [--pg] [--seconds 15] [--key env|db|agent] [--clients 50] [--connections 1] [--filler 0] [--smoke]
 *
 * --profile runs only the token phase (`--profile-route health`: the /health phase), under `node --cpu-prof`, and prints where the broker's CPU
 * went per request (lib/cpu-profile.ts); the .cpuprofile is kept for a flame graph.
 * --workers N starts the broker as `nexus serve --workers N` (PostgreSQL only): N processes.
 * --smoke runs each phase for 2 s and checks only that every answer was a 200 (CI keeps the bench
 * working with it; the figures come from full runs).
 *
 * --pg uses PostgreSQL (scripts/services.sh ensure-postgres; a fresh schema is created and dropped).
 * --key picks the credential: `env` (default) an API_KEY from the environment, `db` an `nxa_` key
 * made with the admin-keys API (looked up in the database on every request), `agent` an agent's ES256
 * access token from POST /oauth/token (verified, agent re-read and grant checked on every request). --clients sets wrk's
 * open connections (the targets are for 50). --connections N spreads the token requests over N
 * connections (a wrk Lua script cycles through them), so concurrent reads are not all for one row.
 * --filler N (PostgreSQL) adds N more rows to the connections table, copies of the first connection
 * with new ids inserted directly (never read: a copied credential is bound to its original id), so
 * that the reads spread over --connections run against a table and indexes of N + connections rows
 * (a million connections without creating each through the API).
 * Each phase also reports where the machine's CPU went, from /proc, in CPU microseconds per
 * request: the broker, PostgreSQL (all its processes), wrk, and the rest (kernel work not charged
 * to a process, and any other process: a large figure there means the run was disturbed).
 * The connection is a static-credential one (captured API key): the read path is the same as for
 * OAuth (one indexed query, decrypt, group-committed audit event) without an identity provider.
 * Targets (issue "Token fetch at 19k req/s"): token fetch >= 19,000 req/s and >= 0.3x the Fastify
 * hello, p99 <= 5 ms, on PostgreSQL; /health >= 0.7x the hello.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, openSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { cpuBreakdown } from './lib/cpu-profile.ts';
import { freePort } from './lib/services.ts';
import { formatWrk, startHello, type WrkResult, wrk } from './lib/wrk.ts';

const { values } = parseArgs({
  options: {
    pg: { type: 'boolean' },
    seconds: { type: 'string', default: '15' },
    key: { type: 'string', default: 'env' },
    clients: { type: 'string', default: '50' },
    connections: { type: 'string', default: '1' },
    filler: { type: 'string', default: '0' },
    smoke: { type: 'boolean' },
    profile: { type: 'boolean' },
    'profile-route': { type: 'string', default: 'token' },
    workers: { type: 'string' },
  },
});
const clients = Number(values.clients);
const connectionCount = Number(values.connections);
const fillerCount = Number(values.filler);
if (fillerCount > 0 && !values.pg) throw new Error('--filler needs --pg');
if (values.key !== 'env' && values.key !== 'db' && values.key !== 'agent')
  throw new Error('--key is env, db or agent');
const seconds = values.smoke ? 2 : Number(values.seconds);
const root = join(import.meta.dirname, '..');
const bin = join(root, 'apps', 'broker', 'bin', 'nexus.js');

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
  // NEXUS_FROM_SOURCE=1 measures the TypeScript instead of the bundle that `npm ci` compiles.
  ...(process.env.NEXUS_FROM_SOURCE === undefined
    ? {}
    : { NEXUS_FROM_SOURCE: process.env.NEXUS_FROM_SOURCE }),
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
const profileDir = join(tmpdir(), `nexus-token-fetch-profile-${process.pid}`);
if (values.profile) {
  nodeFlags.push('--cpu-prof', `--cpu-prof-dir=${profileDir}`);
  // From the source: in the bundle every package is one file, and the categories go by file.
  env.NEXUS_FROM_SOURCE = '1';
}
/** SIGINT, so that a profiled broker writes its profile; idempotent. */
async function stopBroker() {
  if (broker.exitCode !== null || broker.signalCode !== null) return;
  const exited = new Promise((r) => broker.once('exit', r));
  broker.kill('SIGINT');
  await exited;
}
if (values.workers !== undefined && !values.pg) throw new Error('--workers needs --pg');
const serveArgs = values.workers === undefined ? ['serve'] : ['serve', '--workers', values.workers];
const broker = spawn(process.execPath, [...nodeFlags, bin, ...serveArgs], {
  env,
  // BENCH_STDOUT=file keeps the broker's standard output (its log, or BENCH_NODE_FLAGS=--trace-gc).
  stdio: ['ignore', process.env.BENCH_STDOUT ? openSync(process.env.BENCH_STDOUT, 'w') : 'ignore', 'pipe'],
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
  if (fillerCount > 0) {
    const client = new pg.Client({ connectionString: pgUrl });
    await client.connect();
    try {
      const { rows } = await client.query<{ column_name: string }>(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'connections' AND column_name <> 'id'",
        [schema],
      );
      const columns = rows.map((r) => `"${r.column_name}"`).join(', ');
      const started = Date.now();
      await client.query(
        `INSERT INTO ${schema}.connections (id, ${columns}) SELECT gen_random_uuid()::text, ${columns} FROM ${schema}.connections CROSS JOIN generate_series(1, $1::int) WHERE id = $2`,
        [fillerCount, id],
      );
      await client.query(`ANALYZE ${schema}.connections`);
      console.log(`filler: ${fillerCount} more connection rows in ${Date.now() - started} ms`);
    } finally {
      await client.end();
    }
  }
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

  // Warm-up, then the three measurements back to back: the hello, the no-op route, the token route.
  const pid = broker.pid!;
  const phase = (url: string, serverPid: number, headers: string[] = [], lua?: string) =>
    wrk({ url, serverPid, clients, seconds, headers, script: lua });
  if (values.profile) {
    const onHealth = values['profile-route'] === 'health';
    const profiled = () =>
      onHealth ? phase(`${base}/health`, pid) : phase(`${base}/v1/token/${id}`, pid, [header], script);
    profiled();
    const token = profiled();
    console.log(`${onHealth ? 'GET /health            ' : 'GET /v1/token/{id}     '} ${formatWrk(token)}`);
    await stopBroker();
    const file = join(profileDir, readdirSync(profileDir)[0]!);
    console.log(`where the broker's CPU went, per request (${file}):`);
    for (const { category, share } of cpuBreakdown(file))
      console.log(
        `  ${(share * token.cpu.server).toFixed(1).padStart(6)} µs  ${(share * 100).toFixed(1).padStart(5)} %  ${category}`,
      );
    if (token.errors !== 'none') process.exitCode = 1;
  } else {
    const hello = await startHello();
    let ceiling: WrkResult;
    try {
      phase(hello.url, hello.pid);
      ceiling = phase(hello.url, hello.pid);
    } finally {
      await hello.stop();
    }
    phase(`${base}/health`, pid);
    const noop = phase(`${base}/health`, pid);
    const token = phase(`${base}/v1/token/${id}`, pid, [header], script);
    console.log(
      `machine: ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), node ${process.version}, database ${values.pg ? 'postgresql' : 'sqlite'}, key ${values.key}, ${ids.length} connection(s), ${values.workers ?? 1} broker process(es), wrk -t2 -c${clients} -d${seconds}s`,
    );
    console.log(`Fastify hello (ceiling) ${formatWrk(ceiling)}`);
    console.log(`GET /health (no-op)     ${formatWrk(noop)}`);
    console.log(`GET /v1/token/{id}      ${formatWrk(token)}`);
    const verdict = (met: boolean) => (met ? 'MET' : 'NOT MET');
    const healthRatio = noop.rps / ceiling.rps;
    const tokenRatio = token.rps / ceiling.rps;
    console.log(
      `/health / hello: ${healthRatio.toFixed(2)} (target >= 0.70: ${verdict(healthRatio >= 0.7)}); ` +
        `token / hello: ${tokenRatio.toFixed(2)} (target >= 0.30: ${verdict(tokenRatio >= 0.3)}); ` +
        `token ${token.rps.toFixed(0)} req/s (target >= 19000: ${verdict(token.rps >= 19_000)}); ` +
        `token p99 ${token.p99.toFixed(2)} ms (target <= 5 ms: ${verdict(token.p99 <= 5)})`,
    );
    const failed = [ceiling, noop, token].filter((r) => r.errors !== 'none' || !(r.rps > 0));
    if (failed.length > 0) {
      console.error('some answers were not 200, or a phase made no requests: the figures mean nothing');
      process.exitCode = 1;
    }
  }
} finally {
  await stopBroker();
  rmSync(dataDir, { recursive: true, force: true });
  if (schema !== undefined && pgUrl !== undefined) {
    const client = new pg.Client({ connectionString: pgUrl });
    await client.connect();
    await client.query(`DROP SCHEMA ${schema} CASCADE`);
    await client.end();
  }
}
