/**
 * KEY_PROVIDER=transit end to end through the CLI: keys made by Vault Transit and printed only
 * wrapped, a broker started on them that stores and serves a credential, the Transit key rotated
 * and every key re-wrapped without touching stored secrets, and each failure stopping start-up
 * with the variable and the fix. Transit is the FAKE Vault's (vault-kv2.fake.ts): no server that
 * can be installed here has a Transit engine (RustyVault does not).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { baseEnv, freePort, killAllChildren, runCli, spawnCli } from './cli-helpers.ts';
import { createTestDatabase, type TestDatabase } from './harness.ts';
import { FakeVault } from './secret-backends/vault-kv2.fake.ts';

after(killAllChildren);

describe('KEY_PROVIDER=transit (FAKE Vault Transit)', { timeout: 120_000 }, () => {
  const fake = new FakeVault();
  let db: TestDatabase;
  let vault: Record<string, string>;
  const adminKey = `nxtest_${'t'.repeat(40)}`;

  before(async () => {
    await fake.start();
    fake.addTransitKey('nexus');
    db = await createTestDatabase();
    vault = {
      KEY_PROVIDER: 'transit',
      VAULT_ADDR: fake.url,
      VAULT_TOKEN: fake.issueToken({ allow: ['transit/'] }),
    };
  });
  after(async () => {
    await db.drop();
    await fake.stop();
  });

  const generate = async () => {
    const r = await runCli(['keys', 'generate', '--transit'], { ...baseEnv(), ...vault });
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim();
  };

  async function serve(keys: Record<string, string>) {
    const port = await freePort();
    const env = {
      ...baseEnv(),
      ...db.env,
      ...vault,
      ...keys,
      NEXUS_ENV: 'test',
      HOST: '127.0.0.1',
      PORT: String(port),
      API_KEYS: `ops:${adminKey}`,
      LOG_LEVEL: 'info',
    };
    const child = spawnCli(['serve'], env);
    await child.waitFor('stdout', /"msg":"nexus ready"/, 20_000);
    return { child, base: `http://127.0.0.1:${port}` };
  }

  const call = (base: string, method: string, path: string, body?: unknown) =>
    fetch(`${base}${path}`, {
      method,
      headers: { 'x-api-key': adminKey, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });

  it('serves on Transit-wrapped keys, and keeps serving after the Transit key is rotated and the keys re-wrapped', async () => {
    const keys = {
      ENCRYPTION_KEY: await generate(),
      STATE_KEY: await generate(),
      USER_SECRETS_KEY: await generate(),
    };
    for (const value of Object.values(keys))
      assert.match(value, /^vault:v1:[A-Za-z0-9+/]+=*$/, 'printed only wrapped');

    const first = await serve(keys);
    assert.equal(
      (await call(first.base, 'POST', '/providers', { profile: { name: 'crm', auth_type: 'api_key' } }))
        .status,
      201,
    );
    const started = (await (
      await call(first.base, 'POST', '/v1/request-connection', {
        user_id: 'u1',
        provider_name: 'crm',
        return_url: 'http://localhost:3000/done',
      })
    ).json()) as { state: string; connection_id: string };
    const captured = await call(first.base, 'POST', '/v1/capture-credential', {
      state: started.state,
      credentials: { api_key: 'sk_transit_123' },
    });
    assert.equal(captured.status, 200, await captured.clone().text());
    first.child.kill('SIGTERM');
    await first.child.wait();

    fake.rotateTransitKey('nexus');
    const rewrap = await runCli(['keys', 'transit-rewrap', '--json'], { ...baseEnv(), ...vault, ...keys });
    assert.equal(rewrap.code, 0, rewrap.stderr);
    const rewrapped = JSON.parse(rewrap.stdout) as Record<string, string>;
    assert.deepEqual(Object.keys(rewrapped).sort(), ['ENCRYPTION_KEY', 'STATE_KEY', 'USER_SECRETS_KEY']);
    for (const [name, value] of Object.entries(rewrapped)) {
      assert.match(value, /^vault:v2:/, `${name} re-wrapped under the new version`);
      assert.notEqual(value, keys[name as keyof typeof keys]);
    }

    const second = await serve(rewrapped);
    const token = await call(second.base, 'GET', `/v1/token/${started.connection_id}`);
    assert.equal(token.status, 200, 'the same keys: what was stored before the rotation opens');
    assert.deepEqual(((await token.json()) as { credentials: unknown }).credentials, {
      api_key: 'sk_transit_123',
    });
    second.child.kill('SIGTERM');
    await second.child.wait();
  });

  it('stops at start-up, naming the variable and the fix, when a key cannot be unwrapped', async () => {
    const state = await generate();
    const env = { ...baseEnv(), ...db.env, NEXUS_ENV: 'test' };
    const notWrapped = await runCli(['serve'], {
      ...env,
      ...vault,
      ENCRYPTION_KEY: 'aGVsbG8=',
      STATE_KEY: state,
    });
    assert.equal(notWrapped.code, 2);
    assert.match(notWrapped.stderr, /ENCRYPTION_KEY: with KEY_PROVIDER=transit, a Transit ciphertext/);

    const forged = `vault:v1:${Buffer.alloc(60, 7).toString('base64')}`;
    const refused = await runCli(['serve'], { ...env, ...vault, ENCRYPTION_KEY: forged, STATE_KEY: state });
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /ENCRYPTION_KEY: Transit could not use it with key "nexus"/);

    const denied = await runCli(['serve'], {
      ...env,
      ...vault,
      VAULT_TOKEN: fake.issueToken({ allow: ['nexus/providers/'] }),
      ENCRYPTION_KEY: state,
      STATE_KEY: state,
    });
    assert.equal(denied.code, 2);
    assert.match(denied.stderr, /permission denied/);

    const down = await runCli(['serve'], {
      ...env,
      ...vault,
      VAULT_ADDR: 'http://127.0.0.1:1',
      ENCRYPTION_KEY: state,
      STATE_KEY: state,
    });
    assert.equal(down.code, 2);
    assert.match(down.stderr, /could not be used .*check VAULT_ADDR/);
    for (const r of [notWrapped, refused, denied, down])
      assert.ok(!r.stderr.includes(vault.VAULT_TOKEN!), 'no token in errors');
  });
});
