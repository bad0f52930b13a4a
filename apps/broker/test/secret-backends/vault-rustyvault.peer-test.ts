/**
 * The Vault/OpenBao backend against a REAL Vault-API server: RustyVault (crates.io
 * `rusty_vault` 0.2.1, built and cached by `scripts/services.sh ensure-rustyvault`). The test
 * starts it on a fresh file store, then initialises and unseals it over the HTTP API, enables
 * AppRole and runs the conformance suite on KV v1 (RustyVault has no KV v2: a v2 mount behaves as
 * v1; KV v2 is covered by vault-kv2-fake.test.ts against a FAKE). Real here: init, unseal,
 * sealed (503), token auth, AppRole login, KV v1 read/write/list/delete, RustyVault's error shape.
 *
 * Run by `npm run test:backends`; without NEXUS_TEST_RVAULT_BIN the file fails, never skips.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createVaultBackend, type VaultOptions } from '../../src/modules/secrets/vault.backend.ts';
import { rejectsWithCode, secretBackendConformance } from './conformance.ts';

const BIN = process.env.NEXUS_TEST_RVAULT_BIN;
if (BIN === undefined)
  throw new Error('NEXUS_TEST_RVAULT_BIN is not set: run `npm run test:backends` (scripts/services.sh)');

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });

class RustyVault {
  addr = '';
  rootToken = '';
  unsealKey = '';
  approle = { roleId: '', secretId: '' };
  private child: ChildProcess | undefined;
  private dir = '';

  async start() {
    this.dir = mkdtempSync(join(tmpdir(), 'nexus-rvault-'));
    const port = await freePort();
    this.addr = `http://127.0.0.1:${port}`;
    const config = join(this.dir, 'config.json');
    writeFileSync(
      config,
      JSON.stringify({
        listener: { tcp: { address: `127.0.0.1:${port}`, tls_disable: true } },
        storage: { file: { path: join(this.dir, 'data') } },
        api_addr: this.addr,
        log_level: 'warn',
        work_dir: this.dir,
      }),
    );
    this.child = spawn(BIN as string, ['server', '--config', config], { stdio: 'ignore' });
    for (let i = 0; i < 200; i++) {
      try {
        if ((await fetch(`${this.addr}/v1/sys/seal-status`)).ok) break;
      } catch {}
      await new Promise((r) => setTimeout(r, 50));
    }
    const init = await this.call('PUT', '/v1/sys/init', { secret_shares: 1, secret_threshold: 1 });
    this.rootToken = init.root_token as string;
    this.unsealKey = (init.keys as string[])[0] as string;
    await this.unseal();
    await this.call('POST', '/v1/sys/auth/approle', { type: 'approle' }, this.rootToken);
    await this.call(
      'POST',
      '/v1/auth/approle/role/nexus',
      { token_ttl: '1h', token_policies: 'default' },
      this.rootToken,
    );
    const role = await this.call('GET', '/v1/auth/approle/role/nexus/role-id', undefined, this.rootToken);
    const secret = await this.call('POST', '/v1/auth/approle/role/nexus/secret-id', {}, this.rootToken);
    this.approle = {
      roleId: (role.data as { role_id: string }).role_id,
      secretId: (secret.data as { secret_id: string }).secret_id,
    };
  }

  async unseal() {
    const r = await this.call('PUT', '/v1/sys/unseal', { key: this.unsealKey });
    assert.equal(r.sealed, false);
  }

  async seal() {
    await this.call('PUT', '/v1/sys/seal', {}, this.rootToken);
  }

  async call(method: string, path: string, body?: unknown, token?: string): Promise<Record<string, unknown>> {
    const r = await fetch(`${this.addr}${path}`, {
      method,
      headers: { 'content-type': 'application/json', ...(token ? { 'x-vault-token': token } : {}) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await r.text();
    if (!r.ok) throw new Error(`rustyvault ${method} ${path}: ${r.status} ${text}`);
    return text === '' ? {} : (JSON.parse(text) as Record<string, unknown>);
  }

  async stop() {
    this.child?.kill('SIGTERM');
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const server = new RustyVault();
before(() => server.start());
after(() => server.stop());

const backend = (overrides: Partial<VaultOptions> = {}) =>
  createVaultBackend({
    kind: 'hashicorp-vault',
    addr: server.addr,
    mount: 'secret',
    kvVersion: 1,
    prefix: 'nexus/providers',
    auth: { method: 'approle', roleId: server.approle.roleId, secretId: server.approle.secretId },
    backoffMs: 5,
    ...overrides,
  });

secretBackendConformance({
  name: 'hashicorp-vault KV v1, AppRole (RustyVault 0.2.1, real server)',
  open: async () => backend(),
  unreachable: async () => backend({ addr: 'http://127.0.0.1:1', attempts: 1 }),
  denied: async () => backend({ auth: { method: 'token', token: 'not-a-token' } }),
});

describe('vault backend against RustyVault (real server)', () => {
  it('works with the root token, and refuses a wrong AppRole secret id', async () => {
    const s = backend({ auth: { method: 'token', token: server.rootToken } });
    await s.healthCheck();
    await s.put('root/one', new TextEncoder().encode('v'));
    assert.equal(new TextDecoder().decode((await s.get('root/one'))?.value), 'v');
    const wrong = backend({ auth: { method: 'approle', roleId: server.approle.roleId, secretId: 'wrong' } });
    await rejectsWithCode(wrong.healthCheck(), 'secret_backend_denied');
  });

  it('reports a sealed server as secret_backend_sealed, and recovers after unseal', async () => {
    const s = backend();
    await s.put('sealed/one', new TextEncoder().encode('v'));
    await server.seal();
    try {
      await rejectsWithCode(s.healthCheck(), 'secret_backend_sealed');
      await rejectsWithCode(s.get('sealed/one'), 'secret_backend_sealed', 'RustyVault');
    } finally {
      await server.unseal();
    }
    await s.healthCheck();
    assert.equal(new TextDecoder().decode((await s.get('sealed/one'))?.value), 'v');
  });
});
