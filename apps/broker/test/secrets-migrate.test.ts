/**
 * `nexus secrets migrate`: provider credentials from `internal` to an external backend (Vault KV
 * v2 on the FAKE server) and back, interrupted and resumed with nothing lost, each copy read back,
 * and the broker on the new backend serving the same credentials. The CLI wiring is checked with
 * a dry run and a real run.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../src/config/load.ts';
import { migrateProviderCredentials } from '../src/modules/providers/credentials-migration.ts';
import { createProvidersStore } from '../src/modules/providers/providers.store.ts';
import type { SecretBackend } from '../src/modules/secrets/secret-backend.ts';
import { secretError } from '../src/modules/secrets/secrets.errors.ts';
import { createVaultBackend } from '../src/modules/secrets/vault.backend.ts';
import { baseEnv, killAllChildren, runCli, show } from './cli-helpers.ts';
import { json, startBroker, type TestBroker } from './harness.ts';
import { FakeVault } from './secret-backends/vault-kv2.fake.ts';

after(killAllChildren);

const fake = new FakeVault();
let internal: TestBroker;
const ids: Record<string, string> = {};
const names = ['alpha', 'bravo', 'charlie', 'delta', 'echo'];

const oauth = (name: string) => ({
  profile: {
    name,
    client_id: `${name}-id`,
    client_secret: `${name}-secret`,
    auth_url: 'https://idp.example/authorize',
    token_url: 'https://idp.example/token',
  },
});
const vault = () =>
  createVaultBackend({
    kind: 'openbao',
    addr: fake.url,
    mount: 'secret',
    kvVersion: 2,
    prefix: 'nexus/providers',
    auth: { method: 'token', token: fake.issueToken() },
    backoffMs: 1,
  });

before(async () => {
  await fake.start();
  internal = await startBroker();
  for (const name of names) {
    const r = await internal.request({ method: 'POST', url: '/providers', payload: oauth(name) });
    assert.equal(r.statusCode, 201, r.body);
    ids[name] = json<{ id: string }>(r).id;
  }
  const plain = await internal.request({
    method: 'POST',
    url: '/providers',
    payload: { profile: { name: 'static-key', auth_type: 'api_key', api_base_url: 'https://api.example' } },
  });
  assert.equal(plain.statusCode, 201, plain.body);
});
after(async () => {
  await internal?.close();
  await fake.stop();
});

describe('secrets migrate', () => {
  it('a dry run writes nothing', async () => {
    const result = await migrateProviderCredentials({
      store: createProvidersStore(internal.container.db),
      from: internal.container.secrets,
      to: vault(),
      dryRun: true,
    });
    assert.equal(result.wouldCopy, 5);
    assert.equal(result.noCredentials, 1);
    assert.equal(fake.latest('nexus/providers/alpha/client_secret'), undefined);
  });

  it('is interrupted, resumed, and loses nothing; a failed write is retried by the next run', async () => {
    const store = createProvidersStore(internal.container.db);
    const controller = new AbortController();
    const first = await migrateProviderCredentials({
      store,
      from: internal.container.secrets,
      to: vault(),
      dryRun: false,
      signal: controller.signal,
      onProgress: (done) => {
        if (done === 2) controller.abort();
      },
    });
    assert.equal(first.interrupted, true);
    assert.equal(first.copied, 2);

    // The second run meets a backend that fails one write: that provider is reported, not lost.
    const real = vault();
    let puts = 0;
    const flaky: SecretBackend = {
      ...real,
      async put(path, value) {
        if (++puts === 2) throw secretError('secret_backend_unavailable', { detail: 'injected' });
        return real.put(path, value);
      },
    };
    const second = await migrateProviderCredentials({
      store,
      from: internal.container.secrets,
      to: flaky,
      dryRun: false,
    });
    assert.equal(second.interrupted, false);
    assert.equal(second.unchanged, 2);
    assert.equal(second.failed.length, 1);
    assert.match(second.failed[0]?.reason ?? '', /secret_backend_unavailable/);

    const third = await migrateProviderCredentials({
      store,
      from: internal.container.secrets,
      to: vault(),
      dryRun: false,
    });
    assert.deepEqual(
      { copied: third.copied, unchanged: third.unchanged, failed: third.failed.length },
      { copied: 1, unchanged: 4, failed: 0 },
    );
    for (const name of names) {
      assert.deepEqual(fake.latest(`nexus/providers/${name}/client_id`), { value: `${name}-id` });
      assert.deepEqual(fake.latest(`nexus/providers/${name}/client_secret`), { value: `${name}-secret` });
    }
  });

  it('the broker switched to the new backend serves the same credentials, and can migrate back', async () => {
    const external = await startBroker({
      env: {
        ...internal.env,
        SECRET_BACKEND: 'openbao',
        VAULT_ADDR: fake.url,
        VAULT_TOKEN: fake.issueToken(),
      },
    });
    try {
      for (const name of names) {
        const used = await external.container.providers.loadForUse(ids[name] as string);
        assert.equal(used.profile.client_id, `${name}-id`);
        assert.equal(used.clientSecret, `${name}-secret`);
      }
      // A provider created on the external backend has no client id in its row.
      const created = await external.request({
        method: 'POST',
        url: '/providers',
        payload: oauth('foxtrot'),
        key: internal.adminKey, // the shared database's API_KEYS
      });
      assert.equal(created.statusCode, 201, created.body);
      const foxtrot = json<{ id: string }>(created).id;
      const back = await migrateProviderCredentials({
        store: createProvidersStore(external.container.db),
        from: external.container.secrets,
        to: internal.container.secrets,
        dryRun: false,
      });
      assert.equal(back.failed.length, 0, JSON.stringify(back.failed));
      assert.equal(back.copied, 1, 'only foxtrot is new to internal');
      const used = await internal.container.providers.loadForUse(foxtrot);
      assert.equal(used.profile.client_id, 'foxtrot-id');
      assert.equal(used.clientSecret, 'foxtrot-secret');
    } finally {
      await external.close(); // drops only the unused database startBroker made for it
    }
  });

  it('with SECRET_BACKEND_FALLBACK, a provider not migrated yet is served from the old backend', async () => {
    const created = await internal.request({ method: 'POST', url: '/providers', payload: oauth('golf') });
    assert.equal(created.statusCode, 201, created.body);
    const golf = json<{ id: string }>(created).id;
    const external = await startBroker({
      env: {
        ...internal.env,
        SECRET_BACKEND: 'openbao',
        SECRET_BACKEND_FALLBACK: 'internal',
        VAULT_ADDR: fake.url,
        VAULT_TOKEN: fake.issueToken(),
      },
    });
    try {
      const before = await external.container.providers.loadForUse(golf);
      assert.equal(before.profile.client_id, 'golf-id');
      assert.equal(before.clientSecret, 'golf-secret', 'read from the fallback (internal)');
      assert.equal(fake.latest('nexus/providers/golf/client_secret'), undefined);
      // A write goes to the new backend, the client id with it; reads then find it there.
      const patched = await external.request({
        method: 'PATCH',
        url: `/providers/${golf}`,
        payload: { profile: { client_secret: 'golf-rotated' } },
        key: internal.adminKey,
      });
      assert.equal(patched.statusCode, 200, patched.body);
      assert.deepEqual(fake.latest('nexus/providers/golf/client_secret'), { value: 'golf-rotated' });
      assert.deepEqual(fake.latest('nexus/providers/golf/client_id'), { value: 'golf-id' });
      assert.equal((await external.container.providers.loadForUse(golf)).clientSecret, 'golf-rotated');
      // A delete removes the credentials from both backends.
      const deleted = await external.request({
        method: 'DELETE',
        url: `/providers/${golf}`,
        key: internal.adminKey,
      });
      assert.equal(deleted.statusCode, 200, deleted.body);
      assert.equal(fake.latest('nexus/providers/golf/client_secret'), undefined);
      assert.equal(fake.latest('nexus/providers/golf/client_id'), undefined);
      assert.equal(await internal.container.secrets.get(`providers/${golf}/client_secret`), null);
    } finally {
      await external.close();
    }
  });

  it('never overwrites a value rotated in the target: a conflict, unless forced', async () => {
    const store = createProvidersStore(internal.container.db);
    const target = vault();
    await target.put('alpha/client_secret', new TextEncoder().encode('alpha-rotated'));
    const run = (force: boolean) =>
      migrateProviderCredentials({
        store,
        from: internal.container.secrets,
        to: vault(),
        dryRun: false,
        force,
      });
    const refused = await run(false);
    assert.equal(refused.conflicts, 1);
    assert.deepEqual(
      refused.failed.map((f) => f.name),
      ['alpha'],
    );
    assert.match(
      refused.failed[0]?.reason ?? '',
      /^conflict: the target already holds a different client secret/,
    );
    assert.deepEqual(fake.latest('nexus/providers/alpha/client_secret'), { value: 'alpha-rotated' });
    const forced = await run(true);
    assert.deepEqual(
      { copied: forced.copied, conflicts: forced.conflicts, failed: forced.failed.length },
      {
        copied: 1,
        conflicts: 0,
        failed: 0,
      },
    );
    assert.deepEqual(fake.latest('nexus/providers/alpha/client_secret'), { value: 'alpha-secret' });
  });

  it('a provider created on the target backend after the switch counts as unchanged', async () => {
    let hotelId = '';
    const external = await startBroker({
      env: {
        ...internal.env,
        SECRET_BACKEND: 'openbao',
        VAULT_ADDR: fake.url,
        VAULT_TOKEN: fake.issueToken(),
      },
    });
    try {
      const created = await external.request({
        method: 'POST',
        url: '/providers',
        payload: oauth('hotel'),
        key: internal.adminKey,
      });
      assert.equal(created.statusCode, 201, created.body);
      hotelId = json<{ id: string }>(created).id;
    } finally {
      await external.close();
    }
    const result = await migrateProviderCredentials({
      store: createProvidersStore(internal.container.db),
      from: internal.container.secrets,
      to: vault(),
      dryRun: false,
    });
    assert.deepEqual(result.failed, []);
    assert.equal(result.copied, 0);
    assert.deepEqual(fake.latest('nexus/providers/hotel/client_secret'), { value: 'hotel-secret' });
    const gone = await internal.request({ method: 'DELETE', url: `/providers/${hotelId}` });
    assert.equal(gone.statusCode, 200, gone.body); // the CLI test below migrates to another prefix
  });

  it('refuses a fallback that is the same backend (or the same Vault variables)', () => {
    for (const [primary, fallback] of [
      ['internal', 'internal'],
      ['openbao', 'hashicorp-vault'],
    ] as const) {
      assert.throws(
        () =>
          loadConfig({
            SECRET_BACKEND: primary,
            SECRET_BACKEND_FALLBACK: fallback,
            VAULT_ADDR: fake.url,
            VAULT_TOKEN: 't',
          }),
        /SECRET_BACKEND_FALLBACK: must be a different backend from SECRET_BACKEND/,
      );
    }
  });

  it('runs from the CLI: --dry-run, then a real run, with the switch instruction', async () => {
    const env = {
      ...baseEnv(),
      ...internal.env,
      VAULT_ADDR: fake.url,
      VAULT_TOKEN: fake.issueToken(),
      VAULT_PATH_PREFIX: 'cli/providers',
    };
    const dry = await runCli(['secrets', 'migrate', '--to', 'openbao', '--dry-run', '--json'], env, 20_000);
    assert.equal(dry.code, 0, show(dry));
    const planned = JSON.parse(dry.stdout) as { wouldCopy: number; dry_run: boolean };
    assert.equal(planned.dry_run, true);
    assert.equal(planned.wouldCopy, 6);
    const run = await runCli(['secrets', 'migrate', '--to', 'openbao'], env, 20_000);
    assert.equal(run.code, 0, show(run));
    assert.match(run.stdout, /internal → openbao: 7 provider\(s\), 6 copied/);
    assert.match(run.stdout, /Set SECRET_BACKEND=openbao and restart/);
    assert.deepEqual(fake.latest('cli/providers/alpha/client_secret'), { value: 'alpha-secret' });
    const missing = await runCli(
      ['secrets', 'migrate', '--to', 'openbao'],
      { ...env, VAULT_ADDR: '' },
      20_000,
    );
    assert.equal(missing.code, 2, show(missing));
    assert.match(missing.stderr, /VAULT_ADDR: required/);
  });
});
