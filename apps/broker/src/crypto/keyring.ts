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
  /** Where the keys come from (a variable's name, or the key file), for operators' messages. */
  readonly origin?: string;
}

/**
 * The ring a running process hands to every module: one object for the life of the process,
 * whose keys are swapped when the key file changes (decision 0013). Modules keep the reference;
 * they never see the swap. A lookup of a key id the ring lacks first asks `onMiss` (a re-read of
 * the key file, rate-limited by its owner), so a ciphertext sealed by a process that reloaded
 * sooner opens here too.
 */
export interface LiveKeyRing extends KeyRing {
  /** Makes `next`'s keys the current ones. */
  replace(next: KeyRing): void;
  /** The keys at this moment (a frozen ring: for comparisons and reports). */
  snapshot(): KeyRing;
}

export function keyIdOf(key: Uint8Array): string {
  return `k${createHmac('sha256', key).update('nexus key id v1').digest('hex').slice(0, 16)}`;
}

export function createKeyRing(keys: readonly SecretBytes[], origin?: string): KeyRing {
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
    ...(origin === undefined ? {} : { origin }),
  });
}

/** Wraps `initial` in a ring whose keys can be replaced; `onMiss` runs before a lookup fails. */
export function createLiveKeyRing(initial: KeyRing, onMiss?: (kid: string) => void): LiveKeyRing {
  let current = initial;
  return {
    get primaryKid() {
      return current.primaryKid;
    },
    get kids() {
      return current.kids;
    },
    get origin() {
      return current.origin;
    },
    key(kid: string) {
      const found = current.key(kid);
      if (found !== undefined || onMiss === undefined) return found;
      onMiss(kid);
      return current.key(kid);
    },
    replace(next: KeyRing) {
      current = next;
    },
    snapshot: () => current,
  };
}

/** True when both rings hold the same key ids with the same primary (the order of the rest aside). */
export function sameKeys(a: KeyRing, b: KeyRing): boolean {
  return (
    a.primaryKid === b.primaryKid &&
    a.kids.length === b.kids.length &&
    a.kids.every((k) => b.kids.includes(k))
  );
}
