/**
 * Background refresh at volume: N OAuth connections whose refreshes fall due inside a window,
 * refreshed by `nexus worker` processes against a local token endpoint that answers at once.
 * Usage:
 *
 *   node bench/refresh.ts [--pg] [--connections 10000] [--window 60] [--replicas 3]
 *
 * Reports the refresh rate, the lag between each connection's due time and its refresh (p50, p99,
 * max), CPU per refresh (workers, and PostgreSQL), and checks that every connection was refreshed
 * exactly once (token-endpoint calls = connections, one `connection.refreshed` audit event each).
 * `--window 0` makes everything due at once: a throughput test.
 * Target (DEVELOPERS.md): 10k connections due within 60 s on 3 replicas, each refreshed once,
 * p99 lag <= 5 s.
 */

import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { loadConfig } from '../apps/broker/src/config/load.ts';
import { buildContainer } from '../apps/broker/src/container.ts';
import { sealText } from '../apps/broker/src/crypto/envelope.ts';
import { migrate } from '../apps/broker/src/db/migrate.ts';
import { credentialsBinding } from '../apps/broker/src/modules/connections/connections.service.ts';
import { postgresTicks, procTicks, TICK_MS } from './lib/proc.ts';

const { values } = parseArgs({
  options: {
    pg: { type: 'boolean' },
    connections: { type: 'string', default: '10000' },
    window: { type: 'string', default: '60' },
    replicas: { type: 'string' },
  },
});
const N = Number(values.connections);
const windowMs = Number(values.window) * 1000;
const replicas = Number(values.replicas ?? (values.pg ? 3 : 1));
if (!values.pg && replicas > 1) throw new Error('SQLite is single-process: use --pg for several replicas');
const root = join(import.meta.dirname, '..');
const bin = join(root, 'apps', 'broker', 'bin', 'nexus.js');
// A token endpoint that answers every refresh at once, rotating the refresh token.
let tokenCalls = 0;
const tokenServer = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    tokenCalls++;
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(
      JSON.stringify({
        access_token: randomBytes(16).toString('hex'),
        token_type: 'bearer',
        expires_in: 3600,
        refresh_token: randomBytes(16).toString('hex'),
      }),
    );
  });
});
await new Promise<void>((r) => tokenServer.listen(0, '127.0.0.1', r));
const tokenBase = `http://127.0.0.1:${(tokenServer.address() as AddressInfo).port}`;

const dataDir = mkdtempSync(join(tmpdir(), 'nexus-bench-refresh-'));
const env: Record<string, string> = {
  PATH: process.env.PATH ?? '',
  NEXUS_ENV: 'development',
  NEXUS_DATA_DIR: dataDir,
  ENCRYPTION_KEY: randomBytes(32).toString('base64'),
  STATE_KEY: randomBytes(32).toString('base64'),
  API_KEY: `bench-${randomBytes(12).toString('hex')}`,
  LOG_LEVEL: 'warn',
};
let schema: string | undefined;
// scripts/services.sh run-with-postgres sets NEXUS_TEST_DATABASE_URL.
const pgUrl = process.env.NEXUS_TEST_DATABASE_URL ?? '';
if (values.pg && pgUrl === '')
  throw new Error('run under: bash scripts/services.sh run-with-postgres node bench/refresh.ts --pg');
