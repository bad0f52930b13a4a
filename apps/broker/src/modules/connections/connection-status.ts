import * as z from 'zod';

/**
 * The connection lifecycle. Every status change in the store goes through `allowedFrom`, so this
 * table is the single definition of what may happen:
 *
 *   pending ──► active ──► attention_required ──► revoked
 *      │          │  ▲             │
 *      │          │  └ (refresh)   └──► expired ──► revoked
 *      │          ├──► expired
 *      │          └──► revoked   (explicit revocation, or superseded by a newer connection)
 *      ├──► failed   (the user declined, or the code exchange failed)
 *      └──► expired  (not completed within 10 minutes)
 *
 * `revoked` and `failed` are final. A user who must reconnect starts a new connection.
 */
export const STATUSES = ['pending', 'active', 'attention_required', 'expired', 'revoked', 'failed'] as const;
export type ConnectionStatus = (typeof STATUSES)[number];

const TRANSITIONS: Readonly<Record<ConnectionStatus, readonly ConnectionStatus[]>> = {
  pending: ['active', 'failed', 'expired', 'revoked'],
  active: ['active', 'attention_required', 'expired', 'revoked'],
  attention_required: ['expired', 'revoked'],
  expired: ['revoked'],
  revoked: [],
  failed: [],
};

/** Statuses from which a connection may move to `to`. */
export function allowedFrom(to: ConnectionStatus): ConnectionStatus[] {
  return STATUSES.filter((from) => TRANSITIONS[from].includes(to));
}

export function canTransition(from: ConnectionStatus, to: ConnectionStatus): boolean {
  return TRANSITIONS[from].includes(to);
}

/** The `last_error` of a connection revoked because a newer one of the same user and provider replaced it. */
export const SUPERSEDED = 'superseded';

/**
 * A revocation's reason (REST `?reason=`, gRPC `reason`), kept as the connection's `last_error`.
 * `superseded` is refused: it is the broker's own mark of a replaced connection, and a refresh
 * discarded after a revocation reads it to leave the new tokens of a grant the newer connection
 * may share alone (a revocation by request revokes them at the provider).
 */
export const revocationReason = z
  .string()
  .max(200)
  .refine((reason) => reason !== SUPERSEDED, {
    message: `"${SUPERSEDED}" is reserved for connections replaced by a newer one`,
  })
  .describe(`Why, kept as the connection's last_error (at most 200 characters; "${SUPERSEDED}" is reserved)`);
