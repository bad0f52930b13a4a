/**
 * Key rotation while a broker runs (issue "Refresh you can trust", decision 0013): `nexus serve`
 * with a key file, and next to it `nexus keys rotate && nexus keys rewrap` (as README's CLI
 * section chains them), for both key rings, then the old keys removed from the file, while a
 * client keeps making requests that read and write sealed data. Before the fix the running broker
 * answered 500 key_not_in_ring until restarted. No request may fail. SQLite and PostgreSQL.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { keyIdOfCiphertext } from '../src/crypto/envelope.ts';
import { readKeyFile, writeKeyFile } from '../src/crypto/key-file.ts';
import { keyIdOf } from '../src/crypto/keyring.ts';
import { baseEnv, type CliProcess, killAllChildren, runCli, show, spawnCli, sqlOn } from './cli-helpers.ts';
import { createTestDatabase, type TestDatabase } from './harness.ts';
import {
  agentLogin,
  type Call,
  call,
  captureConnection,
  createAgent,
  createProviders,
  RETURN_URL,
  type Served,
  serve,
  until,
} from './key-rotation-helpers.ts';

const kidsOf = (keys: readonly { reveal(): Uint8Array }[]) => keys.map((k) => keyIdOf(k.reveal()));

/** A client that keeps reading and writing sealed data until stopped; every unexpected answer is kept. */
function traffic(base: string, adminKey: string, agent: { id: string; secret: string }, older: string[]) {
  const failures: string[] = [];
  let rounds = 0;
  let stopped = false;
  const expect = (what: string, res: Call, ok: (r: Call) => boolean) => {
    if (!ok(res)) failures.push(`${what}: ${res.status} ${res.text.slice(0, 300)}`);
  };
  const done = (async () => {
    while (!stopped) {
      const i = rounds;
      // A consent flow: the PKCE verifier is sealed under the primary.
      expect(
        'request-connection',
        await call(base, 'POST', '/v1/request-connection', {
          key: adminKey,
          json: { user_id: `live-${i}`, provider_name: 'oauthy', return_url: RETURN_URL },
        }),
        (r) => r.status === 200,
      );
      // New credentials sealed, then read back.
      const value = `sk_live_${i}_${randomBytes(6).toString('hex')}`;
      const captured = await captureConnection(base, adminKey, `capture-${i}`, value);
      expect('capture', captured, (r) => r.status === 200 && r.body.status === 'active');
      if (captured.status === 200) {
        expect(
          'token read (new)',
          await call(base, 'GET', `/v1/token/${String(captured.body.connection_id)}`, { key: adminKey }),
          (r) => r.status === 200 && (r.body.credentials as Record<string, string>)?.api_key === value,
        );
      }
      // Credentials sealed before the rotation, rewrapped meanwhile.
      expect(
        'token read (older)',
        await call(base, 'GET', `/v1/token/${older[i % older.length]}`, { key: adminKey }),
        (r) => r.status === 200,
      );
      // Agent login (signed with the sealed signing key) and a request with its token.
      const login = await agentLogin(base, agent.id, agent.secret);
      expect('agent login', login, (r) => r.status === 200);
      if (login.status === 200)
        expect(
          'agent request',
          await call(base, 'GET', '/v1/providers', { token: String(login.body.access_token) }),
          (r) => r.status === 200,
        );
      expect('jwks', await call(base, 'GET', '/.well-known/jwks.json'), (r) => r.status === 200);
      expect('ready', await call(base, 'GET', '/ready'), (r) => r.status === 200);
      rounds++;
    }
  })();
  return {
    failures,
    get rounds() {
      return rounds;
    },
    /** Resolves once `n` more rounds are done. */
    async more(n: number) {
      const target = rounds + n;
      await until(
        `${n} more rounds of traffic`,
        async () => rounds >= target || failures.length > 20,
        60_000,
      );
    },
    async stop() {
      stopped = true;
      await done;
    },
  };
}

