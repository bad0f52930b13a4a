/**
 * Issue #25: `nexus serve` started with the original Nexus's environment names each variable it
 * does not read in a start-up warning, with what to do instead, and never prints a value.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { baseEnv, freePort, killAllChildren, show, spawnCli } from './cli-helpers.ts';
import { createTestDatabase, type TestDatabase } from './harness.ts';

after(killAllChildren);

describe('nexus serve with the original Nexus environment', { timeout: 60_000 }, () => {
  let db: TestDatabase;
  before(async () => {
    db = await createTestDatabase();
  });
  after(() => db.drop());

  it('warns once per ignored variable, naming the replacement, and prints no value', async () => {
    const planted = {
      REQUIRE_API_KEY: 'true',
      ENFORCE_RETURN_URL: 'true',
      PORT_GRPC: '9090',
      BROKER_API_KEY: 'planted-gateway-key-7c41e0a9d2',
      API_KEYS_FILE: '/run/secrets/planted-api-keys-file',
      // Same names as in Nexus: read, never warned about.
      ALLOWED_RETURN_DOMAINS: 'app.example.com',
      BROKER_BASE_URL: 'http://planted-broker.internal:8080',
    };
    const port = await freePort();
    const broker = spawnCli(['serve', '--no-worker'], {
      ...baseEnv(),
      ...db.env,
      HOST: '127.0.0.1',
      PORT: String(port),
      ...planted,
    });
    try {
      await broker.waitFor('stdout', /"msg":"nexus ready"/, 15_000);
      broker.kill('SIGTERM');
      const result = await broker.wait(15_000);
      assert.equal(result.code, 0, show(result));
      const lines = result.stdout
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as Record<string, unknown>);
      const warned = lines.filter((l) => typeof l.variable === 'string');
      assert.deepEqual(
        warned.map((l) => [l.variable, l.nexus]),
        [
          ['REQUIRE_API_KEY', 'always on'],
          ['API_KEYS_FILE', 'no longer exists'],
          ['ENFORCE_RETURN_URL', 'always on: ALLOWED_RETURN_DOMAINS'],
          ['BROKER_API_KEY', 'no longer exists'],
          ['PORT_GRPC', 'GRPC_PORT'],
        ],
        result.stdout,
      );
      for (const line of warned) {
        assert.equal(line.level, 40, 'a warning');
        assert.match(
          String(line.msg),
          new RegExp(`^${String(line.variable)} is a setting of the original Nexus`),
        );
      }
      const grpc = warned.find((l) => l.variable === 'PORT_GRPC')!;
      assert.match(String(grpc.msg), /set `GRPC_PORT=9090` to keep that port/);
      // Once, before the broker is ready.
      const ready = lines.findIndex((l) => l.msg === 'nexus ready');
      assert.ok(lines.indexOf(warned.at(-1)!) < ready);
      for (const value of Object.values(planted).filter((v) => v.length > 8)) {
        assert.ok(!result.stdout.includes(value), `printed: ${value}`);
        assert.ok(!result.stderr.includes(value), `printed: ${value}`);
      }
    } finally {
      broker.kill('SIGKILL');
    }
  });
});
