import { hash } from 'node:crypto';

/** The columns an audit hash covers: every column of the row except the hash itself. */
export interface ChainedFields {
  seq: number;
  id: string;
  occurred_at: number;
  actor: string;
  action: string;
  resource_type: string;
  resource_id: string | null;
  outcome: string;
  ip: string | null;
  user_agent: string | null;
  request_id: string | null;
  details: string | null;
  prev_hash: string;
}

export const GENESIS_HASH = '0'.repeat(64);

/**
 * hash = SHA-256 over the previous hash and a JSON array of the row's fields in a fixed order.
 * Editing any field, reordering, or deleting a row breaks the chain from that point on.
 */
export function chainHash(row: ChainedFields): string {
  const canonical = JSON.stringify([
    row.seq,
    row.id,
    row.occurred_at,
    row.actor,
    row.action,
    row.resource_type,
    row.resource_id,
    row.outcome,
    row.ip,
    row.user_agent,
    row.request_id,
    row.details,
  ]);
  // One-shot: the same bytes as hashing the three parts in turn, without a Hash object per event.
  return hash('sha256', `${row.prev_hash}\n${canonical}`, 'hex');
}
