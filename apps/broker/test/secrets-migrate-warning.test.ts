/**
 * `nexus secrets migrate --to KIND` copies provider credentials only: connections that keep their
 * credentials in the secret backend (TOKEN_STORE=secret-backend) are not copied, and the command
 * says how many there are and what to do (`countInSecretBackend`, connections/maintenance.ts).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { baseEnv, killAllChildren, runCli, show } from './cli-helpers.ts';
import { Scenario } from './oauth-scenario.ts';
import { FakeVault } from './secret-backends/vault-kv2.fake.ts';

after(killAllChildren);

describe('secrets migrate --to with connection credentials in the backend', { timeout: 120_000 }, () => {
  const s = new Scenario();
  const fake = new FakeVault();
  before(async () => {
    await fake.start();
    await s.start();
  });
  after(async () => {
    await s.close();
    await fake.stop();
  });

  const migrate = (tokenStore: string) =>
    runCli(
      ['secrets', 'migrate', '--to', 'openbao', '--dry-run'],
      {
        ...baseEnv(),
        ...s.broker.env,
        TOKEN_STORE: tokenStore,
        VAULT_ADDR: fake.url,
        VAULT_TOKEN: fake.issueToken(),
      },
      30_000,
    );

  it('says nothing while connection credentials are in the database', async () => {
    await s.connect('idp-discovered', 'w-1');
    const run = await migrate('database');
    assert.equal(run.code, 0, show(run));
    assert.doesNotMatch(run.stderr, /connection\(s\) keep their credentials/);
  });

  it('counts the connections whose credentials are in the backend and says how to move them', async () => {
    const moved = await runCli(
      ['secrets', 'migrate', '--tokens', '--json'],
      { ...baseEnv(), ...s.broker.env, TOKEN_STORE: 'secret-backend' },
      30_000,
    );
    assert.equal(moved.code, 0, show(moved));
    await s.connect('idp-discovered', 'w-2'); // the broker (TOKEN_STORE=database) keeps it in the row
    const run = await migrate('secret-backend');
    assert.equal(run.code, 0, show(run));
    assert.match(
      run.stderr,
      /warning: 1 connection\(s\) keep their credentials in internal; --to does not copy them\. Move them into the database first/,
    );
  });
});
