import { createHmac, timingSafeEqual } from 'node:crypto';
import type { SecretBytes } from '../../config/secret-value.ts';

/**
 * The OAuth `state` parameter: `v1.<flow id>.<expiry ms>.<HMAC-SHA256>` with STATE_KEY. The
 * signature proves the broker issued it (a tampered or foreign state fails before any lookup);
 * the flow row makes it single-use. Neither alone is enough: a signature cannot be revoked, and a
 * bare random id would send unknown callers to the database.
 */
export interface SignedState {
  readonly flowId: string;
  readonly expiresAt: number;
}

const FLOW_ID = /^[A-Za-z0-9_-]{22,64}$/;
/** An HMAC-SHA256 (32 bytes) in unpadded base64url: 43 characters, the last carrying 2 spare bits. */
const MAC_TEXT = /^[A-Za-z0-9_-]{43}$/;

function mac(key: SecretBytes, body: string): Buffer {
  return createHmac('sha256', key.reveal()).update('nexus state v1\n').update(body).digest();
}

export function signState(key: SecretBytes, state: SignedState): string {
  const body = `v1.${state.flowId}.${state.expiresAt}`;
  return `${body}.${mac(key, body).toString('base64url')}`;
}

export type StateCheck =
  | { ok: true; state: SignedState }
  | { ok: false; reason: 'malformed' | 'bad_signature' };

/** Verifies the signature in constant time; expiry and single use are checked against the flow row. */
export function verifyState(key: SecretBytes, text: string): StateCheck {
  if (text.length > 256) return { ok: false, reason: 'malformed' };
  const parts = text.split('.');
  if (parts.length !== 4 || parts[0] !== 'v1' || !FLOW_ID.test(parts[1]!) || !/^\d{1,15}$/.test(parts[2]!)) {
    return { ok: false, reason: 'malformed' };
  }
  // One accepted spelling per state (issue #18): Node's base64url decoder skips padding, stray
  // characters and spare bits, so `…=`, `… ` or a different last character would decode to the
  // same MAC. Only the exact unpadded form with zero spare bits, which signState produces, passes.
  const macText = parts[3]!;
  if (!MAC_TEXT.test(macText)) return { ok: false, reason: 'malformed' };
  const given = Buffer.from(macText, 'base64url');
  if (given.toString('base64url') !== macText) return { ok: false, reason: 'malformed' };
  const body = `${parts[0]}.${parts[1]}.${parts[2]}`;
  const expected = mac(key, body);
  if (given.length !== expected.length || !timingSafeEqual(given, expected))
    return { ok: false, reason: 'bad_signature' };
  return { ok: true, state: { flowId: parts[1]!, expiresAt: Number(parts[2]) } };
}
