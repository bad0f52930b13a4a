import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject, randomBytes } from 'node:crypto';
import { errorFrom } from '../errors/nexus-error.ts';
import { cryptoErrors } from './crypto.errors.ts';
import type { KeyRing } from './keyring.ts';

/**
 * Where a ciphertext lives. It is bound into the AES-GCM associated data of both layers, so a
 * ciphertext copied to another row, table or column fails to open.
 */
export interface Binding {
  readonly table: string;
  readonly id: string;
  readonly field: string;
}

/*
 * Envelope format, version 1 (all offsets in bytes):
 *   [0]        0x01 format version
 *   [1]        n = length of the key id
 *   [2..2+n)   key id of the key-encryption key (ASCII)
 *   12         IV of the wrapped data key
 *   48         data key (32) wrapped with AES-256-GCM under the KEK, plus its tag (16)
 *   12         IV of the payload
 *   rest       payload ciphertext, then its 16-byte tag
 * A fresh data key per record means rewrap never needs a nonce counter and a KEK encrypts only
 * 32-byte keys, far below AES-GCM's per-key limits.
 */
const VERSION = 1;
const IV = 12;
const TAG = 16;
const WRAPPED = 32 + TAG;

/** The associated data of both layers: `["nexus",1,"<layer>","<kid>","<table>","<id>","<field>"]`. */
function aads(binding: Binding, kid: string): { dek: Buffer; payload: Buffer } {
  // The array's tail is the same for both layers: serialised once, byte for byte what
  // JSON.stringify(['nexus', VERSION, layer, kid, table, id, field]) gives.
  const tail = JSON.stringify([kid, binding.table, binding.id, binding.field]).slice(1);
  return {
    dek: Buffer.from(`["nexus",${VERSION},"dek",${tail}`),
    payload: Buffer.from(`["nexus",${VERSION},"payload",${tail}`),
  };
}

/*
 * Keys go to the cipher as `KeyObject`s: with a raw `Buffer`, Node 24's `createCipheriv` spends
 * ~8 µs per call recognising and importing it (a third of a token fetch's crypto). The data key
 * is imported for the one call that uses it and never kept.
 */
function gcmSeal(key: KeyObject, plaintext: Uint8Array, ad: Buffer): { iv: Buffer; out: Buffer } {
  const iv = randomBytes(IV);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(ad);
  const out = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  return { iv, out };
}

function gcmOpen(key: KeyObject, iv: Uint8Array, sealed: Uint8Array, ad: Buffer): Buffer {
  const decipher = createDecipheriv('aes-256-gcm', key, iv);
  decipher.setAAD(ad);
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG));
  const out = decipher.update(sealed.subarray(0, sealed.length - TAG));
  // GCM releases nothing at `final`: it only checks the tag (and throws when it does not match).
  decipher.final();
  return out;
}

/** Encrypts `plaintext` under a new data key wrapped by the ring's primary key. */
export function seal(ring: KeyRing, plaintext: Uint8Array, binding: Binding): Uint8Array {
  const kid = ring.primaryKid;
  const kek = ring.key(kid)!;
  const dek = randomBytes(32);
  try {
    const ad = aads(binding, kid);
    const wrapped = gcmSeal(kek, dek, ad.dek);
    const payload = gcmSeal(createSecretKey(dek), plaintext, ad.payload);
    const kidBytes = Buffer.from(kid, 'ascii');
    return new Uint8Array(
      Buffer.concat([
        Buffer.from([VERSION, kidBytes.length]),
        kidBytes,
        wrapped.iv,
        wrapped.out,
        payload.iv,
        payload.out,
      ]),
    );
  } finally {
    dek.fill(0);
  }
}

/** The key id a ciphertext was sealed with, or undefined when the bytes are not an envelope. */
export function keyIdOfCiphertext(blob: Uint8Array): string | undefined {
  if (blob.length < 2 || blob[0] !== VERSION) return undefined;
  const n = blob[1]!;
  if (blob.length < 2 + n + IV + WRAPPED + IV + TAG) return undefined;
  return Buffer.from(blob.subarray(2, 2 + n)).toString('ascii');
}

/** Decrypts a ciphertext made by `seal` for the same binding; throws `decryption_failed` otherwise. */
export function open(ring: KeyRing, blob: Uint8Array, binding: Binding): Uint8Array {
  const kid = keyIdOfCiphertext(blob);
  if (kid === undefined) {
    throw errorFrom(cryptoErrors, 'decryption_failed', {
      detail: `${binding.table}.${binding.field}: not an envelope`,
    });
  }
  const kek = ring.key(kid);
  if (kek === undefined) {
    throw errorFrom(cryptoErrors, 'key_not_in_ring', {
      detail: `${binding.table}.${binding.field} (${binding.id}) was sealed with key ${kid}, not in the ring [${ring.kids.join(', ')}]; add that key to ${ring.origin ?? 'ENCRYPTION_KEYS'} (\`nexus doctor\` lists the live brokers' rings)`,
    });
  }
  const start = 2 + blob[1]!;
  const wrapIv = blob.subarray(start, start + IV);
  const wrapped = blob.subarray(start + IV, start + IV + WRAPPED);
  const iv = blob.subarray(start + IV + WRAPPED, start + IV + WRAPPED + IV);
  const sealed = blob.subarray(start + IV + WRAPPED + IV);
  let dek: Buffer | undefined;
  try {
    const ad = aads(binding, kid);
    dek = gcmOpen(kek, wrapIv, wrapped, ad.dek);
    return new Uint8Array(gcmOpen(createSecretKey(dek), iv, sealed, ad.payload));
  } catch (cause) {
    throw errorFrom(cryptoErrors, 'decryption_failed', {
      detail: `${binding.table}.${binding.field} (${binding.id}): authentication failed (tampered, or copied from another row)`,
      cause,
    });
  } finally {
    dek?.fill(0);
  }
}

export function sealText(ring: KeyRing, text: string, binding: Binding): Uint8Array {
  return seal(ring, new TextEncoder().encode(text), binding);
}

export function openText(ring: KeyRing, blob: Uint8Array, binding: Binding): string {
  return new TextDecoder().decode(open(ring, blob, binding));
}
