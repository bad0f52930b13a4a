/**
 * End-to-end: `nexus serve` as a child process (quick start in development, refusal in
 * production, configuration errors) and the command-line surface (`--help`, unknown commands).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { VERSION } from '../src/version.ts';
import {
  ADMIN_KEY_PATTERN,
  baseEnv,
  envKeys,
  fetchWithin,
  freePort,
  killAllChildren,
  newKeyBase64,
  runCli,
  show,
  spawnCli,
} from './cli-helpers.ts';
import { createTestDatabase, DIALECT, TEST_PG_URL, type TestDatabase } from './harness.ts';

after(killAllChildren);

/** Parses the JSON log lines a broker wrote to stdout (ignores anything else). */
function logLines(stdout: string): Record<string, unknown>[] {
  return stdout
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe('nexus serve: development quick start', { timeout: 90_000 }, () => {
  let db: TestDatabase;
  let adminKey: string;
  before(async () => {
    db = await createTestDatabase();
  });
  after(() => db.drop());

  // No NEXUS_ENV, no keys: exactly what a first `nexus serve` on a laptop sees.
  const devEnv = (port: number) => ({
    ...baseEnv(),
    ...db.env,
    HOST: '127.0.0.1',
    PORT: String(port),
  });

  it('first start: generates keys (loudly), bootstraps an admin key once, serves, stops on SIGTERM', async () => {
    const port = await freePort();
    const broker = spawnCli(['serve'], devEnv(port));
    try {
      await broker.waitFor('stdout', /"msg":"nexus ready"/, 15_000);

      const ready = logLines(broker.stdout()).find((l) => l.msg === 'nexus ready');
      assert.ok(ready, broker.stdout());
      assert.equal(ready.url, `http://127.0.0.1:${port}`);
      assert.equal(ready.mode, 'development');
      assert.equal(ready.database, DIALECT);

      const stderr = broker.stderr();
      const keyFile = join(db.dataDir, 'keys.json');
      assert.ok(stderr.includes(`Generated development keys in ${keyFile}`), stderr);
      assert.match(stderr, /!!! ={20,}/);
      assert.match(stderr, /Never use generated keys in production/);
      const keys = stderr.match(new RegExp(ADMIN_KEY_PATTERN.source, 'g')) ?? [];
      assert.equal(keys.length, 1, `exactly one admin key on stderr:\n${stderr}`);
      adminKey = keys[0]!;
      assert.match(stderr, /shown only once/);
      // The one-time key goes to the terminal, never into the JSON log.
      assert.ok(!broker.stdout().includes(adminKey), 'admin key leaked into the log');

      assert.equal(statSync(keyFile).mode & 0o777, 0o600);
      const material = JSON.parse(readFileSync(keyFile, 'utf8')) as {
        version: number;
        encryption_keys: string[];
        state_key: string;
      };
      assert.equal(material.version, 1);
      assert.equal(material.encryption_keys.length, 1);
      assert.equal(Buffer.from(material.encryption_keys[0]!, 'base64').length, 32);
      assert.equal(Buffer.from(material.state_key, 'base64').length, 32);
      for (const secret of [...material.encryption_keys, material.state_key]) {
        assert.ok(!broker.stdout().includes(secret) && !stderr.includes(secret), 'a key was printed');
      }

      const base = `http://127.0.0.1:${port}`;
      const health = await fetchWithin(`${base}/health`);
      assert.equal(health.status, 200);
      assert.deepEqual(await health.json(), { status: 'healthy' });
      const withKey = await fetchWithin(`${base}/providers`, { headers: { 'x-api-key': adminKey } });
      assert.equal(withKey.status, 200, await withKey.clone().text());
      await withKey.body?.cancel();
      const bearer = await fetchWithin(`${base}/providers`, {
        headers: { authorization: `Bearer ${adminKey}` },
      });
      assert.equal(bearer.status, 200);
      await bearer.body?.cancel();
      const without = await fetchWithin(`${base}/providers`);
      assert.equal(without.status, 401);
      await without.body?.cancel();
      const wrong = await fetchWithin(`${base}/providers`, {
        headers: { 'x-api-key': `${adminKey.slice(0, -4)}AAAA` },
      });
      assert.equal(wrong.status, 401);
      await wrong.body?.cancel();

      broker.kill('SIGTERM');
      const result = await broker.wait(15_000);
      assert.equal(result.code, 0, show(result));
      assert.equal(result.signal, null);
      assert.ok(
        logLines(result.stdout).some((l) => l.msg === 'shutting down' && l.signal === 'SIGTERM'),
        show(result),
      );
    } finally {
      broker.kill('SIGKILL');
    }
  });

  it('second start on the same data directory: no new admin key, the first one still works', async () => {
    assert.ok(adminKey, 'depends on the first start');
    const keyFile = join(db.dataDir, 'keys.json');
    const keyFileBefore = readFileSync(keyFile, 'utf8');
    const port = await freePort();
    const broker = spawnCli(['serve'], devEnv(port));
    try {
      await broker.waitFor('stdout', /"msg":"nexus ready"/, 15_000);
      const stderr = broker.stderr();
      assert.doesNotMatch(stderr, ADMIN_KEY_PATTERN);
      assert.doesNotMatch(stderr, /admin API key was created/);
      assert.doesNotMatch(stderr, /Generated development keys/);
      assert.ok(stderr.includes(`warning: using development keys from ${keyFile}`), stderr);
      // The migrations were applied by the first start.
      assert.ok(!logLines(broker.stdout()).some((l) => l.msg === 'migrations applied'), broker.stdout());
      assert.equal(readFileSync(keyFile, 'utf8'), keyFileBefore, 'the key file must not change');

      const res = await fetchWithin(`http://127.0.0.1:${port}/providers`, {
        headers: { 'x-api-key': adminKey },
      });
      assert.equal(res.status, 200);
      await res.body?.cancel();

      broker.kill('SIGTERM');
      const result = await broker.wait(15_000);
      assert.equal(result.code, 0, show(result));
    } finally {
      broker.kill('SIGKILL');
    }
  });
});

describe('nexus serve: production refuses unsafe configuration', { timeout: 60_000 }, () => {
  let db: TestDatabase;
  before(async () => {
    db = await createTestDatabase();
  });
  after(() => db.drop());

  it('without keys and BASE_URL: exit 2, names every missing variable and how to generate keys', async () => {
    const port = await freePort();
    const result = await runCli(['serve'], {
      ...baseEnv(),
      ...db.env,
      NEXUS_ENV: 'production',
      PORT: String(port),
    });
    assert.equal(result.code, 2, show(result));
    for (const name of ['ENCRYPTION_KEY', 'STATE_KEY', 'BASE_URL']) {
      assert.match(result.stderr, new RegExp(`^  - ${name}: required in production`, 'm'), show(result));
    }
    assert.match(result.stderr, /`nexus keys generate`/);
    assert.match(result.stderr, /docs\/configuration\.md/);
    assert.doesNotMatch(result.stdout, /nexus ready/);
    // Production never generates keys, and nothing was started or written.
    assert.equal(existsSync(join(db.dataDir, 'keys.json')), false);
    assert.doesNotMatch(result.stderr, ADMIN_KEY_PATTERN);
  });

  it('never prints a key value, bad or good, in its error messages', async () => {
    // Recognisable values: a wrong-length but base64-looking key, a non-base64 key, an over-long
    // key, a valid key next to a bad one in a ring, and a too-short admin key.
    const variants: { planted: Record<string, string>; expect: RegExp[] }[] = [
      {
        planted: {
          ENCRYPTION_KEY: 'PLANTEDxENCxKEYx0123456789abcdef',
          STATE_KEY: 'Planted!State*Key#Value$0123456789',
          API_KEY: 'plantedApiKey123',
        },
        expect: [
          /ENCRYPTION_KEY: must be 32 random bytes/,
          /STATE_KEY: must be 32 random bytes/,
          /API_KEY: the key named "env:API_KEY" is shorter than 24 characters/,
        ],
      },
      {
        planted: {
          ENCRYPTION_KEYS: `${newKeyBase64()},PLANTEDxRINGxKEYx0123456789abcde`,
          STATE_KEY: `PLANTEDxLONGxKEY${'y'.repeat(300)}`,
        },
        expect: [
          /ENCRYPTION_KEYS\[1\]: must be 32 random bytes/,
          /STATE_KEY: must be at most 256 characters/,
        ],
      },
    ];
    for (const { planted, expect } of variants) {
      const env = { ...baseEnv(), ...db.env, NEXUS_ENV: 'production', ...planted };
      const serve = await runCli(['serve'], env);
      assert.equal(serve.code, 2, show(serve));
      for (const pattern of [...expect, /BASE_URL: required in production/]) {
        assert.match(serve.stderr, pattern, show(serve));
      }
      // doctor reports the same problems on stdout: it must not echo them either.
      const doctor = await runCli(['doctor'], env);
      assert.equal(doctor.code, 1, show(doctor));
      assert.match(doctor.stdout, /^\[FAIL\] config: STATE_KEY: must be/m, show(doctor));
      const values = Object.values(planted).flatMap((v) => v.split(','));
      for (const result of [serve, doctor]) {
        const output = result.stdout + result.stderr;
        for (const value of values) {
          assert.ok(
            !output.includes(value.slice(0, 12)),
            `printed (part of) a key value: ${value}\n${show(result)}`,
          );
        }
      }
    }
  });

  it('lists every bad variable in one message, not just the first', async () => {
    const keys = envKeys();
    const result = await runCli(['serve'], {
      ...baseEnv(),
      ...db.env,
      NEXUS_ENV: 'test',
      PORT: 'abc',
      ALLOWED_CIDRS: '10.0.0.0/8,nonsense',
      ENCRYPTION_KEY: 'shortKEY1',
      STATE_KEY: keys.STATE_KEY,
      LOG_LEVEL: 'loud',
    });
    assert.equal(result.code, 2, show(result));
    assert.equal(result.stderr.match(/Invalid configuration:/g)?.length, 1, show(result));
    const problems = result.stderr.split('\n').filter((l) => l.startsWith('  - '));
    assert.equal(problems.length, 4, show(result));
    assert.match(result.stderr, /^ {2}- PORT: must be a whole number \(got "abc"\)$/m);
    assert.match(result.stderr, /^ {2}- ALLOWED_CIDRS: "nonsense" is not an IP address or CIDR range/m);
    assert.match(result.stderr, /^ {2}- ENCRYPTION_KEY: must be 32 random bytes encoded as base64/m);
    assert.match(result.stderr, /^ {2}- LOG_LEVEL: must be one of fatal, error, warn, info/m);
    assert.ok(!result.stderr.includes('shortKEY1'), 'echoed the bad ENCRYPTION_KEY');
    assert.ok(!result.stderr.includes(keys.STATE_KEY), 'echoed STATE_KEY');
  });
});

describe('nexus serve and migrate: a PostgreSQL they cannot use', { timeout: 60_000 }, () => {
  const envFor = (url: string) => ({
    ...baseEnv(),
    ...envKeys(),
    NEXUS_DATA_DIR: mkdtempSync(join(tmpdir(), 'nexus-pgfail-')),
    DATABASE_URL: url,
  });
  /** Both commands: exit 1 promptly (runCli's bound), one line naming where and why, no password. */
  async function refusedWith(url: string, password: string, expected: RegExp): Promise<void> {
    for (const command of [['serve'], ['migrate']]) {
      const result = await runCli(command, envFor(url));
      assert.equal(result.code, 1, show(result));
      assert.match(
        result.stderr,
        /cannot use the PostgreSQL database at \S+ \(DATABASE_URL\): /,
        show(result),
      );
      assert.match(result.stderr, expected, show(result));
      if (password !== '') assert.ok(!(result.stdout + result.stderr).includes(password), show(result));
    }
  }

  it('nothing listening on the port: says so, naming host, port and database', async () => {
    const port = await freePort();
    await refusedWith(
      `postgres://nexus:Pl4ntedPw@127.0.0.1:${port}/nexus`,
      'Pl4ntedPw',
      new RegExp(`127\\.0\\.0\\.1:${port}/nexus .*is PostgreSQL running, and on that port\\?`),
    );
  });

  it('a missing password or database: says which, and exits instead of waiting on the server', {
    skip: DIALECT !== 'postgres' && 'needs PostgreSQL (npm run test:pg)',
  }, async () => {
    const url = new URL(TEST_PG_URL!);
    const password = decodeURIComponent(url.password);
    // pg left the socket open after this failure: the server held it for its authentication
    // timeout (60 s), and `serve` could not exit until then (2026-12-08).
    const noPassword = new URL(url);
    noPassword.password = '';
    await refusedWith(noPassword.href, '', /the server asks for a password and DATABASE_URL has none/);
    const noDatabase = new URL(url);
    noDatabase.pathname = '/nexus_no_such_database';
    await refusedWith(noDatabase.href, password, /that database does not exist: create it/);
  });
});

describe('nexus command line', { timeout: 60_000 }, () => {
  let dir: string;
  let env: Record<string, string>;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'nexus-cli-'));
    // A data directory of its own, so nothing can touch ./.nexus in the repository.
    env = { ...baseEnv(), NEXUS_DATA_DIR: dir };
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('--help exits 0 and lists every command', async () => {
    const result = await runCli(['--help'], env);
    assert.equal(result.code, 0, show(result));
    for (const command of [
      'serve',
      'migrate [--status]',
      'doctor',
      'keys generate',
      'keys rotate',
      'keys rewrap',
      'admin-keys create --name',
      'admin-keys list',
      'admin-keys revoke',
      'audit verify',
    ]) {
      assert.ok(result.stdout.includes(command), `--help does not mention "${command}"`);
    }
    assert.equal(result.stderr, '');
    // No command, and `help`, print the same.
    const bare = await runCli([], env);
    assert.equal(bare.code, 0);
    assert.equal(bare.stdout, result.stdout);
  });

  it('--version prints the version', async () => {
    const result = await runCli(['--version'], env);
    assert.equal(result.code, 0, show(result));
    assert.equal(result.stdout.trim(), VERSION);
  });

  it('an unknown command, sub-command or option exits 2 and points at --help', async () => {
    for (const args of [['frobnicate'], ['keys', 'frobnicate'], ['audit'], ['serve', '--frobnicate']]) {
      const result = await runCli(args, env);
      assert.equal(result.code, 2, `${args.join(' ')}: ${show(result)}`);
      assert.match(result.stderr, /nexus --help/, args.join(' '));
      assert.equal(result.stdout, '', args.join(' '));
    }
    const unknown = await runCli(['frobnicate'], env);
    assert.match(unknown.stderr, /^unknown command: frobnicate/);
    assert.deepEqual(readdirSync(dir), [], 'a usage error must not touch the data directory');
  });
});
