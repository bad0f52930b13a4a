import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { SecretBytes } from '../../config/secret-value.ts';
import { signState, verifyState } from './state.ts';

const key = new SecretBytes(new Uint8Array(randomBytes(32)));
const other = new SecretBytes(new Uint8Array(randomBytes(32)));
const flowId = randomBytes(18).toString('base64url');

describe('signed state', () => {
  it('round-trips the flow id and expiry', () => {
    const text = signState(key, { flowId, expiresAt: 1_800_000_000_000 });
    assert.deepEqual(verifyState(key, text), { ok: true, state: { flowId, expiresAt: 1_800_000_000_000 } });
  });

  it('rejects a state signed with another key (foreign)', () => {
    assert.deepEqual(verifyState(key, signState(other, { flowId, expiresAt: 1 })), {
      ok: false,
      reason: 'bad_signature',
    });
  });

  it('rejects any edit: flow id, expiry or signature', () => {
    const text = signState(key, { flowId, expiresAt: 1_800_000_000_000 });
    const [v, f, e, s] = text.split('.') as [string, string, string, string];
    const otherFlow = randomBytes(18).toString('base64url');
    for (const tampered of [
      `${v}.${otherFlow}.${e}.${s}`,
      `${v}.${f}.${Number(e) + 1}.${s}`,
      // One character flipped in the middle of the MAC (trailing characters may carry unused bits).
      `${v}.${f}.${e}.${s.slice(0, 10)}${s[10] === 'A' ? 'B' : 'A'}${s.slice(11)}`,
    ]) {
      assert.equal(verifyState(key, tampered).ok, false, tampered);
    }
  });

  it('accepts exactly one spelling: no padding, stray characters or changed spare bits (issue #18)', () => {
    const text = signState(key, { flowId, expiresAt: 1_800_000_000_000 });
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    // The 43rd character of a 32-byte MAC carries 2 unused bits: flipping one keeps the bytes.
    const spare = `${text.slice(0, -1)}${alphabet[alphabet.indexOf(text.at(-1)!) ^ 1]}`;
    for (const variant of [`${text}=`, `${text}==`, `${text}!`, `${text} `, ` ${text}`, spare]) {
      assert.deepEqual(
        verifyState(key, variant),
        { ok: false, reason: 'malformed' },
        JSON.stringify(variant),
      );
    }
    assert.equal(verifyState(key, text).ok, true);
  });

  it('rejects malformed input without throwing', () => {
    for (const bad of ['', 'abc', 'v2.x.1.y', 'v1..1.x', `v1.${flowId}.notanumber.x`, 'x'.repeat(300)]) {
      assert.deepEqual(verifyState(key, bad), { ok: false, reason: 'malformed' }, bad);
    }
  });
});
