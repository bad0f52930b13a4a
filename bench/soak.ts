/**
 * Soak: a steady mixed load on two `nexus serve` replicas (each with its background worker) sharing
 * one PostgreSQL, for a long time, to see whether anything drifts. Usage:
 *
 *   npx node bench/soak.ts [--duration 1h] [--interval 30s] [--rate 200] [--connections 50]
 *     [--consent-every 5s] [--access-ttl 30] [--refresh-margin 30] [--refresh-jitter 5]
 *     [--replicas 2] [--max-in-flight 1024] [--report soak.json]
 *
 * PostgreSQL comes from NEXUS_TEST_DATABASE_URL or `scripts/services.sh ensure-postgres`; the bench
 * makes its own schema and drops it. The upstream identity provider is the project's real OpenID
 * provider (apps/broker/test/oidc-fixture.ts: refresh tokens rotated, a reused one revokes the
 * grant) with `--access-ttl` second access tokens, so the workers refresh all the time. Its token
 * endpoint is reached through a recorder (lib/token-tap.ts) that sees every refresh token presented
 * and every access token issued.
 *
 * The load is open-loop (lib/soak-load.ts) at `--rate` requests/s: token reads 50 %, proxied calls
 * 30 % (to a local no-op upstream that checks the bearer token it receives), user-secret reads 19 %,
 * explicit refreshes 1 %; and one whole consent every `--consent-every` (request-connection, the
 * provider's login and consent pages, /auth/callback, a first token read), cycling through the
 * `--connections` workspaces, so each new connection supersedes its workspace's previous one.
 *
 * Per `--interval`: calls and outcomes per kind (5xx apart from other unexpected answers), p50/p99,
 * RSS, heap and CPU per replica, CPU of PostgreSQL, of this driver and of everything else, the
 * refreshes the provider and each worker made. At the end: RSS and heap trends (first vs last
 * quarter, least-squares slope over the second half), refreshes at the provider against what the
 * connections' lifetimes allow (lib/refresh-budget.ts), refresh-token reuse, every connection's
 * status. A markdown table is printed; `--report` writes everything as JSON. Ctrl-C (or SIGTERM) ends
 * the load early and still reports. Exits 1 on any 5xx or unexpected answer, an expired or unknown token
 * handed out, a refresh token presented twice or an `invalid_grant`, a current connection not
 * `active`, a connection refreshed more often than its lifetime allows, a failed background
 * refresh, or a replica that did not exit cleanly.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startOidcProvider } from '../apps/broker/test/oidc-fixture.ts';
import { createLogTally } from './lib/broker-logs.ts';
import {
  createBenchSchema,
  freePort,
  type NexusProcess,
  postgresUrl,
  runNexus,
  spawnNexus,
  waitUntilUp,
} from './lib/services.ts';
import { consent, type SoakWorld } from './lib/soak-calls.ts';
import { MIX, startOpenLoop } from './lib/soak-load.ts';
import { soakOptions } from './lib/soak-options.ts';
import {
  type AuditChain,
  type IntervalRow,
  markdownSummary,
  markdownTable,
  type Summary,
} from './lib/soak-report.ts';
import { createSampler } from './lib/soak-sampler.ts';
import { createKindRecorder, FAILING, KINDS } from './lib/soak-series.ts';
import { auditCounts, connectionStatuses, summarize } from './lib/soak-summary.ts';
import { startTokenTap } from './lib/token-tap.ts';

const { cfg, report } = soakOptions(process.argv.slice(2));
const RSS_SAMPLE_MS = 5_000;
const TIMEOUT_MS = 30_000;
const PROVIDER = 'idp';

// Everything started is pushed here and stopped in reverse order, whatever happens.
const cleanup: Array<() => Promise<unknown>> = [];
async function stopAll(): Promise<void> {
  for (let step = cleanup.pop(); step !== undefined; step = cleanup.pop())
    await step().catch((e) => console.error('cleanup:', e));
}
/** A start-up step: when it fails, what was already started is stopped before the error ends the run. */
async function starting<T>(step: Promise<T>): Promise<T> {
  try {
    return await step;
  } catch (error) {
    await stopAll();
    throw error;
  }
}
let interrupted = false;
// The replicas are in their own process group (see below): a signal ends the load, and the bench
// stops them itself.
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.once(signal, () => {
    console.error(`${signal}: ending the load now, then reporting`);
    interrupted = true;
  });

