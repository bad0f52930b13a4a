/**
 * Key rotation across replicas with keys in the environment (decision 0013): two `nexus serve`
 * processes on one PostgreSQL. A replica given the new key as primary before the other has it
 * makes ciphertexts the other cannot open: the lagging one reports itself not ready (key_ring
 * behind), `nexus doctor` and `nexus doctor --remote` say so, and `nexus keys rewrap` refuses,
 * naming it. Then the documented procedure (new key as secondary everywhere, primary everywhere,
 * rewrap, old key removed) leaves everything working on the new key alone.
 * PostgreSQL only by nature: SQLite is a single-host database.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { keyIdOf } from '../src/crypto/keyring.ts';
import { baseEnv, killAllChildren, newKeyBase64, runCli, show } from './cli-helpers.ts';
import { createTestDatabase, DIALECT, type TestDatabase } from './harness.ts';
import {
  agentLogin,
  call,
  captureConnection,
  createAgent,
  createProviders,
  type Served,
  serve,
  until,
} from './key-rotation-helpers.ts';

const PG_ONLY = DIALECT !== 'postgres' && 'replicas share a PostgreSQL database: runs in `npm run test:pg`';

const kidOf = (b64: string) => keyIdOf(Buffer.from(b64, 'base64'));

describe('rotating environment keys across two replicas', { skip: PG_ONLY, timeout: 300_000 }, () => {
  let db: TestDatabase;
  const running = new Set<Served>();
  const adminKey = `replica-admin-${randomBytes(12).toString('hex')}`;
  const k1 = newKeyBase64();
  const k2 = newKeyBase64();
  let env: Record<string, string>;
  before(async () => {
    db = await createTestDatabase();
    env = {
      ...baseEnv(),
      ...db.env,
      NEXUS_ENV: 'test',
      BASE_URL: 'https://nexus.example',
      STATE_KEY: newKeyBase64(),
      API_KEYS: `ops:${adminKey}`,
      RATE_LIMIT_ENABLED: 'false',
    };
  });
  after(async () => {
    await Promise.allSettled([...running].map((s) => s.stop()));
    killAllChildren();
    await db.drop();
  });

  async function start(keys: string): Promise<Served> {
    const s = await serve({ ...env, ENCRYPTION_KEYS: keys });
    running.add(s);
    return s;
  }
  async function restart(s: Served, keys: string): Promise<Served> {
    await s.stop();
    running.delete(s);
    return start(keys);
  }
  const who = (s: Served) => `${hostname()} pid ${s.proc.child.pid} (all)`;
  const literal = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

  it('a lagging replica is not ready and blocks rewrap; the documented procedure finishes the job', async () => {
    let a = await start(k1);
    let b = await start(k1);
    await createProviders(a.base, adminKey);
    const connections: { id: string; value: string }[] = [];
    const capture = async (via: Served, tag: string) => {
      const value = `sk_${tag}_${randomBytes(4).toString('hex')}`;
      const res = await captureConnection(via.base, adminKey, `user-${tag}`, value);
      assert.equal(res.status, 200, res.text);
      connections.push({ id: String(res.body.connection_id), value });
    };
    await capture(a, 'k1-a');
    await capture(b, 'k1-b');
    const { secret } = await createAgent(a.base, adminKey, 'replica-agent');
    assert.equal((await agentLogin(b.base, 'replica-agent', secret)).status, 200);

    // The mistake: A restarted with K2 as primary while B has never heard of K2.
    a = await restart(a, `${k2},${k1}`);
    await capture(a, 'k2-a');
    const lagging = await call(b.base, 'GET', '/ready');
    assert.equal(lagging.status, 503, lagging.text);
    assert.deepEqual(lagging.body, {
      status: 'not_ready',
      checks: { database: 'ok', secret_backend: 'ok', key_ring: 'behind' },
    });
    assert.ok(!lagging.text.includes(kidOf(k2)), 'the public answer names no key');
    assert.equal((await call(a.base, 'GET', '/ready')).status, 200);
    // Why B must get no traffic: what A sealed under K2 does not open on B.
    const unreadable = await call(b.base, 'GET', `/v1/token/${connections[2]!.id}`, { key: adminKey });
    assert.equal(unreadable.status, 500);
    // Issue #18: the caller reads a generic internal_error; the real code is in B's log line.
    assert.equal(unreadable.body.error, 'internal_error');
    await until('B to log key_not_in_ring for that request', async () =>
      b.proc
        .stdout()
        .split('\n')
        .some(
          (l) => l.includes('"code":"key_not_in_ring"') && l.includes(String(unreadable.body.request_id)),
        ),
    );
    // B's log names the key and the writer; the operator CLI reports the check.
    await until('B to log the lagging ring', async () => /key ring behind/.test(b.proc.stdout()));
    assert.match(b.proc.stdout(), new RegExp(`"kid":"${kidOf(k2)}","written_by":"${literal(who(a))}"`));
    const remote = await runCli(
      ['doctor', '--remote', '--json'],
      { ...baseEnv(), NEXUS_URL: b.base, API_KEY: adminKey, XDG_CONFIG_HOME: join(db.dataDir, 'cli') },
      30_000,
    );
    assert.equal(remote.code, 1, show(remote));
    const ready = (JSON.parse(remote.stdout) as { check: string; status: string; detail: string }[]).find(
      (c) => c.check === 'ready',
    );
    assert.equal(ready?.status, 'fail', remote.stdout);
    assert.match(ready!.detail, /key ring behind/);

    const refused = await runCli(
      ['keys', 'rewrap', '--wait', '2'],
      { ...env, ENCRYPTION_KEYS: `${k2},${k1}` },
      30_000,
    );
    assert.equal(refused.code, 1, show(refused));
    assert.match(
      refused.stderr,
      new RegExp(
        `^ {2}${literal(who(b))}, last heartbeat .*: lacks the new encryption primary key \\(it writes with ${kidOf(k1)}\\); its keys come from the environment: add the new key after the current primary in ENCRYPTION_KEYS there and restart it; move it to the front only once every replica holds it$`,
        'm',
      ),
      show(refused),
    );
    assert.doesNotMatch(refused.stderr, new RegExp(literal(who(a))), 'A is not in the way');
    assert.doesNotMatch(refused.stdout, /re-encrypted/, 'nothing was rewrapped');
    const doctor = await runCli(['doctor'], { ...env, ENCRYPTION_KEYS: `${k2},${k1}` }, 30_000);
    assert.equal(doctor.code, 1, show(doctor));
    assert.match(
      doctor.stdout,
      new RegExp(
        `^\\[FAIL\\] brokers: ${literal(who(b))} lacks encryption key ${kidOf(k2)}, which ${literal(who(a))} writes with`,
        'm',
      ),
    );

    // The procedure. 1: the new key as secondary on B (A has it already): B is ready again.
    b = await restart(b, `${k1},${k2}`);
    assert.equal((await call(b.base, 'GET', '/ready')).status, 200);
    for (const c of connections) {
      const read = await call(b.base, 'GET', `/v1/token/${c.id}`, { key: adminKey });
      assert.equal(read.status, 200, read.text);
    }
    await capture(b, 'k1-b-secondary');
    // Rewrap still refuses: B writes with K1, which is about to be retired.
    const early = await runCli(
      ['keys', 'rewrap', '--wait', '1'],
      { ...env, ENCRYPTION_KEYS: `${k2},${k1}` },
      30_000,
    );
    assert.equal(early.code, 1, show(early));
    assert.match(
      early.stderr,
      new RegExp(
        `${literal(who(b))}, .*: has the new encryption key but still writes with ${kidOf(k1)}; its keys come from the environment: move the new key to the front of ENCRYPTION_KEYS there and restart it$`,
        'm',
      ),
    );
    // 2: the new key first everywhere. 3: rewrap.
    b = await restart(b, `${k2},${k1}`);
    const rewrap = await runCli(['keys', 'rewrap'], { ...env, ENCRYPTION_KEYS: `${k2},${k1}` }, 60_000);
    assert.equal(rewrap.code, 0, show(rewrap));
    const clear = await runCli(['doctor'], { ...env, ENCRYPTION_KEYS: `${k2},${k1}` }, 30_000);
    assert.equal(clear.code, 0, show(clear));
    assert.match(clear.stdout, new RegExp(`older encryption key ${kidOf(k1)} is used by no stored value`));
    assert.equal((clear.stdout.match(/^\[ ok \] brokers: /gm) ?? []).length, 2, clear.stdout);
    // 4: the old key removed everywhere: both replicas serve everything on K2 alone.
    a = await restart(a, k2);
    b = await restart(b, k2);
    for (const s of [a, b]) {
      assert.equal((await call(s.base, 'GET', '/ready')).status, 200);
      for (const c of connections) {
        const read = await call(s.base, 'GET', `/v1/token/${c.id}`, { key: adminKey });
        assert.equal(read.status, 200, read.text);
        assert.equal((read.body.credentials as Record<string, string>).api_key, c.value);
      }
      const login = await agentLogin(s.base, 'replica-agent', secret);
      assert.equal(login.status, 200, login.text);
      const jwks = await call(s.base, 'GET', '/.well-known/jwks.json');
      assert.equal(jwks.status, 200);
      const res = await call(s.base, 'POST', '/v1/request-connection', {
        key: adminKey,
        json: { user_id: 'after', provider_name: 'oauthy', return_url: 'http://localhost:3000/done' },
      });
      assert.equal(res.status, 200, res.text);
    }
    const final = await runCli(['doctor'], { ...env, ENCRYPTION_KEYS: k2 }, 30_000);
    assert.equal(final.code, 0, show(final));
    assert.doesNotMatch(final.stdout, /\[FAIL\]|\[WARN\]/, show(final));
  });
});