describe('rotate && rewrap next to a running broker with a key file', { timeout: 240_000 }, () => {
  let db: TestDatabase;
  let broker: Served | undefined;
  let worker: CliProcess | undefined;
  beforeEach(async () => {
    db = await createTestDatabase();
  });
  afterEach(async () => {
    await broker?.stop().catch(() => {});
    broker = undefined;
    worker?.kill('SIGTERM');
    await worker?.wait(20_000).catch(() => {});
    worker = undefined;
    killAllChildren();
    await db.drop();
  });

  it('no request fails: the broker follows the file, rewrap waits for it, the old keys go', async () => {
    const keyFile = join(db.dataDir, 'ring', 'keys.json');
    const adminKey = `live-admin-${randomBytes(12).toString('hex')}`;
    const env = {
      ...baseEnv(),
      ...db.env,
      NEXUS_ENV: 'test',
      BASE_URL: 'https://nexus.example',
      NEXUS_KEY_FILE: keyFile,
      API_KEYS: `ops:${adminKey}`,
      RATE_LIMIT_ENABLED: 'false',
    };
    const generated = await runCli(['keys', 'generate', '--file', keyFile], env);
    assert.equal(generated.code, 0, show(generated));
    const [oldKid] = kidsOf(readKeyFile(keyFile, true).encryptionKeys);

    broker = await serve(env);
    // A second process on the same file: `nexus worker` (background jobs) follows it too.
    worker = spawnCli(['worker'], { ...env, LOG_LEVEL: 'info' });
    await worker.waitFor('stdout', /nexus worker ready/, 30_000);
    const { base } = broker;
    await createProviders(base, adminKey);
    const older: string[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await captureConnection(base, adminKey, `before-${i}`, `sk_before_${i}`);
      assert.equal(res.status, 200, res.text);
      older.push(String(res.body.connection_id));
    }
    const { secret } = await createAgent(base, adminKey, 'live-agent');
    const client = traffic(base, adminKey, { id: 'live-agent', secret }, older);
    try {
      await client.more(3);

      // README: `npx nexus keys rotate && npx nexus keys rewrap`, for each ring.
      for (const rotateArgs of [
        ['keys', 'rotate'],
        ['keys', 'rotate', '--user-secrets'],
      ]) {
        const rotated = await runCli(rotateArgs, env);
        assert.equal(rotated.code, 0, show(rotated));
        assert.match(rotated.stdout, /re-read it within seconds/);
        const rewrapped = await runCli(['keys', 'rewrap'], env, 60_000);
        assert.equal(rewrapped.code, 0, show(rewrapped));
        await client.more(2);
      }
      assert.deepEqual(client.failures, [], 'requests failed during the rotations');
      const material = readKeyFile(keyFile, true);
      const [newKid] = kidsOf(material.encryptionKeys);
      const [newUserKid] = kidsOf(material.userSecretsKeys ?? []);
      assert.notEqual(newKid, oldKid);
      // The broker took both new keys without a restart, and said so.
      const registry = await sqlOn<{
        encryption_kids: string;
        user_secrets_kids: string;
        key_source: string;
      }>(db, 'SELECT encryption_kids, user_secrets_kids, key_source FROM broker_processes');
      assert.equal(registry.length, 2, 'the broker and the worker');
      for (const row of registry) {
        assert.equal(JSON.parse(row.encryption_kids)[0], newKid);
        assert.equal(JSON.parse(row.user_secrets_kids)[0], newUserKid);
        assert.equal(row.key_source, 'file');
      }
      for (const p of [broker.proc, worker])
        assert.match(p.stdout(), /"msg":"key rings reloaded from the key file"/);

      // Nothing stored uses the old keys: doctor says they may go; they go, the broker follows.
      const doctor = await runCli(['doctor'], env, 30_000);
      assert.equal(doctor.code, 0, show(doctor));
      assert.match(doctor.stdout, new RegExp(`older encryption key ${oldKid} is used by no stored value`));
      writeKeyFile(keyFile, {
        ...material,
        encryptionKeys: material.encryptionKeys.slice(0, 1),
        userSecretsKeys: material.userSecretsKeys?.slice(0, 1),
      });
      await until('the broker and the worker to drop the old keys', async () => {
        const rows = await sqlOn<{ encryption_kids: string }>(
          db,
          'SELECT encryption_kids FROM broker_processes',
        );
        return rows.every((r) => JSON.parse(r.encryption_kids).length === 1);
      });
      await client.more(3);
    } finally {
      await client.stop();
    }
    assert.deepEqual(
      client.failures,
      [],
      `${client.failures.length} request(s) failed in ${client.rounds} rounds`,
    );
    assert.ok(client.rounds >= 13, `${client.rounds} rounds of traffic`);

    // Every ciphertext the broker and the CLI wrote, before and during the rotation, is under the new key.
    const [newKid] = kidsOf(readKeyFile(keyFile, true).encryptionKeys);
    for (const [table, column] of [
      ['secret_store', 'value'],
      ['connections', 'credentials'],
      ['consent_flows', 'verifier'],
      ['signing_keys', 'private_key'],
    ] as const) {
      const rows = await sqlOn<{ v: Uint8Array }>(
        db,
        `SELECT ${column} AS v FROM ${table} WHERE ${column} IS NOT NULL`,
      );
      assert.ok(rows.length > 0, table);
      for (const row of rows)
        assert.equal(keyIdOfCiphertext(new Uint8Array(row.v)), newKid, `${table}.${column}`);
    }
    const clean = await runCli(['doctor'], env, 30_000);
    assert.equal(clean.code, 0, show(clean));
    assert.doesNotMatch(clean.stdout, /\[FAIL\]|ciphertexts/, show(clean));
  });
});
