/**
 * `kill -9` during `nexus keys rewrap`, then run it again (issue "Refresh you can trust"): the
 * rerun completes and nothing is lost. Every kind of sealed data is there (provider secrets and
 * many secrets in secret_store, captured connection credentials, a consent flow's verifier, a
 * webhook secret, the agent signing key, user secrets under their own ring), both rings rotated.
 * The run is killed with SIGKILL part-way through (one secret_store row stalls its update:
 * `blockSecretUpdate`), so the signing key, the webhook and the user secrets are all still under
 * the old keys when it dies. Afterwards the new keys alone open every ciphertext, to its original
 * value. SQLite and PostgreSQL.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { sql } from 'kysely';
import { keyIdOfCiphertext, open } from '../src/crypto/envelope.ts';
import { readKeyFile, writeKeyFile } from '../src/crypto/key-file.ts';
import { createKeyRing, keyIdOf } from '../src/crypto/keyring.ts';
import { migrate } from '../src/db/migrate.ts';
import { isBackendMarker } from '../src/modules/connections/credential-store.ts';
import { ciphertextKeyUsage, ENCRYPTED_COLUMNS } from '../src/modules/keys/rewrap.ts';
import {
  appFor,
  baseEnv,
  blockSecretUpdate,
  killAllChildren,
  runCli,
  show,
  spawnCli,
} from './cli-helpers.ts';
import { createTestDatabase, json, type TestDatabase } from './harness.ts';

const pathOf = (i: number) => `rewrap/secret-${String(i).padStart(4, '0')}`;
const owner = { userId: 'kill-user', zone: 'default' };
const ctx = { actor: 'test' };

describe('kill -9 during keys rewrap, then rerun', { timeout: 240_000 }, () => {
  let db: TestDatabase;
  let env: Record<string, string>;
  let keyFile: string;
  const adminKey = `kill-admin-${randomBytes(12).toString('hex')}`;
  beforeEach(async () => {
    db = await createTestDatabase();
    keyFile = join(db.dataDir, 'ring', 'keys.json');
    env = {
      ...baseEnv(),
      ...db.env,
      NEXUS_ENV: 'test',
      BASE_URL: 'https://nexus.example',
      NEXUS_KEY_FILE: keyFile,
      API_KEYS: `ops:${adminKey}`,
      RATE_LIMIT_ENABLED: 'false',
      // A capture held for the app's confirmation (decision 0017) is sealed data too.
      NEXUS_CONNECT_VERIFIER_URL: 'http://localhost:3000/verify',
    };
    const generated = await runCli(['keys', 'generate', '--file', keyFile], env);
    assert.equal(generated.code, 0, show(generated));
  });
  afterEach(async () => {
    killAllChildren();
    await db.drop();
  });

  /** Sealed data of every kind, written by the broker itself; the values to find again. */
  async function writeEverything() {
    const secrets = new Map<string, Buffer>();
    const users = new Map<string, string>();
    const broker = await appFor(env);
    try {
      await migrate(broker.container.db);
      const inject = (method: 'GET' | 'POST', url: string, payload?: unknown, auth = true) =>
        broker.app.inject({
          method,
          url,
          payload: payload as object,
          headers: auth ? { 'x-api-key': adminKey } : {},
        });
      for (const profile of [
        {
          name: 'oauthy',
          client_id: 'c',
          client_secret: 'provider-secret',
          auth_url: 'https://i.example/a',
          token_url: 'https://i.example/t',
        },
        { name: 'static', auth_type: 'api_key' },
      ])
        assert.equal((await inject('POST', '/providers', { profile })).statusCode, 201);
      const consent = await inject('POST', '/v1/request-connection', {
        user_id: 'u',
        provider_name: 'oauthy',
        return_url: 'http://localhost:3000/done',
      });
      assert.equal(consent.statusCode, 200, consent.body);
      const started = await inject('POST', '/v1/request-connection', {
        user_id: 'u',
        provider_name: 'static',
        return_url: 'http://localhost:3000/done',
      });
      const captured = await inject(
        'POST',
        '/v1/capture-credential',
        { state: json<{ state: string }>(started).state, credentials: { api_key: 'sk_captured' } },
        false,
      );
      assert.equal(captured.statusCode, 200, captured.body);
      const toConfirm = await inject('POST', '/v1/request-connection', {
        user_id: 'u2',
        provider_name: 'static',
        return_url: 'http://localhost:3000/done',
        verify: true,
      });
      assert.equal(toConfirm.statusCode, 200, toConfirm.body);
      const held = await inject(
        'POST',
        '/v1/capture-credential',
        { state: json<{ state: string }>(toConfirm).state, credentials: { api_key: 'sk_held' } },
        false,
      );
      assert.equal(held.statusCode, 200, held.body);
      const hook = await inject('POST', '/admin/v1/webhooks', { url: 'https://hooks.example/in' });
      assert.equal(hook.statusCode, 201, hook.body);
      const agent = await inject('POST', '/admin/v1/agents', { agent_id: 'kill-agent', allowed_scopes: [] });
      assert.equal(agent.statusCode, 201, agent.body);
      await broker.container.signingKeys.signer();
      for (let i = 0; i < 300; i++) {
        const value = randomBytes(20 + (i % 13));
        secrets.set(pathOf(i), value);
        await broker.container.secrets.put(pathOf(i), value);
      }
      for (let i = 0; i < 5; i++) {
        const value = `user-value-${i}-${randomBytes(4).toString('hex')}`;
        users.set(`token-${i}`, value);
        await broker.container.userSecrets.put(ctx, owner, { name: `token-${i}`, value });
      }
    } finally {
      await broker.close();
    }
    return { secrets, users };
  }

  it('the rerun finishes, the new keys alone open everything, nothing is left under the old keys', async () => {
    const { secrets, users } = await writeEverything();
    for (const args of [
      ['keys', 'rotate'],
      ['keys', 'rotate', '--user-secrets'],
    ]) {
      const rotated = await runCli(args, env);
      assert.equal(rotated.code, 0, show(rotated));
    }
    const material = readKeyFile(keyFile, true);
    const newKid = keyIdOf(material.encryptionKeys[0]!.reveal());
    const oldKid = keyIdOf(material.encryptionKeys[1]!.reveal());
    const oldUserKid = keyIdOf(material.userSecretsKeys![1]!.reveal());
    // Doctor sees every kind under the old keys, user secrets included (read through the backend):
    // 300 secrets, 5 user-secret versions (their outer envelope), the provider's client secret, the
    // captured credentials, a capture held for confirmation, the verifier, the webhook secret and
    // the signing key.
    const before = await runCli(['doctor'], env, 30_000);
    assert.match(
      before.stdout,
      /^\[WARN\] ciphertexts: 311 stored secret\(s\) still use older key /m,
      show(before),
    );
    assert.match(
      before.stdout,
      new RegExp(
        `^\\[WARN\\] ciphertexts: 5 stored user secret\\(s\\) still use older key ${oldUserKid}$`,
        'm',
      ),
      show(before),
    );

    // Row 150 of secret_store stalls (SQLite: ~30 s of work inside the writer's transaction).
    const blocker = await blockSecretUpdate(db, pathOf(149), 3e8);
    const run = spawnCli(['keys', 'rewrap', '--batch-size', '1'], env);
    try {
      await run.waitFor('stderr', /^rewrap: [1-9]\d% \(\d+\/\d+\)$/m, 30_000);
      run.kill('SIGKILL');
      const killed = await run.wait();
      assert.equal(killed.signal, 'SIGKILL', show(killed));
      assert.doesNotMatch(killed.stdout, /re-encrypted/, 'it finished before it could be killed');
    } finally {
      run.kill('SIGKILL');
      await blocker.release();
    }
    // Killed part-way: both keys in use, the later tables not reached yet.
    const { container: midway, close: closeMidway } = await appFor(env);
    try {
      const usage = await ciphertextKeyUsage(midway.db);
      assert.ok((usage.get(newKid) ?? 0) > 0 && (usage.get(oldKid) ?? 0) > 0, JSON.stringify([...usage]));
      const signing = await midway.db.kysely.selectFrom('signing_keys').select('private_key').execute();
      assert.equal(keyIdOfCiphertext(signing[0]!.private_key), oldKid);
    } finally {
      await closeMidway();
    }

    const rerun = await runCli(['keys', 'rewrap'], env, 60_000);
    assert.equal(rerun.code, 0, show(rerun));
    assert.match(
      rerun.stdout,
      /^User secrets under k[0-9a-f]{16}: 5 re-sealed, 0 already current, 0 failed\.$/m,
    );
    assert.match(
      rerun.stdout,
      new RegExp(`^Primary key ${newKid}: \\d+ re-encrypted, \\d+ already current, 0 failed\\.$`, 'm'),
    );

    // The old keys leave the file: the new ones alone must do.
    writeKeyFile(keyFile, {
      ...material,
      encryptionKeys: material.encryptionKeys.slice(0, 1),
      userSecretsKeys: material.userSecretsKeys!.slice(0, 1),
    });
    const newOnly = createKeyRing(material.encryptionKeys.slice(0, 1));
    const { app, container, close } = await appFor(env);
    try {
      // Every sealed column, every row: opens with the new key alone.
      for (const col of ENCRYPTED_COLUMNS) {
        const rows = await sql<{
          id: string;
          value: Uint8Array;
        }>`SELECT ${sql.ref(col.idColumn)} AS id, ${sql.ref(col.column)} AS value FROM ${sql.table(col.table)} WHERE ${sql.ref(col.column)} IS NOT NULL`.execute(
          container.db.kysely,
        );
        assert.ok(rows.rows.length > 0, `${col.table} has sealed rows`);
        for (const row of rows.rows) {
          if (isBackendMarker(row.value)) continue;
          assert.equal(keyIdOfCiphertext(row.value), newKid, `${col.table} ${row.id}`);
          assert.doesNotThrow(() => open(newOnly, row.value, col.binding(row.id)), `${col.table} ${row.id}`);
        }
      }
      for (const [path, value] of secrets)
        assert.deepEqual(Buffer.from((await container.secrets.get(path))!.value), value, path);
      for (const [name, value] of users)
        assert.equal((await container.userSecrets.read(ctx, owner, name)).value, value, name);
      const jwks = await app.inject({ method: 'GET', url: '/.well-known/jwks.json' });
      assert.equal(jwks.statusCode, 200);
      assert.equal((await container.signingKeys.signer()).alg, 'ES256');
    } finally {
      await close();
    }
    const doctor = await runCli(['doctor'], env, 30_000);
    assert.equal(doctor.code, 0, show(doctor));
    assert.doesNotMatch(doctor.stdout, /\[FAIL\]|ciphertexts/, show(doctor));
  });
});
