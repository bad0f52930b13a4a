import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { keyIdOf } from '../src/crypto/keyring.ts';
import { keyRotationFindings } from '../src/modules/keys/key-report.ts';
import { rewrap } from '../src/modules/keys/rewrap.ts';
import { createTestDatabase, json, newKeyBase64, startBroker } from './harness.ts';

const kidOf = (b64: string) => keyIdOf(Buffer.from(b64, 'base64'));
const noBrokers = { live: async () => [] };

/**
 * `nexus doctor`'s key report with TOKEN_STORE=secret-backend: tokens kept in the backend are
 * sealed with the encryption ring too, so while the backend does not answer, no older key may be
 * called removable (removing it would make those tokens unreadable). SQLite and PostgreSQL.
 */
describe('key report with tokens in the secret backend', () => {
  it('calls an older key removable only when the tokens in the backend were read', async () => {
    const k1 = newKeyBase64();
    const k2 = newKeyBase64();
    const db = await createTestDatabase();
    const env = { TOKEN_STORE: 'secret-backend' };
    const a = await startBroker({ database: db, env: { ...env, ENCRYPTION_KEY: k1 } });
    try {
      const created = await a.request({
        method: 'POST',
        url: '/providers',
        payload: { profile: { name: 'static', auth_type: 'api_key' } },
      });
      assert.equal(created.statusCode, 201, created.body);
      const started = await a.request({
        method: 'POST',
        url: '/v1/request-connection',
        payload: { user_id: 'u1', provider_name: 'static', return_url: 'http://localhost:3000/done' },
      });
      assert.equal(started.statusCode, 200, started.body);
      const captured = await a.request({
        method: 'POST',
        url: '/v1/capture-credential',
        key: null,
        payload: { state: json<{ state: string }>(started).state, credentials: { api_key: 'sk_live_x' } },
      });
      assert.equal(captured.statusCode, 200, captured.body);
    } finally {
      await a.close();
    }
    const b = await startBroker({ database: db, env: { ...env, ENCRYPTION_KEYS: `${k2},${k1}` } });
    try {
      // The database's own columns move to K2; the token copy in the backend stays under K1.
      await rewrap(b.container.db, b.container.keys.ring);
      const report = (extra: object) =>
        keyRotationFindings({
          db: b.container.db,
          keys: b.container.keys,
          brokers: noBrokers,
          now: Date.now(),
          ...extra,
        });
      const aboutK1 = (findings: Awaited<ReturnType<typeof report>>) =>
        findings.filter((f) => f.message.includes(kidOf(k1)));

      const read = aboutK1(await report({ credentials: b.container.connectionsMaintenance.keyIds }));
      assert.ok(
        read.some((f) => f.level === 'warn' && /still use older key/.test(f.message)),
        JSON.stringify(read),
      );
      const unread = aboutK1(await report({ backendUnread: true }));
      assert.ok(!unread.some((f) => /can be removed/.test(f.message)), JSON.stringify(unread));
      assert.ok(
        unread.some((f) => f.level === 'warn' && /could not be read: keep it/.test(f.message)),
        JSON.stringify(unread),
      );
    } finally {
      await b.close();
      await db.drop();
    }
  });
});
