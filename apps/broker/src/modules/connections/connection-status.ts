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
