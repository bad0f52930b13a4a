import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { keyIdOfCiphertext } from '../src/crypto/envelope.ts';
import { NexusError } from '../src/errors/nexus-error.ts';
import { startBroker, type TestBroker } from './harness.ts';

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array | undefined) => new TextDecoder().decode(b);

/** What only the internal backend promises; the shared behaviour is in secret-backends/conformance.ts. */
describe('internal secret backend', () => {
  let broker: TestBroker;
  before(async () => {
    broker = await startBroker();
  });
  after(() => broker.close());

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

  it('treats % and _ in a list prefix literally', async () => {
    const s = broker.container.secrets;
    for (const p of ['list/x1', 'list%/y', 'lis_/z']) await s.put(p, bytes(p));
    assert.deepEqual(await s.list('lis_/'), ['lis_/z']);
    assert.deepEqual(await s.list('list%'), ['list%/y']);
  });

  it('lists unicode paths in code-point order on both dialects', async () => {
    const s = broker.container.secrets;
    const paths = ['uni/\u{1F511}', 'uni/\uFB01', 'uni/z', 'uni/\u00E9'];
    for (const p of paths) await s.put(p, bytes(p));
    assert.deepEqual(await s.list('uni/'), ['uni/z', 'uni/\u00E9', 'uni/\uFB01', 'uni/\u{1F511}']);
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
});
