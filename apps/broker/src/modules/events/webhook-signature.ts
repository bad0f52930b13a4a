import { createHmac } from 'node:crypto';

/** Receivers reject signatures older than this (see docs/operations.md, "Webhooks"). */
export const REPLAY_WINDOW_SECONDS = 300;

/**
 * `Nexus-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`. The key is
 * the webhook secret's UTF-8 bytes, exactly as returned at creation. Signing the timestamp with the
 * body lets a receiver reject a captured request replayed later (Stripe's scheme, for familiarity).
 */
export function signatureHeader(secret: Uint8Array, timestampSeconds: number, body: string): string {
  const mac = createHmac('sha256', secret).update(`${timestampSeconds}.`).update(body).digest('hex');
  return `t=${timestampSeconds},v1=${mac}`;
}