const ports = await Promise.all(Array.from({ length: cfg.replicas }, () => freePort()));
const bases = ports.map((p) => `http://127.0.0.1:${p}`);
const idp = await starting(
  startOidcProvider({
    clients: [
      {
        client_id: 'soak',
        client_secret: 'soak-secret',
        token_endpoint_auth_method: 'client_secret_basic',
        // Each replica has its own BASE_URL, so its own redirect URI.
        redirect_uris: bases.map((b) => `${b}/auth/callback`),
      },
    ],
    accessTokenTtlSeconds: cfg.access_ttl_s,
    rotateRefreshTokens: true,
  }),
);
cleanup.push(() => idp.close());
const tap = await starting(startTokenTap(idp.endpoints.token));
cleanup.push(() => tap.close());

// The no-op upstream: answers every call, saying what it thought of the bearer token it got.
const upstream = createServer((req, res) => {
  req.resume();
  const bearer = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1];
  const token = bearer === undefined ? 'none' : tap.tokenState(bearer);
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ ok: true, items: [1, 2, 3], token }));
});
await starting(new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r)));
cleanup.push(() => new Promise((r) => upstream.close(r)));

const schema = await starting(createBenchSchema(postgresUrl()));
cleanup.push(() => schema.drop());
const dataDir = mkdtempSync(join(tmpdir(), 'nexus-bench-soak-'));
cleanup.push(async () => rmSync(dataDir, { recursive: true, force: true }));

const adminKey = `soak-${randomBytes(16).toString('hex')}`;
const shared = {
  PATH: process.env.PATH ?? '',
  NEXUS_ENV: 'test',
  HOST: '127.0.0.1',
  ENCRYPTION_KEY: randomBytes(32).toString('base64'),
  STATE_KEY: randomBytes(32).toString('base64'),
  USER_SECRETS_KEY: randomBytes(32).toString('base64'),
  API_KEYS: `soak:${adminKey}`,
  ALLOWED_RETURN_DOMAINS: 'localhost',
  // The identity provider, the recorder and the upstream are all on loopback.
  NEXUS_EGRESS_ALLOWED_CIDRS: '127.0.0.1/32',
  LOG_LEVEL: 'warn',
  RATE_LIMIT_ENABLED: 'false',
  DATABASE_URL: schema.databaseUrl,
  DATABASE_POOL_MAX: '8',
  NEXUS_REFRESH_MARGIN_SECONDS: String(cfg.refresh_margin_s),
  NEXUS_REFRESH_JITTER_SECONDS: String(cfg.refresh_jitter_s),
  NODE_COMPILE_CACHE: join(dataDir, 'compile-cache'),
};

const logs = createLogTally(cfg.replicas);
const replicas: NexusProcess[] = [];
cleanup.push(async () => {
  for (const r of replicas) await r.stop();
});
for (const [i, port] of ports.entries()) {
  // One after the other: the first applies the migrations.
  const env = { ...shared, PORT: String(port), BASE_URL: bases[i]!, NEXUS_DATA_DIR: join(dataDir, `r${i}`) };
  // In their own process group: a Ctrl-C ends the load (and the report is still made), not them.
  replicas.push(spawnNexus(['serve'], env, { onLine: logs.onLine(i), detached: true }));
  await starting(waitUntilUp(`${bases[i]}/health`));
}

