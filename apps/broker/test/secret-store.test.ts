import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { keyIdOfCiphertext } from '../src/crypto/envelope.ts';
import { NexusError } from '../src/errors/nexus-error.ts';
import { startBroker, type TestBroker } from './harness.ts';

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array | undefined) => new TextDecoder().decode(b);

describe('internal secret backend', () => {
  let broker: TestBroker;
  before(async () => {
    broker = await startBroker();
  });
  after(() => broker.close());

  it('round-trips, versions overwrites, and deletes idempotently', async () => {
    const s = broker.container.secrets;
    assert.equal(await s.get('a/one'), null);
    assert.deepEqual(await s.put('a/one', bytes('v1')), { version: 1 });
    assert.deepEqual(await s.put('a/one', bytes('v2 ünïcødé 🔑')), { version: 2 });
    const got = await s.get('a/one');
    assert.equal(text(got?.value), 'v2 ünïcødé 🔑');
    assert.equal(got?.version, 2);
    await s.delete('a/one');
    await s.delete('a/one');
    assert.equal(await s.get('a/one'), null);
  });

  it('stores only ciphertext, under the primary key', async () => {
    await broker.container.secrets.put('b/plain', bytes('visible-if-broken'));
    const row = await broker.container.db.kysely
      .selectFrom('secret_store')
      .select('value')
      .where('path', '=', 'b/plain')
      .executeTakeFirstOrThrow();
    assert.ok(!Buffer.from(row.value).toString('latin1').includes('visible-if-broken'));
    assert.equal(keyIdOfCiphertext(row.value), broker.container.keys.ring.primaryKid);
  });

  it('lists by prefix in order, with paging, treating % and _ literally', async () => {
    const s = broker.container.secrets;
    for (const p of ['list/x1', 'list/x2', 'list/x3', 'list%/y', 'lis_/z', 'other/q'])
      await s.put(p, bytes(p));
    assert.deepEqual(await s.list('list/'), ['list/x1', 'list/x2', 'list/x3']);
    assert.deepEqual(await s.list('list/', { limit: 2 }), ['list/x1', 'list/x2']);
    assert.deepEqual(await s.list('list/', { after: 'list/x2' }), ['list/x3']);
    assert.deepEqual(await s.list('lis_/'), ['lis_/z']);
  });

  it('refuses a ciphertext copied onto another row (swap attack)', async () => {
    const s = broker.container.secrets;
    await s.put('providers/victim/client_secret', bytes('victim-secret'));
    await s.put('providers/attacker/client_secret', bytes('attacker-secret'));
    const k = broker.container.db.kysely;
    const victim = await k
      .selectFrom('secret_store')
      .select('value')
      .where('path', '=', 'providers/victim/client_secret')
      .executeTakeFirstOrThrow();
    await k
      .updateTable('secret_store')
      .set({ value: victim.value })
      .where('path', '=', 'providers/attacker/client_secret')
      .execute();
    await assert.rejects(
      s.get('providers/attacker/client_secret'),
      (error: unknown) =>
        error instanceof NexusError && error.code === 'decryption_failed' && error.status === 500,
    );
    assert.equal(text((await s.get('providers/victim/client_secret'))?.value), 'victim-secret');
  });

  it('rejects invalid paths and oversized values', async () => {
    const s = broker.container.secrets;
    for (const bad of ['', '/abs', 'a//b', 'x'.repeat(513), 'ctl\u0001char']) {
      await assert.rejects(s.put(bad, bytes('v')), /invalid secret path/, JSON.stringify(bad));
    }
    await assert.rejects(s.put('big/one', new Uint8Array(64 * 1024 + 1)), /too large/);
  });
});
