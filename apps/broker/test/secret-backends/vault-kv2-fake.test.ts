/**
 * The Vault/OpenBao backend on KV v2 against a FAKE server (vault-kv2.fake.ts): no installable
 * real server offers KV v2 here. The real-server half (RustyVault: init, unseal, sealed, token,
 * AppRole, KV v1) is in vault-rustyvault.peer-test.ts, run by `npm run test:backends`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { NexusError } from '../../src/errors/nexus-error.ts';
import { createVaultBackend, type VaultOptions } from '../../src/modules/secrets/vault.backend.ts';
import { rejectsWithCode, secretBackendConformance } from './conformance.ts';
import { FakeVault } from './vault-kv2.fake.ts';

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array | undefined) => new TextDecoder().decode(b);

const fake = new FakeVault();
const backend = (overrides: Partial<VaultOptions> = {}) =>
  createVaultBackend({
    kind: 'openbao',
    addr: fake.url,
    mount: 'secret',
    kvVersion: 2,
    prefix: 'nexus/providers',
    auth: { method: 'token', token: fake.issueToken() },
    backoffMs: 1,
    now: () => fake.now,
    ...overrides,
  });

before(() => fake.start());
after(() => fake.stop());

secretBackendConformance({
  name: 'openbao / hashicorp-vault KV v2 (FAKE server)',
  open: async () => backend(),
  unreachable: async () => backend({ addr: 'http://127.0.0.1:1', attempts: 1 }),
  denied: async () => backend({ auth: { method: 'token', token: 'hvs.not-a-token' } }),
});

describe('vault backend against the FAKE KV v2 server', () => {
  it('writes with check-and-set: a stale cas is refused by the server and the write retried', async () => {
    const s = backend();
    await s.put('cas/one', bytes('v1'));
    const before = fake.requests.length;
    // Another client writes between our metadata read and our write: the server refuses our cas.
    fake.failNext(400, 1, ['check-and-set parameter did not match the current version'], 'POST');
    assert.deepEqual(await s.put('cas/one', bytes('v2')), { version: '2' });
    const writes = fake.requests.slice(before).filter((r) => r.method === 'POST');
    assert.deepEqual(
      writes.map((w) => w.status),
      [400, 200],
    );
    assert.equal(fake.currentVersion('nexus/providers/cas/one'), 2);
  });

  it('retries 429 and 5xx with backoff, then gives up with secret_backend_unavailable', async () => {
    const s = backend({ attempts: 3 });
    await s.put('retry/one', bytes('v'));
    fake.failNext(429, 1);
    fake.failNext(502, 1);
    assert.equal(text((await s.get('retry/one'))?.value), 'v');
    fake.failNext(500, 3, ['internal error: storage path nexus/providers/retry/one']);
    await rejectsWithCode(s.get('retry/one'), 'secret_backend_unavailable', 'storage path');
  });

  it('reports a sealed server clearly and does not retry it', async () => {
    const s = backend({ attempts: 5 });
    fake.sealed = true;
    try {
      const before = fake.requests.length;
      await rejectsWithCode(s.get('sealed/one'), 'secret_backend_sealed');
      assert.equal(fake.requests.length - before, 1, 'one request, no retries');
      await assert.rejects(s.healthCheck(), (e: unknown) => {
        assert.ok(e instanceof NexusError);
        assert.equal(e.code, 'secret_backend_sealed');
        assert.equal(e.status, 503);
        assert.match(e.message, /sealed/);
        return true;
      });
    } finally {
      fake.sealed = false;
    }
  });

  it('maps a policy refusal to secret_backend_denied and keeps the server text out of the message', async () => {
    const s = backend({ auth: { method: 'token', token: fake.issueToken({ allow: ['elsewhere/'] }) } });
    await rejectsWithCode(s.get('x/one'), 'secret_backend_denied', 'permission denied');
    await rejectsWithCode(s.healthCheck(), 'secret_backend_denied');
  });

  it('sends X-Vault-Namespace, and namespaces keep separate secrets', async () => {
    const token = fake.issueToken({ namespace: 'team-a' });
    const a = backend({ namespace: 'team-a', auth: { method: 'token', token } });
    const child = backend({ namespace: 'team-a/child', auth: { method: 'token', token } });
    await a.put('ns/one', bytes('in team-a'));
    await child.put('ns/one', bytes('in team-a/child'));
    assert.equal(text((await a.get('ns/one'))?.value), 'in team-a');
    assert.equal(text((await child.get('ns/one'))?.value), 'in team-a/child');
    assert.equal(fake.requests.at(-1)?.namespace, 'team-a/child');
    // The team-a token does not reach the root namespace or a sibling.
    const root = backend({ auth: { method: 'token', token } });
    await rejectsWithCode(root.get('ns/one'), 'secret_backend_denied');
    const sibling = backend({ namespace: 'team-b', auth: { method: 'token', token } });
    await rejectsWithCode(sibling.get('ns/one'), 'secret_backend_denied');
  });

  it('renews a token before it expires, and keeps working past its first TTL', async () => {
    const token = fake.issueToken({ ttlSeconds: 60, maxTtlSeconds: 3600 });
    const s = backend({ auth: { method: 'token', token } });
    await s.put('renew/one', bytes('v'));
    fake.now += 45_000; // past two thirds of the TTL
    await s.get('renew/one');
    assert.ok(fake.requests.some((r) => r.url === '/v1/auth/token/renew-self' && r.status === 200));
    fake.now += 45_000; // 90 s after issue: expired without the renewal
    assert.equal(text((await s.get('renew/one'))?.value), 'v');
  });

  it('logs in again with AppRole when renewal fails, and after a revoked token', async () => {
    const role = fake.addRole({ ttlSeconds: 60 });
    const s = backend({ auth: { method: 'approle', roleId: role.roleId, secretId: role.secretId } });
    await s.put('approle/one', bytes('v'));
    const logins = () => fake.requests.filter((r) => r.url === '/v1/auth/approle/login').length;
    assert.equal(logins(), 1);
    // Past the max TTL (3 × 60 s in the fake): renewal cannot extend it, the token expires.
    fake.now += 200_000;
    assert.equal(text((await s.get('approle/one'))?.value), 'v');
    assert.equal(logins(), 2);
    // The token is revoked behind our back: the 403 triggers one fresh login.
    fake.tokens.clear();
    assert.equal(text((await s.get('approle/one'))?.value), 'v');
    assert.equal(logins(), 3);
  });

  it('Kubernetes auth: logs in with the service-account JWT as the file holds it at each login', async () => {
    let jwt = 'sa-jwt-1';
    fake.addK8sRole({ role: 'nexus', jwts: ['sa-jwt-1', 'sa-jwt-2'], ttlSeconds: 60 });
    const s = backend({ auth: { method: 'kubernetes', role: 'nexus', readJwt: async () => `${jwt}\n` } });
    await s.put('k8s/one', bytes('v'));
    const logins = () => fake.requests.filter((r) => r.url === '/v1/auth/kubernetes/login');
    assert.deepEqual(
      logins().map((r) => r.status),
      [200],
    );
    // The kubelet rotated the projected token; the old one is no longer accepted by the cluster.
    jwt = 'sa-jwt-2';
    fake.k8sRoles.get('nexus')!.jwts.delete('sa-jwt-1');
    fake.now += 200_000; // past the max TTL: a new login, with the new JWT
    assert.equal(text((await s.get('k8s/one'))?.value), 'v');
    assert.deepEqual(
      logins().map((r) => r.status),
      [200, 200],
    );
  });

  it('Kubernetes auth: an unknown role, a refused JWT or an unreadable token file is secret_backend_denied', async () => {
    fake.addK8sRole({ role: 'known', jwts: ['good'] });
    for (const auth of [
      { method: 'kubernetes' as const, role: 'unknown', readJwt: async () => 'good' },
      { method: 'kubernetes' as const, role: 'known', readJwt: async () => 'forged' },
      {
        method: 'kubernetes' as const,
        role: 'known',
        readJwt: async () => {
          throw new Error('ENOENT: /var/run/secrets/token');
        },
      },
    ]) {
      const error = await backend({ auth })
        .get('k8s/x')
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      assert.ok(error instanceof NexusError, String(error));
      assert.equal(error.code, 'secret_backend_denied');
      assert.ok(!error.message.includes('forged') && !error.message.includes('ENOENT'), error.message);
    }
  });

  it('a 404 for a route that does not exist (wrong mount) is secret_backend_unavailable, not absent', async () => {
    const s = backend({ mount: 'no-such-mount' });
    await rejectsWithCode(s.get('x/one'), 'secret_backend_unavailable', 'no handler for route');
    await rejectsWithCode(s.healthCheck(), 'secret_backend_unavailable', 'no handler for route');
    await rejectsWithCode(s.delete('x/one'), 'secret_backend_unavailable', 'no handler for route');
    // A missing secret on the right mount (404, empty errors) is still simply absent.
    assert.equal(await backend().get('x/never-written'), null);
  });

  it('AppRole: a 403 for a valid token (policy refusal) does not log in again', async () => {
    const role = fake.addRole({ allow: ['nexus/providers/approle-ok/'] });
    const s = backend({ auth: { method: 'approle', roleId: role.roleId, secretId: role.secretId } });
    const logins = () => fake.requests.filter((r) => r.url === '/v1/auth/approle/login').length;
    const before = logins();
    await s.put('approle-ok/one', bytes('v'));
    for (let i = 0; i < 3; i++) await rejectsWithCode(s.get('elsewhere/one'), 'secret_backend_denied');
    assert.equal(logins(), before + 1, 'one login, however many policy refusals');
    assert.equal(text((await s.get('approle-ok/one'))?.value), 'v');
  });

  it('AppRole: the token replaced by a new login is revoked', async () => {
    const role = fake.addRole({ ttlSeconds: 60 });
    const s = backend({ auth: { method: 'approle', roleId: role.roleId, secretId: role.secretId } });
    await s.put('approle/revoke', bytes('v'));
    const first = [...fake.tokens.keys()].at(-1) as string;
    fake.now += 45_000;
    fake.failNext(400, 1, ['lease is not renewable'], 'POST'); // the renewal fails: a new login
    assert.equal(text((await s.get('approle/revoke'))?.value), 'v');
    assert.ok(fake.revoked.includes(first), 'the old token was revoked');
    assert.equal(fake.tokens.has(first), false);
  });

  it('AppRole: a token whose renew-self answers 403 is kept until it expires', async () => {
    const role = fake.addRole({ ttlSeconds: 60 });
    const s = backend({ auth: { method: 'approle', roleId: role.roleId, secretId: role.secretId } });
    const logins = () => fake.requests.filter((r) => r.url === '/v1/auth/approle/login').length;
    await s.put('approle/kept', bytes('v'));
    const before = logins();
    fake.renewRefused = true;
    try {
      fake.now += 45_000; // renewal due, refused: the token is still good for 15 s
      assert.equal(text((await s.get('approle/kept'))?.value), 'v');
      fake.now += 10_000;
      assert.equal(text((await s.get('approle/kept'))?.value), 'v');
      assert.equal(logins(), before, 'no new login while the token is valid');
      fake.now += 10_000; // expired: now a new login
      assert.equal(text((await s.get('approle/kept'))?.value), 'v');
      assert.equal(logins(), before + 1);
    } finally {
      fake.renewRefused = false;
    }
  });

  it('refuses a wrong AppRole secret id with secret_backend_denied', async () => {
    const role = fake.addRole();
    const s = backend({ auth: { method: 'approle', roleId: role.roleId, secretId: 'wrong' } });
    await rejectsWithCode(s.healthCheck(), 'secret_backend_denied', 'invalid role');
  });

  it('lists through GET ?list=true when the LIST verb is refused (405), once per backend', async () => {
    const s = backend();
    await s.put('verb/a/one', bytes('v'));
    const refusedBefore = fake.listVerbRefused;
    assert.deepEqual(await s.list('verb/'), ['verb/a/one']);
    assert.deepEqual(await s.list('verb/a/'), ['verb/a/one']);
    assert.equal(fake.listVerbRefused - refusedBefore, 1);
    assert.ok(fake.requests.some((r) => r.url.endsWith('/verb/?list=true') && r.status === 200));
  });

  it('stores text as a readable `value` field and other bytes as `value_base64`', async () => {
    const s = backend();
    await s.put('shape/text', bytes('client-secret'));
    await s.put('shape/bin', new Uint8Array([0xff, 0x00, 0xfe]));
    const t = await fetch(`${fake.url}/v1/secret/data/nexus/providers/shape/text`, {
      headers: { 'x-vault-token': fake.issueToken() },
    });
    assert.deepEqual(((await t.json()) as { data: { data: unknown } }).data.data, { value: 'client-secret' });
    assert.deepEqual((await s.get('shape/bin'))?.value, new Uint8Array([0xff, 0x00, 0xfe]));
  });
});
