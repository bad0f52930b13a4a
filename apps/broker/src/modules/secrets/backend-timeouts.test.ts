import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { NexusError } from '../../errors/nexus-error.ts';
import { createAwsSecretsManagerBackend } from './aws-secrets-manager.backend.ts';
import { createVaultBackend } from './vault.backend.ts';

/**
 * A secret backend that accepts connections and never answers (a hung load balancer, a frozen
 * server) fails every call with `secret_backend_unavailable` (503) instead of holding the request,
 * and the refresh lease behind it, for minutes. The peer is a real TCP server that reads and
 * never writes; the SDKs are the real ones.
 */
describe('secret backends against a server that never answers', () => {
  let server: net.Server;
  const sockets = new Set<net.Socket>();
  let endpoint = '';
  before(async () => {
    server = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('data', () => {});
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    endpoint = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  });
  after(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });

  const unavailable = (error: unknown) => {
    assert.ok(error instanceof NexusError, String(error));
    assert.equal(error.code, 'secret_backend_unavailable');
    return true;
  };

  it('AWS Secrets Manager: each attempt is bounded', { timeout: 30_000 }, async () => {
    const aws = createAwsSecretsManagerBackend({
      region: 'us-east-1',
      prefix: 'nexus',
      endpoint,
      timeoutMs: 300,
      client: { credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'example' } },
    });
    try {
      await assert.rejects(aws.get('connections/abc'), unavailable);
    } finally {
      await aws.close();
    }
  });

  it('Vault: each attempt is bounded', { timeout: 30_000 }, async () => {
    const vault = createVaultBackend({
      kind: 'openbao',
      addr: endpoint,
      mount: 'secret',
      kvVersion: 2,
      prefix: 'nexus',
      auth: { method: 'token', token: 'example' },
      timeoutMs: 300,
      attempts: 2,
      backoffMs: 10,
    });
    try {
      await assert.rejects(vault.get('connections/abc'), unavailable);
    } finally {
      await vault.close();
    }
  });
});
