/**
 * `nexus serve --workers N` (issue #19, all cores): N broker processes on one port, started,
 * restarted and stopped by one parent. PostgreSQL only by nature (several processes); the
 * refusals run on both databases.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  baseEnv,
  type CliProcess,
  envKeys,
  freePort,
  killAllChildren,
  REPO_ROOT,
  runCli,
  show,
  spawnCli,
} from './cli-helpers.ts';
import { createTestDatabase, DIALECT, type TestDatabase } from './harness.ts';

const PG_ONLY =
  DIALECT !== 'postgres' && 'several broker processes need PostgreSQL: runs in `npm run test:pg`';

/** The pids of the live processes whose parent is `parent`. */
function childrenOf(parent: number): number[] {
  return readdirSync('/proc')
    .filter((pid) => /^\d+$/.test(pid))
    .filter((pid) => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === parent;
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** One GET on a connection of its own (the kernel picks a worker per connection). */
const getStatus = (url: string, key: string) =>
  new Promise<number>((resolve, reject) => {
    get(url, { agent: false, headers: { 'x-api-key': key } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    }).on('error', reject);
  });

describe('nexus serve --workers: what it refuses', () => {
  it('without PostgreSQL, or without Redis while rate limits are on, naming what to set, and changes nothing', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'nexus-workers-'));
    try {
      const result = await runCli(['serve', '--workers', '2'], {
        ...baseEnv(),
        NEXUS_DATA_DIR: dataDir,
        PORT: String(await freePort()),
      });
      assert.equal(result.code, 2, show(result));
      assert.match(result.stderr, /set DATABASE_URL/);
      assert.match(result.stderr, /set REDIS_URL \(or RATE_LIMIT_ENABLED=false\)/);
      assert.ok(!existsSync(join(dataDir, 'keys.json')), 'no keys generated');
      assert.ok(!existsSync(join(dataDir, 'nexus.db')), 'no database created');
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('nexus serve --workers 2 on PostgreSQL', { skip: PG_ONLY, timeout: 120_000 }, () => {
  let db: TestDatabase;
  let parent: CliProcess;
  let base: string;
  let env: Record<string, string>;
  let id: string;
  const key = `nxtest_${randomBytes(16).toString('hex')}`;
  const limitedKey = `nxtest_${randomBytes(16).toString('hex')}`;
  const WINDOW_MS = 10_000; // 24 requests, each on a new connection, fit in one window on a loaded machine

  before(async () => {
    const redisUrl = execFileSync('bash', [join(REPO_ROOT, 'scripts/services.sh'), 'ensure-redis'], {
      encoding: 'utf8',
    }).trim();
    db = await createTestDatabase();
    const port = await freePort();
    const suffix = randomBytes(4).toString('hex');
    env = {
      ...baseEnv(),
      ...db.env,
      ...envKeys(),
      NEXUS_ENV: 'test',
      HOST: '127.0.0.1',
      PORT: String(port),
      API_KEYS: `ops-${suffix}:${key},limited-${suffix}:${limitedKey}`,
      ALLOWED_RETURN_DOMAINS: 'localhost',
      REDIS_URL: redisUrl,
      RATE_LIMIT_WINDOW_SECONDS: String(WINDOW_MS / 1000),
      RATE_LIMIT_TOKEN_RPM: '30', // 5 per 10-second window
    };
    parent = spawnCli(['serve', '--workers', '2'], env);
    base = `http://127.0.0.1:${port}`;
    for (let ready = 0; ready < 2; ) {
      await parent.waitFor('stdout', /"msg":"nexus ready"/, 20_000);
      ready = parent
        .stdout()
        .split('\n')
        .filter((l) => l.includes('"msg":"nexus ready"')).length;
      if (ready < 2) await new Promise((r) => setTimeout(r, 100));
    }
    const call = async (path: string, body: unknown, withKey = true) => {
      const res = await fetch(`${base}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(withKey ? { 'x-api-key': key } : {}) },
        body: JSON.stringify(body),
      });
      const text = await res.text();
      assert.ok(res.ok, `${path}: ${res.status} ${text}`);
      return JSON.parse(text) as Record<string, string>;
    };
    await call('/providers', { profile: { name: 'crm', auth_type: 'api_key' } });
    const started = await call('/v1/request-connection', {
      user_id: 'u1',
      provider_name: 'crm',
      return_url: 'http://localhost/done',
    });
    await call('/v1/capture-credential', { state: started.state, credentials: { api_key: 'k' } }, false);
    id = started.connection_id!;
  });
  after(async () => {
    // Workers first: killing the parent (SIGKILL) would leave them running.
    if (parent !== undefined) for (const pid of childrenOf(parent.child.pid!)) process.kill(pid, 'SIGKILL');
    killAllChildren();
    await db?.drop();
  });

  it('runs two broker processes under one parent on the one port', async () => {
    const workers = childrenOf(parent.child.pid!);
    assert.equal(workers.length, 2, `workers of ${parent.child.pid!}: ${workers.join(', ')}`);
    // The connection's status: authenticated and read from the database, not rate-limited.
    const statuses = await Promise.all(
      Array.from({ length: 40 }, () => getStatus(`${base}/v1/check-connection/${id}`, key)),
    );
    assert.deepEqual(new Set(statuses), new Set([200]));
  });

  it('holds a rate limit across the processes (Redis), not once per process', async () => {
    // Just after a window boundary; 24 connections of their own land on both workers.
    await new Promise((done) => setTimeout(done, WINDOW_MS - (Date.now() % WINDOW_MS) + 50));
    const statuses = [];
    for (let i = 0; i < 24; i++) statuses.push(await getStatus(`${base}/v1/token/${id}`, limitedKey));
    assert.equal(statuses.filter((s) => s === 200).length, 5, statuses.join(' '));
    assert.equal(statuses.filter((s) => s === 429).length, 19);
  });

  it('keeps answering when a worker is killed, and starts another in its place', async () => {
    const [victim, survivor] = childrenOf(parent.child.pid!);
    process.kill(victim!, 'SIGKILL');
    // Connections already queued at the dying worker are reset (as with any replica that dies);
    // once it is gone, the kernel gives every new connection to a live one.
    for (let tries = 0; tries < 100 && existsSync(`/proc/${victim}`); tries++)
      await new Promise((r) => setTimeout(r, 20));
    const statuses = [];
    for (let i = 0; i < 30; i++) statuses.push(await getStatus(`${base}/v1/check-connection/${id}`, key));
    assert.deepEqual(new Set(statuses), new Set([200]), 'every request answered by the live worker(s)');
    for (let tries = 0; tries < 100; tries++) {
      const now = childrenOf(parent.child.pid!);
      if (now.length === 2 && !now.includes(victim!)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const now = childrenOf(parent.child.pid!);
    assert.equal(now.length, 2, `workers now: ${now.join(', ')}`);
    assert.ok(now.includes(survivor!) && !now.includes(victim!));
    assert.match(
      parent.stderr(),
      new RegExp(
        `worker 0 \\(pid ${victim}\\) exited \\(SIGKILL\\)|worker 1 \\(pid ${victim}\\) exited \\(SIGKILL\\)`,
      ),
    );
  });

  it('writes one audit chain from both processes, and stops them all on SIGTERM', async () => {
    const workers = childrenOf(parent.child.pid!);
    parent.kill('SIGTERM');
    const result = await parent.wait(20_000);
    assert.equal(result.code, 0, show(result));
    for (const pid of workers)
      assert.ok(!existsSync(`/proc/${pid}`) || childrenOf(parent.child.pid!).length === 0);
    assert.deepEqual(childrenOf(parent.child.pid!), []);
    const verify = await runCli(['audit', 'verify'], env);
    assert.equal(verify.code, 0, show(verify));
  });
});
