/**
 * `nexus serve` with GRPC_PORT: the gRPC listener starts with the HTTP one on its own port, answers
 * health and the published service with the same admin keys, and stops on SIGTERM.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { baseEnv, envKeys, freePort, killAllChildren, show, spawnCli } from './cli-helpers.ts';
import { healthCheck, NexusClient } from './grpc-client.ts';
import { createTestDatabase, type TestDatabase } from './harness.ts';

after(killAllChildren);

describe('nexus serve: the gRPC listener', { timeout: 60_000 }, () => {
  let db: TestDatabase;
  before(async () => {
    db = await createTestDatabase();
  });
  after(() => db.drop());
  /** What both tests start `nexus serve` with: the database, keys, one admin key, HTTP and gRPC ports. */
  const serveEnv = (adminKey: string, port: number, grpcPort: number) => ({
    ...baseEnv(),
    ...db.env,
    ...envKeys(),
    NEXUS_ENV: 'test',
    API_KEYS: `ops:${adminKey}`,
    HOST: '127.0.0.1',
    PORT: String(port),
    GRPC_PORT: String(grpcPort),
  });

  it('serves gRPC on GRPC_PORT beside HTTP, with the same credentials, and stops on SIGTERM', async () => {
    const [port, grpcPort] = [await freePort(), await freePort()];
    const adminKey = `grpc-serve-key-${'k'.repeat(24)}`;
    const broker = spawnCli(['serve', '--no-worker'], serveEnv(adminKey, port, grpcPort));
    const client = new NexusClient(`127.0.0.1:${grpcPort}`);
    try {
      await broker.waitFor('stdout', /"msg":"nexus ready"/, 15_000);
      const ready = broker
        .stdout()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .find((l) => l.msg === 'nexus ready');
      assert.equal(ready?.grpc, `127.0.0.1:${grpcPort}`);
      assert.equal(await healthCheck(`127.0.0.1:${grpcPort}`, 'nexus.v1.NexusService'), 'SERVING');
      const missing = await client.fail(
        'CheckConnection',
        { connection_id: '00000000-0000-4000-8000-000000000000' },
        { 'x-api-key': adminKey },
      );
      assert.equal(missing.code, grpc.status.NOT_FOUND);
      const anonymous = await client.fail('CheckConnection', {
        connection_id: '00000000-0000-4000-8000-000000000000',
      });
      assert.equal(anonymous.code, grpc.status.UNAUTHENTICATED);
      // One access-log line per call, with the request id and the status.
      await broker.waitFor('stdout', /"method":"CheckConnection","code":"UNAUTHENTICATED"/, 5_000);
      assert.match(broker.stdout(), /"method":"CheckConnection","code":"NOT_FOUND"\},"request_id":"[^"]+"/);
      assert.ok(!broker.stdout().includes(adminKey), 'the admin key reached the log');

      broker.kill('SIGTERM');
      const result = await broker.wait(15_000);
      assert.equal(result.code, 0, show(result));
    } finally {
      client.close();
      broker.kill('SIGKILL');
    }
  });

  for (const [label, env] of [
    ['--role gateway', { NEXUS_ROLE: 'gateway' }],
    ['all, split by ADMIN_PORT', { ADMIN_PORT: 'admin' }],
  ] as const)
    it(`${label}: admin keys are refused on gRPC as on the public HTTP listener`, async () => {
      const [port, grpcPort, adminPort] = [await freePort(), await freePort(), await freePort()];
      const adminKey = `grpc-split-key-${'k'.repeat(24)}`;
      const broker = spawnCli(['serve', '--no-worker'], {
        ...serveEnv(adminKey, port, grpcPort),
        ...('NEXUS_ROLE' in env ? env : { ADMIN_PORT: String(adminPort) }),
      });
      const client = new NexusClient(`127.0.0.1:${grpcPort}`);
      try {
        await broker.waitFor('stdout', /"msg":"nexus ready"/, 15_000);
        const http = await fetch(
          `http://127.0.0.1:${port}/v1/check-connection/00000000-0000-4000-8000-000000000000`,
          {
            headers: { 'x-api-key': adminKey },
          },
        );
        assert.equal(http.status, 403, 'the public HTTP listener refuses it');
        const refused = await client.fail(
          'CheckConnection',
          { connection_id: '00000000-0000-4000-8000-000000000000' },
          { 'x-api-key': adminKey },
        );
        assert.equal(refused.code, grpc.status.PERMISSION_DENIED, JSON.stringify(refused));
      } finally {
        client.close();
        broker.kill('SIGKILL');
      }
    });
});
