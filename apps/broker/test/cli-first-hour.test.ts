/**
 * Regression tests for issue #24 ("The first hour"), through the command line: an old Node is
 * told which one to use, a busy port stops `nexus serve` before it changes anything, and the
 * features the configuration leaves off are listed at start-up and by `nexus doctor`.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { after, afterEach, beforeEach, describe, it } from 'node:test';
import {
  ADMIN_KEY_PATTERN,
  baseEnv,
  envKeys,
  fetchWithin,
  freePort,
  killAllChildren,
  migrateDatabase,
  NEXUS_BIN,
  newKeyBase64,
  runCli,
  show,
  spawnCli,
  sqlOn,
} from './cli-helpers.ts';
import { createTestDatabase, DIALECT, type TestDatabase } from './harness.ts';

after(killAllChildren);

/** The Debian Node of this machine, when it is older than the one the broker needs. */
function olderSystemNode(): string | undefined {
  const candidate = '/usr/bin/node';
  if (!existsSync(candidate)) return undefined;
  const version = execFileSync(candidate, ['--version'], { encoding: 'utf8' }).trim();
  return Number(version.slice(1).split('.')[0]) < 24 ? candidate : undefined;
}

describe('issue #24: nexus on a Node.js older than 24', () => {
  const old = olderSystemNode();
  it('prints one line naming the Node.js needed and how to get it, exit 1', { skip: !old }, () => {
    let status = 0;
    let stderr = '';
    let stdout = '';
    try {
      stdout = execFileSync(old!, [NEXUS_BIN, '--help'], { encoding: 'utf8', stdio: 'pipe', env: baseEnv() });
    } catch (error) {
      const e = error as { status: number; stderr: string; stdout: string };
      status = e.status;
      stderr = e.stderr;
      stdout = e.stdout;
    }
    assert.equal(status, 1, stderr);
    assert.equal(stdout, '');
    const lines = stderr.trim().split('\n');
    assert.equal(lines.length, 1, stderr);
    assert.match(lines[0]!, /needs Node\.js 24 or later \(this is v\d+/);
    assert.match(lines[0]!, /`npm start` and `npx nexus`/);
    assert.doesNotMatch(stderr, /SyntaxError/);
  });
});

const listen = (port: number, host = '127.0.0.1') =>
  new Promise<Server>((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });

describe('issue #24: nexus serve with a port that is taken', { timeout: 60_000 }, () => {
  let db: TestDatabase;
  let blocker: Server | undefined;
  beforeEach(async () => {
    db = await createTestDatabase();
  });
  afterEach(async () => {
    await new Promise((resolve) => (blocker ? blocker.close(resolve) : resolve(undefined)));
    blocker = undefined;
    await db.drop();
  });

  /** Nothing was created: no key file, no admin key, no table. */
  async function assertUntouched(stderr: string): Promise<void> {
    assert.doesNotMatch(stderr, ADMIN_KEY_PATTERN);
    assert.doesNotMatch(stderr, /Generated development keys/);
    assert.ok(!existsSync(join(db.dataDir, 'keys.json')), 'no key file');
    if (DIALECT === 'sqlite') {
      const files = existsSync(db.dataDir) ? readdirSync(db.dataDir) : [];
      assert.ok(!files.includes('nexus.db'), `no database file: ${files.join(', ')}`);
    } else {
      const [row] = await sqlOn<{ n: string | number }>(
        db,
        'SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = current_schema()',
      );
      assert.equal(Number(row!.n), 0, 'no table was created');
    }
  }

  it('PORT taken: names PORT and the address, exits 1 before keys, migrations or an admin key', async () => {
    const port = await freePort();
    blocker = await listen(port);
    // A first start on a laptop: development, no keys, an empty data directory.
    const result = await runCli(['serve'], {
      ...baseEnv(),
      ...db.env,
      HOST: '127.0.0.1',
      PORT: String(port),
    });
    assert.equal(result.code, 1, show(result));
    assert.match(result.stderr, new RegExp(`PORT=${port}: 127\\.0\\.0\\.1:${port} is already in use`));
    assert.match(result.stderr, /set PORT to a free port/);
    await assertUntouched(result.stderr);
  });

  it('ADMIN_PORT taken (split mode): names ADMIN_PORT', async () => {
    const [port, adminPort] = [await freePort(), await freePort()];
    blocker = await listen(adminPort);
    const result = await runCli(['serve'], {
      ...baseEnv(),
      ...db.env,
      HOST: '127.0.0.1',
      PORT: String(port),
      ADMIN_HOST: '127.0.0.1',
      ADMIN_PORT: String(adminPort),
    });
    assert.equal(result.code, 1, show(result));
    assert.match(
      result.stderr,
      new RegExp(`ADMIN_PORT=${adminPort}: 127\\.0\\.0\\.1:${adminPort} is already in use`),
    );
    assert.doesNotMatch(result.stderr, new RegExp(`\\bPORT=${port}`));
    await assertUntouched(result.stderr);
  });
});

describe('issue #24: features switched off by configuration', { timeout: 60_000 }, () => {
  let db: TestDatabase;
  beforeEach(async () => {
    db = await createTestDatabase();
  });
  afterEach(() => db.drop());

  it('the start-up log lists them, and user secrets answer 501 naming USER_SECRETS_KEY', async () => {
    const port = await freePort();
    const adminKey = `first-hour-${newKeyBase64().replace(/[^A-Za-z0-9]/g, '')}`;
    const broker = spawnCli(['serve'], {
      ...baseEnv(),
      ...db.env,
      ...envKeys(),
      HOST: '127.0.0.1',
      PORT: String(port),
      API_KEYS: `ops:${adminKey}`,
    });
    try {
      await broker.waitFor('stdout', /"msg":"nexus ready"/, 15_000);
      const lines = broker
        .stdout()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      const off = lines.filter((l) => typeof l.feature_off === 'string');
      const userSecrets = off.find((l) => l.turn_on_with === 'USER_SECRETS_KEY');
      assert.ok(userSecrets, broker.stdout());
      assert.match(String(userSecrets.msg), /^user secrets: off \(set USER_SECRETS_KEY to turn on\)/);
      assert.ok(
        off.some((l) => l.turn_on_with === 'REDIS_URL'),
        'rate-limit counters per process are listed',
      );
      const res = await fetchWithin(`http://127.0.0.1:${port}/api/v2/secrets?user_id=u1`, {
        headers: { 'x-api-key': adminKey },
      });
      assert.equal(res.status, 501);
      const body = (await res.json()) as { error: string; message: string };
      assert.equal(body.error, 'user_secrets_not_configured');
      assert.match(body.message, /USER_SECRETS_KEY/);
    } finally {
      broker.kill('SIGTERM');
      await broker.wait(15_000).catch(() => broker.kill('SIGKILL'));
    }
  });

  it('nexus doctor lists them, and not user secrets once USER_SECRETS_KEY is set', async () => {
    const env = { ...baseEnv(), ...db.env, ...envKeys() };
    await migrateDatabase(env);
    const without = await runCli(['doctor', '--json'], env);
    const report = JSON.parse(without.stdout) as { findings: { check: string; message: string }[] };
    const features = report.findings.filter((f) => f.check === 'features').map((f) => f.message);
    assert.ok(
      features.some((m) => /^user secrets: off \(set USER_SECRETS_KEY/.test(m)),
      show(without),
    );
    assert.ok(
      features.some((m) => m.includes('REDIS_URL')),
      show(without),
    );

    const text = await runCli(['doctor'], env);
    assert.match(text.stdout, /features: user secrets: off \(set USER_SECRETS_KEY to turn on\)/);

    const withKey = await runCli(['doctor', '--json'], { ...env, USER_SECRETS_KEY: newKeyBase64() });
    const after = JSON.parse(withKey.stdout) as { findings: { check: string; message: string }[] };
    assert.ok(
      !after.findings.some((f) => f.check === 'features' && f.message.includes('USER_SECRETS_KEY')),
      show(withKey),
    );
  });
});