if (values.pg) {
  schema = `bench_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: pgUrl });
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  await admin.end();
  env.DATABASE_URL = `${pgUrl}?options=-c%20search_path%3D${schema}`;
}

const container = buildContainer(loadConfig(env));
await migrate(container.db);
const { id: providerId } = await container.providers.create(
  { actor: 'bench' },
  {
    name: 'bench',
    auth_type: 'oauth2',
    auth_header: 'client_secret_post',
    client_id: 'bench',
    client_secret: 'bench-secret',
    auth_url: `${tokenBase}/authorize`,
    token_url: `${tokenBase}/token`,
    enable_discovery: false,
    scopes: [],
    params: {},
  },
);

// Seed N active connections, due evenly across the window starting a few seconds from now.
const startAt = Date.now() + 8_000;
const due = new Map<string, number>();
const rows = [];
for (let i = 0; i < N; i++) {
  const id = randomUUID();
  const at = startAt + (windowMs === 0 ? 0 : Math.floor((i * windowMs) / N));
  due.set(id, at);
  const creds = { kind: 'oauth2', access_token: `at-${i}`, token_type: 'bearer', refresh_token: `rt-${i}` };
  rows.push({
    id,
    workspace_id: `ws-${i}`,
    provider_id: providerId,
    status: 'active',
    scopes: '[]',
    credentials: sealText(container.keys.ring, JSON.stringify(creds), credentialsBinding(id)),
    access_expires_at: at + 300_000,
    pending_expires_at: null,
    refresh_lease_until: null,
    refresh_lease_owner: null,
    last_refreshed_at: null,
    last_error: null,
    version: 1,
    created_at: Date.now(),
    updated_at: Date.now(),
    revoked_at: null,
    refresh_due_at: at,
    refresh_failures: 0,
    failing_since: null,
  });
}
for (let i = 0; i < rows.length; i += 500)
  await container.db.kysely
    .insertInto('connections')
    .values(rows.slice(i, i + 500))
    .execute();
console.log(`seeded ${N} connections due over ${windowMs / 1000} s; starting ${replicas} worker(s)`);

const pgBefore = values.pg ? postgresTicks() : 0;
const workers = Array.from({ length: replicas }, () =>
  spawn(process.execPath, [bin, 'worker'], { cwd: root, env, stdio: ['ignore', 'inherit', 'inherit'] }),
);

const k = container.db.kysely;
const deadline = startAt + windowMs + 180_000;
let done = 0;
while (Date.now() < deadline) {
  await new Promise((r) => setTimeout(r, 1000));
  const row = await k
    .selectFrom('connections')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('last_refreshed_at', 'is not', null)
    .executeTakeFirst();
  done = Number(row?.n ?? 0);
  if (done >= N) break;
}
const workerTicks = workers.map((w) => procTicks(w.pid!));
const pgTicks = values.pg ? postgresTicks() - pgBefore : 0;
for (const w of workers) w.kill('SIGTERM');
await Promise.all(workers.map((w) => new Promise((r) => w.once('exit', r))));

const refreshed = await k.selectFrom('connections').select(['id', 'last_refreshed_at']).execute();
const lags = refreshed
  .filter((r) => r.last_refreshed_at !== null)
  .map((r) => r.last_refreshed_at! - due.get(r.id)!)
  .sort((a, b) => a - b);
const audits = await k
  .selectFrom('audit_events')
  .select((eb) => ['resource_id', eb.fn.countAll<number>().as('n')])
  .where('action', '=', 'connection.refreshed')
  .groupBy('resource_id')
  .execute();
const twice = audits.filter((a) => Number(a.n) > 1).length;
const times = refreshed.map((r) => r.last_refreshed_at).filter((t): t is number => t !== null);
const span = (Math.max(...times) - Math.min(...times)) / 1000;
const pct = (p: number) => lags[Math.min(lags.length - 1, Math.floor((p / 100) * lags.length))] ?? NaN;
const cpuMs = workerTicks.reduce((a, b) => a + b, 0) * TICK_MS;

console.log(
  JSON.stringify(
    {
      database: values.pg ? 'postgres' : 'sqlite',
      replicas,
      connections: N,
      window_s: windowMs / 1000,
      refreshed: done,
      token_endpoint_calls: tokenCalls,
      refreshed_more_than_once: twice,
      refreshes_per_s: Math.round(done / Math.max(span, 0.001)),
      lag_ms: { p50: pct(50), p99: pct(99), max: lags.at(-1) },
      cpu_ms_per_refresh: {
        workers: +(cpuMs / Math.max(done, 1)).toFixed(2),
        per_worker_s: workerTicks.map((t) => (t * TICK_MS) / 1000),
        postgres: values.pg ? +((pgTicks * TICK_MS) / Math.max(done, 1)).toFixed(2) : undefined,
      },
    },
    null,
    2,
  ),
);

await container.close();
tokenServer.close();
if (schema) {
  const admin = new pg.Client({ connectionString: pgUrl });
  await admin.connect();
  await admin.query(`DROP SCHEMA ${schema} CASCADE`);
  await admin.end();
}
rmSync(dataDir, { recursive: true, force: true });
if (done < N || twice > 0 || tokenCalls !== N) process.exitCode = 1;
