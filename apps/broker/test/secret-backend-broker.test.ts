/**
 * SECRET_BACKEND end to end: the configuration rules, the start-up check of `nexus serve`, `nexus
 * doctor`, and where provider credentials go with an external backend (issue #5): `client_id`
 * and `client_secret` at `<prefix>/<provider name>/…`, moved on rename, removed on delete, and
 * nothing of them in the provider row. The backend is Vault KV v2 on the FAKE server
 * (secret-backends/vault-kv2.fake.ts); the backends themselves are tested in secret-backends/.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../src/config/load.ts';
import { baseEnv, envKeys, killAllChildren, migrateDatabase, runCli, show } from './cli-helpers.ts';
import { createTestDatabase, json, startBroker, type TestBroker, type TestDatabase } from './harness.ts';
import { FakeVault } from './secret-backends/vault-kv2.fake.ts';

after(killAllChildren);

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env, '/srv');
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return [...error.problems];
  }
  assert.fail('expected a ConfigError');
}

describe('SECRET_BACKEND configuration', () => {
  it('names every missing variable of the chosen backend, with the fix', () => {
    assert.deepEqual(problemsOf({ SECRET_BACKEND: 'openbao' }), [
      'VAULT_ADDR: required with SECRET_BACKEND=openbao: the server URL, e.g. https://vault.example.com:8200',
      'VAULT_TOKEN: required with SECRET_BACKEND=openbao, or set VAULT_ROLE_ID and VAULT_SECRET_ID for AppRole, or VAULT_K8S_ROLE for Kubernetes auth',
    ]);
    assert.deepEqual(problemsOf({ SECRET_BACKEND: 'aws-secrets-manager' }), [
      'AWS_REGION: required with SECRET_BACKEND=aws-secrets-manager, e.g. us-east-1',
    ]);
    assert.deepEqual(problemsOf({ SECRET_BACKEND: 'gcp-secret-manager', GCP_SECRET_PREFIX: 'a/b' }), [
      'GCP_SECRET_PREFIX: Invalid string: must match pattern /^[A-Za-z0-9-]{1,64}$/ (got "a/b")',
      'GCP_PROJECT_ID: required with SECRET_BACKEND=gcp-secret-manager: the project that holds the secrets',
    ]);
    const both = problemsOf({
      SECRET_BACKEND: 'hashicorp-vault',
      VAULT_ADDR: 'https://vault.example',
      VAULT_TOKEN: 'hvs.secret-token-value',
      VAULT_ROLE_ID: 'r',
    });
    assert.deepEqual(both, [
      'VAULT_TOKEN: set one way to log in to Vault: VAULT_TOKEN, or VAULT_ROLE_ID with VAULT_SECRET_ID (AppRole), or VAULT_K8S_ROLE (Kubernetes)',
    ]);
    assert.ok(!both.join().includes('hvs.secret-token-value'), 'a token is never echoed');
    assert.match(
      problemsOf({ SECRET_BACKEND: 'vault' })[0] ?? '',
      /^SECRET_BACKEND: must be one of internal, hashicorp-vault, openbao/,
    );
  });

  it('builds each backend configuration, secrets redacted', () => {
    const vault = loadConfig({
      SECRET_BACKEND: 'hashicorp-vault',
      VAULT_ADDR: 'https://vault.example:8200/',
      VAULT_ROLE_ID: 'role',
      VAULT_SECRET_ID: 'secret-id',
      VAULT_NAMESPACE: 'team-a',
    }).secretBackend;
    assert.equal(vault.kind, 'hashicorp-vault');
    assert.ok(vault.kind === 'hashicorp-vault');
    assert.equal(vault.addr, 'https://vault.example:8200');
    assert.equal(vault.kvVersion, 2);
    assert.equal(vault.prefix, 'nexus/providers');
    assert.equal(vault.auth.method, 'approle');
    assert.ok(!JSON.stringify(vault).includes('secret-id'));
    assert.deepEqual(
      loadConfig({ SECRET_BACKEND: 'aws-secrets-manager', AWS_REGION: 'eu-west-1' }).secretBackend,
      {
        kind: 'aws-secrets-manager',
        region: 'eu-west-1',
        prefix: 'nexus/providers',
        endpoint: undefined,
      },
    );
    assert.match(
      problemsOf({
        NEXUS_ENV: 'production',
        SECRET_BACKEND: 'openbao',
        VAULT_ADDR: 'http://vault.internal',
        VAULT_TOKEN: 't',
      }).join('\n'),
      /VAULT_ADDR: must use https in production/,
    );
  });
});

describe('external secret backend in the broker (FAKE Vault KV v2)', () => {
  const fake = new FakeVault();
  let broker: TestBroker;
  before(async () => {
    await fake.start();
    broker = await startBroker({
      env: { SECRET_BACKEND: 'openbao', VAULT_ADDR: fake.url, VAULT_TOKEN: fake.issueToken() },
    });
  });
  after(async () => {
    await broker?.close();
    await fake.stop();
  });

  const profile = (name: string, extra: Record<string, unknown> = {}) => ({
    profile: {
      name,
      client_id: `${name}-client-id`,
      client_secret: `${name}-client-secret`,
      auth_url: 'https://idp.example/authorize',
      token_url: 'https://idp.example/token',
      scopes: ['read'],
      ...extra,
    },
  });
  const rowOf = (id: string) =>
    broker.container.db.kysely
      .selectFrom('providers')
      .select('profile')
      .where('id', '=', id)
      .executeTakeFirstOrThrow();

  it('keeps client_id and client_secret at <prefix>/<name>/… and only metadata in the row', async () => {
    const created = await broker.request({ method: 'POST', url: '/providers', payload: profile('github') });
    assert.equal(created.statusCode, 201, created.body);
    const { id } = json<{ id: string }>(created);
    assert.deepEqual(fake.latest('nexus/providers/github/client_id'), { value: 'github-client-id' });
    assert.deepEqual(fake.latest('nexus/providers/github/client_secret'), { value: 'github-client-secret' });
    const row = (await rowOf(id)).profile;
    assert.ok(!row.includes('github-client-id') && !row.includes('github-client-secret'), row);
    const read = json(await broker.request({ method: 'GET', url: `/providers/${id}` }));
    assert.equal(read.client_id, 'github-client-id');
    assert.equal(read.has_client_secret, true);
    assert.equal('has_client_id' in read, false);
    const forUse = await broker.container.providers.loadForUse(id);
    assert.equal(forUse.clientSecret, 'github-client-secret');
    assert.equal(forUse.profile.client_id, 'github-client-id');
  });

  it('refuses a duplicate name without touching the existing credentials', async () => {
    const dup = await broker.request({
      method: 'POST',
      url: '/providers',
      payload: profile('github', { client_id: 'intruder', client_secret: 'intruder' }),
    });
    assert.equal(dup.statusCode, 409);
    assert.deepEqual(fake.latest('nexus/providers/github/client_secret'), { value: 'github-client-secret' });
    assert.deepEqual(fake.latest('nexus/providers/github/client_id'), { value: 'github-client-id' });
  });

  it('moves the credentials on rename, updates a changed client_id, removes them on delete', async () => {
    const { id } = json<{ id: string }>(
      await broker.request({ method: 'POST', url: '/providers', payload: profile('gitlab') }),
    );
    const renamed = await broker.request({
      method: 'PATCH',
      url: `/providers/${id}`,
      payload: { profile: { name: 'gitlab-eu', client_id: 'new-client-id' } },
    });
    assert.equal(renamed.statusCode, 200, renamed.body);
    assert.equal(json(renamed).client_id, 'new-client-id');
    assert.equal(fake.latest('nexus/providers/gitlab/client_id'), undefined);
    assert.equal(fake.latest('nexus/providers/gitlab/client_secret'), undefined);
    assert.deepEqual(fake.latest('nexus/providers/gitlab-eu/client_id'), { value: 'new-client-id' });
    assert.deepEqual(fake.latest('nexus/providers/gitlab-eu/client_secret'), {
      value: 'gitlab-client-secret',
    });
    assert.equal((await broker.container.providers.loadForUse(id)).clientSecret, 'gitlab-client-secret');
    const deleted = await broker.request({ method: 'DELETE', url: `/providers/${id}` });
    assert.equal(deleted.statusCode, 200, deleted.body);
    assert.equal(fake.latest('nexus/providers/gitlab-eu/client_id'), undefined);
    assert.equal(fake.latest('nexus/providers/gitlab-eu/client_secret'), undefined);
  });

  it('a rename whose copy fails leaves the provider and its credentials under the old name', async () => {
    const { id } = json<{ id: string }>(
      await broker.request({ method: 'POST', url: '/providers', payload: profile('bitbucket') }),
    );
    fake.failNext(403, 1, ['permission denied'], 'POST');
    const renamed = await broker.request({
      method: 'PATCH',
      url: `/providers/${id}`,
      payload: { profile: { name: 'bitbucket-eu' } },
    });
    assert.equal(renamed.statusCode, 503, renamed.body);
    assert.equal(json(await broker.request({ method: 'GET', url: `/providers/${id}` })).name, 'bitbucket');
    const used = await broker.container.providers.loadForUse(id);
    assert.equal(used.profile.client_id, 'bitbucket-client-id');
    assert.equal(used.clientSecret, 'bitbucket-client-secret');
  });

  it('a rename whose new secret cannot be stored is reverted with the credentials at the old name', async () => {
    const { id } = json<{ id: string }>(
      await broker.request({ method: 'POST', url: '/providers', payload: profile('gitea') }),
    );
    const secrets = broker.container.secrets as { put: typeof broker.container.secrets.put };
    const realPut = secrets.put;
    secrets.put = async (path, value) => {
      if (path === 'gitea-eu/client_secret' && new TextDecoder().decode(value) === 'rotated')
        throw new Error('injected: the new secret is refused');
      return realPut(path, value);
    };
    try {
      const renamed = await broker.request({
        method: 'PATCH',
        url: `/providers/${id}`,
        payload: { profile: { name: 'gitea-eu', client_secret: 'rotated' } },
      });
      assert.equal(renamed.statusCode, 500, renamed.body);
    } finally {
      secrets.put = realPut;
    }
    assert.equal(json(await broker.request({ method: 'GET', url: `/providers/${id}` })).name, 'gitea');
    assert.deepEqual(fake.latest('nexus/providers/gitea/client_secret'), { value: 'gitea-client-secret' });
    assert.deepEqual(fake.latest('nexus/providers/gitea/client_id'), { value: 'gitea-client-id' });
    assert.equal(fake.latest('nexus/providers/gitea-eu/client_secret'), undefined);
    assert.equal((await broker.container.providers.loadForUse(id)).clientSecret, 'gitea-client-secret');
  });

  it('loadForUse answers 503 secret_backend_unavailable when a stored credential is missing', async () => {
    const { id } = json<{ id: string }>(
      await broker.request({ method: 'POST', url: '/providers', payload: profile('jira') }),
    );
    await broker.container.secrets.delete('jira/client_secret');
    await assert.rejects(
      broker.container.providers.loadForUse(id),
      (error: { code?: string; status?: number }) => {
        assert.equal(error.code, 'secret_backend_unavailable');
        assert.equal(error.status, 503);
        return true;
      },
    );
  });

  it("a delete racing a create of the same name never removes the new provider's credentials", async () => {
    const { id } = json<{ id: string }>(
      await broker.request({ method: 'POST', url: '/providers', payload: profile('linear') }),
    );
    const secrets = broker.container.secrets as { delete: typeof broker.container.secrets.delete };
    const realDelete = secrets.delete;
    let release = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let reached = () => {};
    const paused = new Promise<void>((resolve) => {
      reached = resolve;
    });
    secrets.delete = async (path) => {
      reached();
      await gate;
      return realDelete(path);
    };
    let created: Awaited<ReturnType<typeof broker.request>> | undefined;
    try {
      const deleting = broker.request({ method: 'DELETE', url: `/providers/${id}` });
      await paused;
      const creating = broker
        .request({
          method: 'POST',
          url: '/providers',
          payload: profile('linear', { client_secret: 'second-linear-secret' }),
        })
        .then((r) => {
          created = r;
          return r;
        });
      await new Promise((resolve) => setTimeout(resolve, 300));
      secrets.delete = realDelete;
      release();
      assert.equal((await deleting).statusCode, 200);
      assert.equal((await creating).statusCode, 201, created?.body);
    } finally {
      secrets.delete = realDelete;
      release();
    }
    assert.deepEqual(fake.latest('nexus/providers/linear/client_secret'), { value: 'second-linear-secret' });
    assert.deepEqual(fake.latest('nexus/providers/linear/client_id'), { value: 'linear-client-id' });
  });

  it("answers 503 with a stable code when the backend refuses, keeping Vault's text in the log only", async () => {
    fake.failNext(403, 1, ['1 error occurred:\n\t* permission denied on nexus/providers/slack\n\n'], 'POST');
    const refused = await broker.request({ method: 'POST', url: '/providers', payload: profile('slack') });
    assert.equal(refused.statusCode, 503, refused.body);
    const body = json(refused);
    assert.equal(body.error, 'secret_backend_denied');
    assert.ok(!refused.body.includes('permission denied'), refused.body);
    assert.ok(broker.logs.some((line) => line.includes('permission denied on nexus/providers/slack')));
    // The half-created provider is gone: the name is free again.
    const retry = await broker.request({ method: 'POST', url: '/providers', payload: profile('slack') });
    assert.equal(retry.statusCode, 201, retry.body);
  });
});

describe('start-up check and doctor', { timeout: 60_000 }, () => {
  const fake = new FakeVault();
  let db: TestDatabase;
  let env: Record<string, string>;
  before(async () => {
    await fake.start();
    db = await createTestDatabase();
    env = { ...baseEnv(), ...db.env, ...envKeys(), SECRET_BACKEND: 'openbao', VAULT_ADDR: fake.url };
    await migrateDatabase({ ...env, VAULT_TOKEN: 'x' });
  });
  after(async () => {
    await fake.stop();
    await db.drop();
  });

  it('`nexus serve` stops with the variables to check when the backend is unreachable', async () => {
    const result = await runCli(
      ['serve'],
      { ...env, VAULT_ADDR: 'http://127.0.0.1:1', VAULT_TOKEN: 'hvs.do-not-print' },
      20_000,
    );
    assert.equal(result.code, 2, show(result));
    assert.match(result.stderr, /Secret backend openbao \(SECRET_BACKEND\) failed its start-up check/);
    assert.match(result.stderr, /VAULT_ADDR/);
    assert.ok(!`${result.stdout}${result.stderr}`.includes('hvs.do-not-print'));
  });

  it('`nexus serve` stops on a refused token, and says to unseal a sealed server', async () => {
    const refused = await runCli(['serve'], { ...env, VAULT_TOKEN: 'hvs.not-issued' }, 20_000);
    assert.equal(refused.code, 2, show(refused));
    assert.match(refused.stderr, /refused the broker's credentials/);
    fake.sealed = true;
    try {
      const sealed = await runCli(['serve'], { ...env, VAULT_TOKEN: fake.issueToken() }, 20_000);
      assert.equal(sealed.code, 2, show(sealed));
      assert.match(sealed.stderr, /sealed/);
      assert.match(sealed.stderr, /unseal/);
    } finally {
      fake.sealed = false;
    }
  });

  it('`nexus doctor` reports the backend health with a fix', async () => {
    const good = await runCli(['doctor'], { ...env, VAULT_TOKEN: fake.issueToken() });
    assert.match(good.stdout, /^\[ ok \] secret backend: openbao reachable$/m, show(good));
    const bad = await runCli(['doctor', '--json'], {
      ...env,
      VAULT_TOKEN: fake.issueToken({ allow: ['other/'] }),
    });
    assert.equal(bad.code, 1, show(bad));
    const finding = (
      JSON.parse(bad.stdout) as { findings?: { check: string; level: string; fix?: string }[] }
    ).findings?.find((f) => f.check === 'secret backend');
    assert.equal(finding?.level, 'fail', bad.stdout);
    assert.match(finding?.fix ?? '', /policy allows read, write, list and delete/);
  });
});
