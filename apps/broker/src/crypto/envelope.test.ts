import assert from 'node:assert/strict';
import { createCipheriv, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { SecretBytes } from '../config/secret-value.ts';
import { NexusError } from '../errors/nexus-error.ts';
import { keyIdOfCiphertext, open, openText, seal, sealText } from './envelope.ts';
import { createKeyRing, keyIdOf } from './keyring.ts';

const newKey = () => new SecretBytes(new Uint8Array(randomBytes(32)));
const where = { table: 'secret_store', id: 'providers/a/client_secret', field: 'value' };

function assertCode(fn: () => unknown, code: string) {
  assert.throws(fn, (error: unknown) => error instanceof NexusError && error.code === code);
}

describe('envelope encryption', () => {
  const k1 = newKey();
  const ring = createKeyRing([k1]);

  it('round-trips bytes and text, with a fresh nonce and data key each time', () => {
    const a = sealText(ring, 'hunter2', where);
    const b = sealText(ring, 'hunter2', where);
    assert.notDeepEqual(a, b);
    assert.equal(openText(ring, a, where), 'hunter2');
    const bytes = new Uint8Array(randomBytes(70_000));
    assert.deepEqual(open(ring, seal(ring, bytes, where), where), bytes);
    assert.deepEqual(open(ring, seal(ring, new Uint8Array(), where), where), new Uint8Array());
  });

  it('never contains the plaintext', () => {
    const blob = sealText(ring, 'plain-secret-value', where);
    assert.ok(!Buffer.from(blob).toString('latin1').includes('plain-secret-value'));
  });

  it('carries the key id of the primary key', () => {
    assert.equal(keyIdOfCiphertext(sealText(ring, 'x', where)), keyIdOf(k1.reveal()));
    assert.equal(keyIdOfCiphertext(new Uint8Array([9, 9, 9])), undefined);
  });

  it('rejects a ciphertext moved to another row, table or field', () => {
    const blob = sealText(ring, 'secret', where);
    assertCode(() => open(ring, blob, { ...where, id: 'providers/b/client_secret' }), 'decryption_failed');
    assertCode(() => open(ring, blob, { ...where, table: 'connections' }), 'decryption_failed');
    assertCode(() => open(ring, blob, { ...where, field: 'refresh_token' }), 'decryption_failed');
  });

  it('rejects any flipped bit', () => {
    const blob = sealText(ring, 'secret', where);
    for (const index of [2, 20, 40, 70, blob.length - 1]) {
      const tampered = new Uint8Array(blob);
      tampered[index]! ^= 1;
      assert.throws(() => open(ring, tampered, where), NexusError, `byte ${index}`);
    }
  });

  it('decrypts old ciphertexts after rotation, writes new ones under the new primary', () => {
    const old = sealText(ring, 'before rotation', where);
    const k2 = newKey();
    const rotated = createKeyRing([k2, k1]);
    assert.equal(rotated.primaryKid, keyIdOf(k2.reveal()));
    assert.equal(openText(rotated, old, where), 'before rotation');
    const fresh = sealText(rotated, 'after', where);
    assert.equal(keyIdOfCiphertext(fresh), rotated.primaryKid);
    // A broker that lost the old key says which key is missing (in the internal detail).
    const withoutOld = createKeyRing([k2]);
    assert.throws(
      () => open(withoutOld, old, where),
      (error: unknown) =>
        error instanceof NexusError &&
        error.code === 'key_not_in_ring' &&
        (error.detail ?? '').includes(keyIdOf(k1.reveal())),
    );
  });

  it('derives key ids that reveal nothing of the key', () => {
    const kid = keyIdOf(k1.reveal());
    assert.match(kid, /^k[0-9a-f]{16}$/);
    assert.ok(!kid.includes(Buffer.from(k1.reveal()).toString('hex').slice(0, 8)));
  });

  it('opens an envelope built by hand from the documented format (stored ciphertexts stay readable)', () => {
    // Format version 1 as the comment in envelope.ts documents it, with the associated data of
    // each layer the JSON array ["nexus", 1, layer, kid, table, id, field].
    const kid = keyIdOf(k1.reveal());
    const binding = { table: 'connections', id: 'c-\u00e9"x', field: 'credentials' };
    const ad = (layer: string) =>
      Buffer.from(JSON.stringify(['nexus', 1, layer, kid, binding.table, binding.id, binding.field]));
    const gcm = (key: Uint8Array, data: Uint8Array, layer: string) => {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key, iv).setAAD(ad(layer));
      return Buffer.concat([iv, cipher.update(data), cipher.final(), cipher.getAuthTag()]);
    };
    const dek = randomBytes(32);
    const blob = Buffer.concat([
      Buffer.from([1, kid.length]),
      Buffer.from(kid, 'ascii'),
      gcm(k1.reveal(), dek, 'dek'),
      gcm(dek, Buffer.from('{"kind":"static"}'), 'payload'),
    ]);
    assert.equal(openText(ring, new Uint8Array(blob), binding), '{"kind":"static"}');
    assertCode(() => open(ring, new Uint8Array(blob), { ...binding, id: 'c-other' }), 'decryption_failed');
  });
});