async function admin(path: string, body: unknown): Promise<void> {
  const res = await fetch(`${bases[0]}${path}`, {
    method: 'POST',
    headers: { 'x-api-key': adminKey, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`POST ${path}: ${res.status} ${await res.text()}`);
}

const world: SoakWorld = {
  bases,
  adminKey,
  provider: PROVIDER,
  returnUrl: 'http://localhost/connected',
  idp,
  tap,
  rec: createKindRecorder(Date.now()),
  timeoutMs: TIMEOUT_MS,
  current: new Map(),
  superseded: new Map(),
  lifetimes: new Map(),
  chainOf: new Map(),
  explicitTokens: new Set(),
  secrets: new Map(),
  explicitRefreshes: 0,
};
const workspaces = Array.from({ length: cfg.connections }, (_, i) => `soak-${String(i).padStart(4, '0')}`);
const rows: IntervalRow[] = [];
/** [seconds, MB] per replica: RSS every few seconds, heap used at each interval's end. */
const memory: { rss: Array<Array<[number, number]>>; heap: Array<Array<[number, number]>> } = {
  rss: [],
  heap: [],
};
let summary: Summary | undefined;

try {
  await admin('/providers', {
    profile: {
      name: PROVIDER,
      auth_header: 'client_secret_basic',
      client_id: 'soak',
      client_secret: 'soak-secret',
      // The callback's RFC 9207 `iss` is checked against the issuer; the token endpoint is reached
      // through the recorder.
      issuer: idp.issuer,
      enable_discovery: false,
      auth_url: idp.endpoints.authorization,
      token_url: tap.url,
      scopes: ['api:read'],
      api_base_url: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`,
      params: { revocation_endpoint: idp.endpoints.revocation },
    },
  });
  // Set-up: one connection and one secret per workspace, four at a time.
  for (let i = 0; i < workspaces.length; i += 4) {
    await Promise.all(
      workspaces.slice(i, i + 4).map(async (ws) => {
        await consent(world, ws);
        const value = randomBytes(18).toString('base64url');
        await admin(`/api/v2/secrets?user_id=${ws}`, { name: 'api-key', value });
        world.secrets.set(`${ws}/api-key`, value);
      }),
    );
  }
  const setup = world.rec.close();
  if (world.current.size !== workspaces.length)
    throw new Error(
      `set-up: ${world.current.size} of ${workspaces.length} consents succeeded: ${JSON.stringify(world.rec.failures())}`,
    );
  console.log(
    `set-up: ${workspaces.length} connections (consent p50 ${setup.consent.p50_ms} ms), ${cfg.replicas} replicas on PostgreSQL schema ${schema.name}; ` +
      `load ${cfg.rate} req/s + a consent every ${cfg.consent_every_s} s for ${cfg.duration_s} s, access tokens ${cfg.access_ttl_s} s`,
  );
  summary = await run();
} finally {
  const reportText = summary && finish(summary);
  await stopAll();
  if (reportText !== undefined) console.log(reportText);
  process.exitCode = summary?.verdict.pass === true ? 0 : 1;
}

/** The load, its intervals, and the end-of-run checks. */
async function run(): Promise<Summary> {
  const startedAt = Date.now();
  const end = startedAt + cfg.duration_s * 1000;
  // The recorder counts from the start of the load.
  world.rec = createKindRecorder(startedAt);
  const sampler = await createSampler({
    replicas: replicas.map((r, i) => ({ pid: r.pid, base: bases[i]! })),
    adminKey,
    tap,
    logs,
    startedAt,
  });
  memory.rss = sampler.rss;
  memory.heap = sampler.heap;
  sampler.sampleRss();
  const rssTimer = setInterval(sampler.sampleRss, RSS_SAMPLE_MS);
  const load = startOpenLoop({
    world,
    workspaces,
    rate: cfg.rate,
    consentEverySeconds: cfg.consent_every_s,
    maxInFlight: cfg.max_in_flight,
  });
  // Should anything below fail: no more calls, no more samples (stopping twice is harmless).
  cleanup.push(async () => {
    clearInterval(rssTimer);
    sampler.stop();
    await load.stop(0);
  });
  const closeInterval = async () => {
    const row = await sampler.close(world.rec.close());
    rows.push(row);
    tap.prune(600_000);
    const k = row.kinds;
    const errors = KINDS.reduce((a, kind) => a + FAILING.reduce((b, f) => b + k[kind][f], 0), 0);
    const rate = KINDS.reduce((a, kind) => a + k[kind].requests, 0) / row.seconds;
    const rs = row.replicas;
    console.log(
      `${String(row.t_s).padStart(6)} s  ${Math.round(rate)} req/s  errors ${errors}  token p99 ${k.token.p99_ms} ms  ` +
        `RSS ${rs.map((r) => r.rss_mb).join('/')} MB  CPU ${rs.map((r) => r.cpu_pct).join('/')} % ` +
        `(pg ${row.postgres_cpu_pct} %, driver ${row.driver_cpu_pct} %, other ${row.other_cpu_pct} %)  ` +
        `loop lag max ${rs.map((r) => r.loop_lag_max_ms).join('/')} ms (driver ${row.driver_loop_lag_max_ms})  ` +
        `IdP refreshes ${row.provider.refresh_ok}${row.provider.invalid_grant ? `  invalid_grant ${row.provider.invalid_grant}` : ''}`,
    );
  };

  let nextClose = startedAt + cfg.interval_s * 1000;
  for (;;) {
    // In steps of at most a second, to notice SIGINT or a replica that died.
    await new Promise((r) =>
      setTimeout(r, Math.max(0, Math.min(nextClose, end, Date.now() + 1000) - Date.now())),
    );
    if (replicas.some((r) => r.exit !== undefined)) {
      console.error(
        `a replica exited during the run: ${replicas.map((r) => r.exit ?? 'running').join(', ')}`,
      );
      break;
    }
    if (interrupted || Date.now() >= end) break;
    if (Date.now() >= nextClose) {
      await closeInterval();
      nextClose += cfg.interval_s * 1000;
    }
  }
  // The calls still in flight finish into the last interval.
  await load.stop(TIMEOUT_MS + 5_000);
  clearInterval(rssTimer);
  await closeInterval();
  sampler.stop();
  const stoppedAt = Date.now();

  const live = bases.find((_, i) => replicas[i]!.exit === undefined) ?? bases[0]!;
  const statusOf = await connectionStatuses(live, adminKey);
  const exits: string[] = [];
  for (const r of replicas) exits.push(await r.stop());
  // The hash chain both replicas appended to, walked by the CLI.
  const verify = await runNexus(['audit', 'verify', '--json'], {
    ...shared,
    NEXUS_DATA_DIR: join(dataDir, 'r0'),
  });
  let auditChain: AuditChain;
  try {
    auditChain = JSON.parse(verify.stdout.trim().split('\n').at(-1) ?? '') as AuditChain;
  } catch {
    auditChain = {
      ok: false,
      reason: `exit ${verify.code}: ${verify.stdout.slice(0, 300)} ${verify.stderr.slice(-600)}`,
    };
  }
  return summarize({
    config: {
      ...cfg,
      mix: MIX,
      machine: `${cpus().length} × ${cpus()[0]?.model ?? '?'}`,
      node: process.version,
    },
    accessTtlSeconds: cfg.access_ttl_s,
    world,
    rows,
    rss: sampler.rss,
    heap: sampler.heap,
    statusOf,
    // After the replicas stopped, so every audit batch has been written.
    audit: await auditCounts(schema.databaseUrl),
    auditChain,
    exits,
    logs,
    idpCounts: idp.counts,
    loadSeconds: (stoppedAt - startedAt) / 1000,
    end: stoppedAt,
    interrupted,
  });
}

/** Writes --report (JSON) and returns the markdown to print. */
function finish(s: Summary): string {
  if (report !== undefined)
    writeFileSync(report, `${JSON.stringify({ summary: s, series: rows, memory }, null, 2)}\n`);
  return `\n${markdownTable(rows)}\n\n${markdownSummary(s)}${report ? `\n\nreport: ${report}` : ''}`;
}
