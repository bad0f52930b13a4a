/**
 * The multi-replica chaos scenario (issue "Refresh you can trust", point 5), shared by
 * `test/chaos-replicas.test.ts` (short, in CI) and `bench/chaos.ts` (minutes, hundreds of
 * connections): `replicas` `nexus serve` processes with their refresh workers on one PostgreSQL, a
 * real OpenID provider issuing short access tokens and rotating refresh tokens whose reuse revokes
 * the whole grant, an agent reading tokens through every live replica, one replica killed with
 * SIGKILL mid-run and a fresh one started. It measures; the caller asserts.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { baseEnv, type CliProcess, envKeys, freePort, killAllChildren, spawnCli } from './cli-helpers.ts';
import { createTestDatabase } from './harness.ts';
import { clients, REDIRECT, RETURN } from './oauth-scenario.ts';
import { type OidcFixture, startOidcProvider } from './oidc-fixture.ts';

export interface ChaosOptions {
  readonly connections: number;
  readonly ttlSeconds: number;
  readonly runMs: number;
  readonly killAtMs: number;
  readonly readers: number;
  readonly replicas?: number;
  /** Variables added to every broker's environment. */
  readonly env?: Record<string, string>;
  readonly log?: (line: string) => void;
}

export interface ChaosResult {
  /** Token reads answered 200, and every status seen with its count. */
  readonly served: number;
  readonly statuses: ReadonlyMap<number, number>;
  /** Reads that failed (non-200, an expired token handed out, a live replica not answering). */
  readonly failures: readonly string[];
  /** Reads sent to the killed replica as it died (the agent's load balancer would retry them). */
  readonly refusedByDeadReplica: number;
  /** Token read latencies in milliseconds, sorted. */
  readonly latenciesMs: readonly number[];
  /** Refresh grants the provider processed during the run, and refresh tokens presented again. */
  readonly refreshes: number;
  readonly reused: number;
  /** The lifetime bound: one refresh per half lifetime per connection, plus one. */
  readonly bound: number;
  readonly elapsedMs: number;
  /** Per connection at the end: its status, and whether the provider accepted its token (userinfo). */
  readonly final: readonly { id: string; status: unknown; userinfo: number }[];
}

interface Replica {
  readonly name: string;
  readonly url: string;
  readonly process: CliProcess;
  alive: boolean;
}

/** Connections whose row says a provider call is in flight (`refresh_started_at`). */
async function callsInFlight(databaseUrl: string): Promise<number> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ n: string }>(
      'SELECT count(*) AS n FROM connections WHERE refresh_started_at IS NOT NULL',
    );
    return Number(rows[0]?.n ?? 0);
  } finally {
    await client.end();
  }
}

/** Waits until a freshly started broker answers `/health` (or fails if it exits first). */
async function waitHealthy(url: string, process: CliProcess): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (process.exited) throw new Error(`nexus serve exited:\n${process.stderr()}`);
    try {
      const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1_000) });
      if (res.status === 200) return;
    } catch {}
    if (Date.now() > deadline) throw new Error(`nexus serve at ${url} did not become healthy`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function http(
  url: string,
  init: {
    method?: string;
    key?: string;
    bearer?: string;
    body?: unknown;
    form?: Record<string, string>;
  } = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const headers: Record<string, string> = {};
  if (init.key) headers['x-api-key'] = init.key;
  if (init.bearer) headers.authorization = `Bearer ${init.bearer}`;
  let body: string | undefined;
  if (init.form) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(init.form).toString();
  } else if (init.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(init.body);
  }
  const res = await fetch(url, {
    method: init.method ?? (body ? 'POST' : 'GET'),
    headers,
    body,
    redirect: 'manual',
    signal: AbortSignal.timeout(15_000),
  });
  const text = await res.text();
  let parsed: Record<string, unknown> = {};
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    parsed = { text, location: res.headers.get('location') };
  }
  return { status: res.status, body: parsed };
}

