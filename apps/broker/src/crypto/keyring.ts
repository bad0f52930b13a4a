import { createHmac, createSecretKey, type KeyObject, timingSafeEqual } from 'node:crypto';
import type { SecretBytes } from '../config/secret-value.ts';

/**
 * A set of 256-bit key-encryption keys. New ciphertexts use the primary; every key in the ring
 * still decrypts. A key id is derived from the key itself (an HMAC, not any part of the key), so
 * the same key has the same id on every replica without naming it anywhere.
 */
export interface KeyRing {
  readonly primaryKid: string;
  readonly kids: readonly string[];
  /**
   * @internal used by the envelope code only. A `KeyObject` made once per key: Node 24's
   * `createCipheriv` spends ~8 µs checking and importing a raw key `Buffer` on every call, ~1 µs
   * for a `KeyObject`.
   */
  key(kid: string): KeyObject | undefined;
}

export function keyIdOf(key: Uint8Array): string {
  return `k${createHmac('sha256', key).update('nexus key id v1').digest('hex').slice(0, 16)}`;
}

export function createKeyRing(keys: readonly SecretBytes[]): KeyRing {
  if (keys.length === 0) throw new Error('a key ring needs at least one key');
  const byKid = new Map<string, Uint8Array>();
  for (const secret of keys) {
    const key = secret.reveal();
    if (key.length !== 32) throw new Error('every key must be 32 bytes');
    const kid = keyIdOf(key);
    const existing = byKid.get(kid);
    if (existing && timingSafeEqual(existing, key)) continue; // the same key listed twice is harmless
    byKid.set(kid, key);
  }
  const kids = [...byKid.keys()];
  const objects = new Map([...byKid].map(([kid, key]) => [kid, createSecretKey(key)]));
  return Object.freeze({
    primaryKid: kids[0]!,
    kids: Object.freeze(kids),
    key: (kid: string) => objects.get(kid),
  });
}
