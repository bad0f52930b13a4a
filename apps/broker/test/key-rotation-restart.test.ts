/**
 * Regression (issue "Refresh you can trust"): agent signing keys were left behind by rewrap.
 * Start with ENCRYPTION_KEYS=K1 and log an agent in; restart with K2,K1 and run `nexus keys
 * rewrap`; restart with K2 alone. Before the fix `POST /oauth/token`, the JWKS and every request
 * with an agent token answered 500 key_not_in_ring, while `nexus doctor` said all was well.
 * Real `nexus serve` processes and the real CLI, on SQLite and PostgreSQL.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { keyIdOfCiphertext } from '../src/crypto/envelope.ts';
import { keyIdOf } from '../src/crypto/keyring.ts';
import { baseEnv, killAllChildren, newKeyBase64, runCli, show, sqlOn } from './cli-helpers.ts';
import { createTestDatabase, type TestDatabase } from './harness.ts';
import { agentLogin, call, createAgent, createProviders, serve } from './key-rotation-helpers.ts';

const kidOf = (b64: string) => keyIdOf(Buffer.from(b64, 'base64'));

describe('rewrap covers agent signing keys: restart with the new key alone', { timeout: 180_000 }, () => {
  let db: TestDatabase;
  let env: Record<string, string>;
  const adminKey = `rotation-admin-${randomBytes(12).toString('hex')}`;
  beforeEach(async () => {
    db = await createTestDatabase();
    env = {
      ...baseEnv(),
      ...db.env,
      NEXUS_ENV: 'test',
      // Fixed across restarts (each listens on another port): it is the issuer of agent tokens.
      BASE_URL: 'https://nexus.example',
      STATE_KEY: newKeyBase64(),
      API_KEYS: `ops:${adminKey}`,
      RATE_LIMIT_ENABLED: 'false',
    };
  });
  afterEach(async () => {
    killAllChildren();
    await db.drop();
  });

  it('K1 → K2,K1 + rewrap → K2 alone: login, JWKS and agent requests all work; doctor agrees', async () => {
    const k1 = newKeyBase64();
    const k2 = newKeyBase64();

    // 1. ENCRYPTION_KEYS=K1: an agent logs in (the first login makes the signing key, sealed under K1).
    let broker = await serve({ ...env, ENCRYPTION_KEYS: k1 });
    await createProviders(broker.base, adminKey);
    const { secret } = await createAgent(broker.base, adminKey, 'rotating-agent');
    const first = await agentLogin(broker.base, 'rotating-agent', secret);
    assert.equal(first.status, 200, first.text);
    const oldToken = String(first.body.access_token);
    const signing = await sqlOn<{ private_key: Uint8Array }>(db, 'SELECT private_key FROM signing_keys');
    assert.equal(signing.length, 1);
    assert.equal(keyIdOfCiphertext(new Uint8Array(signing[0]!.private_key)), kidOf(k1));
    await broker.stop();
    // A graceful stop removes the process from the registry.
    assert.deepEqual(await sqlOn(db, 'SELECT id FROM broker_processes'), []);

    // 2. K2,K1 and a rewrap.
    broker = await serve({ ...env, ENCRYPTION_KEYS: `${k2},${k1}` });
    const rows = await sqlOn<{ encryption_kids: string; key_source: string }>(
      db,
      'SELECT encryption_kids, key_source FROM broker_processes',
    );
    assert.deepEqual(
      rows.map((r) => [JSON.parse(r.encryption_kids), r.key_source]),
      [[[kidOf(k2), kidOf(k1)], 'env']],
    );
    const rewrap = await runCli(['keys', 'rewrap'], { ...env, ENCRYPTION_KEYS: `${k2},${k1}` }, 30_000);
    assert.equal(rewrap.code, 0, show(rewrap));
    assert.match(
      rewrap.stdout,
      new RegExp(`^Primary key ${kidOf(k2)}: \\d+ re-encrypted, .* 0 failed\\.$`, 'm'),
    );
    const after = await sqlOn<{ private_key: Uint8Array }>(db, 'SELECT private_key FROM signing_keys');
    assert.equal(
      keyIdOfCiphertext(new Uint8Array(after[0]!.private_key)),
      kidOf(k2),
      'the signing key was rewrapped',
    );

    // Doctor: the live broker and its ring; nothing under K1 any more, so K1 may go.
    const doctor = await runCli(['doctor'], { ...env, ENCRYPTION_KEYS: `${k2},${k1}` }, 30_000);
    assert.equal(doctor.code, 0, show(doctor));
    assert.match(
      doctor.stdout,
      new RegExp(
        `^\\[ ok \\] brokers: .* pid ${broker.proc.child.pid} \\(all\\), keys from env, .*encryption keys ${kidOf(k2)} \\(primary\\), ${kidOf(k1)};`,
        'm',
      ),
    );
    assert.doesNotMatch(doctor.stdout, /ciphertexts/, show(doctor));
    assert.match(
      doctor.stdout,
      new RegExp(
        `^\\[ ok \\] keys: older encryption key ${kidOf(k1)} is used by no stored value and no running broker writes with it: it can be removed`,
        'm',
      ),
    );
    await broker.stop();

    // 3. K2 alone: everything that needs the signing key works.
    broker = await serve({ ...env, ENCRYPTION_KEYS: k2 });
    const login = await agentLogin(broker.base, 'rotating-agent', secret);
    assert.equal(login.status, 200, login.text);
    const jwks = await call(broker.base, 'GET', '/.well-known/jwks.json');
    assert.equal(jwks.status, 200, jwks.text);
    assert.equal((jwks.body.keys as unknown[]).length, 1);
    for (const token of [String(login.body.access_token), oldToken]) {
      const providers = await call(broker.base, 'GET', '/v1/providers', { token });
      assert.equal(providers.status, 200, providers.text);
    }
    const ready = await call(broker.base, 'GET', '/ready');
    assert.deepEqual(ready.body, {
      status: 'ready',
      checks: { database: 'ok', secret_backend: 'ok', key_ring: 'ok' },
    });
    const clean = await runCli(['doctor'], { ...env, ENCRYPTION_KEYS: k2 }, 30_000);
    assert.equal(clean.code, 0, show(clean));
    assert.doesNotMatch(clean.stdout, /\[WARN\]|\[FAIL\]/, show(clean));
    await broker.stop();
  });
});