export async function runChaos(options: ChaosOptions): Promise<ChaosResult> {
  const log = options.log ?? (() => {});
  const replicaCount = options.replicas ?? 3;
  let idp: OidcFixture | undefined;
  const db = await createTestDatabase();
  try {
    idp = await startOidcProvider({
      clients,
      accessTokenTtlSeconds: options.ttlSeconds,
      rotateRefreshTokens: true,
    });
    const adminKey = `nxtest_${randomBytes(16).toString('hex')}`;
    const env = {
      ...baseEnv(),
      ...db.env,
      ...envKeys(),
      NEXUS_ENV: 'test',
      HOST: '127.0.0.1',
      // The provider knows this callback; every replica shares it, as behind one load balancer.
      BASE_URL: new URL(REDIRECT).origin,
      API_KEYS: `admin:${adminKey}`,
      ALLOWED_RETURN_DOMAINS: 'localhost',
      RATE_LIMIT_ENABLED: 'false',
      NEXUS_UPSTREAM_TIMEOUT_SECONDS: '3',
      NEXUS_REFRESH_LEASE_SECONDS: '5',
      NEXUS_WORKER_POLL_MS: '200',
      LOG_LEVEL: 'warn',
      ...options.env,
    };
    const replicas: Replica[] = [];
    async function startReplica(name: string): Promise<Replica> {
      const port = await freePort();
      const process = spawnCli(['serve'], { ...env, PORT: String(port) });
      const url = `http://127.0.0.1:${port}`;
      await waitHealthy(url, process);
      const replica = { name, url, process, alive: true };
      replicas.push(replica);
      return replica;
    }
    for (let i = 0; i < replicaCount; i++) await startReplica(`r${i}`);
    const live = () => replicas.filter((r) => r.alive);
    const admin = replicas[0]!.url;

    const provider = await http(`${admin}/providers`, {
      key: adminKey,
      body: {
        profile: {
          name: 'idp',
          client_id: 'client-post',
          client_secret: 'client-post-secret',
          issuer: idp.issuer,
          enable_discovery: true,
          // openid: the provider's userinfo endpoint then accepts the access tokens (the final check).
          scopes: ['openid', 'api:read'],
        },
      },
    });
    assert.equal(provider.status, 201, JSON.stringify(provider.body));
    const agent = await http(`${admin}/admin/v1/agents`, {
      key: adminKey,
      body: {
        agent_id: 'chaos-reader',
        allowed_scopes: [],
        allowed_providers: ['*'],
        allowed_workspaces: ['*'],
      },
    });
    assert.equal(agent.status, 201, JSON.stringify(agent.body));
    const login = await http(`${admin}/oauth/token`, {
      form: {
        grant_type: 'client_credentials',
        client_id: 'chaos-reader',
        client_secret: String(agent.body.client_secret),
      },
    });
    assert.equal(login.status, 200, JSON.stringify(login.body));
    const agentToken = String(login.body.access_token);

    // Consents started and completed on different replicas.
    const ids: string[] = [];
    for (let i = 0; i < options.connections; i++) {
      const started = await http(`${replicas[i % replicaCount]!.url}/v1/request-connection`, {
        key: adminKey,
        body: { user_id: `chaos-${i}`, provider_name: 'idp', return_url: RETURN },
      });
      assert.equal(started.status, 200, JSON.stringify(started.body));
      const callback = await idp.consent(String(started.body.authUrl));
      const done = await http(
        `${replicas[(i + 1) % replicaCount]!.url}${callback.pathname}${callback.search}`,
      );
      assert.equal(done.status, 302);
      assert.match(String(done.body.location), /status=success/);
      ids.push(String(started.body.connection_id));
    }
    log(`${options.connections} connections made through ${replicaCount} replicas`);
    const base = { ...idp.counts };
    const startedAt = Date.now();

    // The agent: readers on every live replica, each checking that no token handed out has expired.
    const statuses = new Map<number, number>();
    const failures: string[] = [];
    const latenciesMs: number[] = [];
    let served = 0;
    let refusedByDeadReplica = 0;
    let stop = false;
    const readers = Array.from({ length: options.readers }, async (_, n) => {
      for (let k = n; !stop; k++) {
        const targets = live();
        const replica = targets[k % targets.length]!;
        const id = ids[k % ids.length]!;
        try {
          const sent = performance.now();
          const res = await http(`${replica.url}/v1/token/${id}`, { bearer: agentToken });
          latenciesMs.push(performance.now() - sent);
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          if (res.status !== 200) {
            failures.push(`${replica.name} ${id}: ${res.status} ${JSON.stringify(res.body)}`);
            continue;
          }
          served++;
          const expiresAt = Date.parse(String(res.body.expires_at));
          if (!(expiresAt > Date.now() - 1_000))
            failures.push(`${replica.name} ${id}: handed out a token that expired at ${res.body.expires_at}`);
        } catch (error) {
          // Only the replica being killed may fail to answer at all.
          if (!replica.alive) refusedByDeadReplica++;
          else failures.push(`${replica.name} ${id}: ${(error as Error).message}`);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    });

    await new Promise((r) => setTimeout(r, options.killAtMs));
    // The one loss no broker can prevent, a process killed between the provider's answer and
    // storing it, is refresh-faults.test.ts's subject; here the kill waits for an instant with no
    // provider call in flight (at most 10 s), so that what is asserted is exact.
    const deadline = Date.now() + 10_000;
    while ((await callsInFlight(db.env.DATABASE_URL!)) > 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 5));
    const victim = replicas[1 % replicaCount]!;
    victim.alive = false;
    victim.process.kill('SIGKILL');
    await victim.process.wait(5_000).catch(() => {});
    log(`${victim.name} killed with SIGKILL at ${Date.now() - startedAt} ms`);
    await startReplica(`r${replicaCount}`);
    log(`r${replicaCount} started at ${Date.now() - startedAt} ms`);
    await new Promise((r) => setTimeout(r, Math.max(0, options.runMs - (Date.now() - startedAt))));
    stop = true;
    await Promise.all(readers);
    const elapsedMs = Date.now() - startedAt;
    const refreshes = idp.counts.refresh_token - base.refresh_token;
    const reused = idp.counts.refresh_reused - base.refresh_reused;

    // Every connection's state, and whether the provider itself accepts the token it serves.
    const final: { id: string; status: unknown; userinfo: number }[] = [];
    for (const id of ids) {
      const check = await http(`${live()[0]!.url}/v1/check-connection/${id}`, { key: adminKey });
      const res = await http(`${live()[0]!.url}/v1/token/${id}`, { bearer: agentToken });
      let userinfo = res.status;
      if (res.status === 200) {
        const answer = await fetch(idp.endpoints.userinfo, {
          headers: { authorization: `Bearer ${res.body.access_token}` },
        });
        await answer.body?.cancel();
        userinfo = answer.status;
      }
      final.push({ id, status: check.body.status, userinfo });
    }
    latenciesMs.sort((a, b) => a - b);
    return {
      served,
      statuses,
      failures,
      refusedByDeadReplica,
      latenciesMs,
      refreshes,
      reused,
      bound: options.connections * (Math.ceil(elapsedMs / ((options.ttlSeconds * 1000) / 2)) + 1),
      elapsedMs,
      final,
    };
  } finally {
    killAllChildren();
    await idp?.close();
    await db.drop();
  }
}
