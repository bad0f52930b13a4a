import type { Database } from '../../db/client.ts';
import type { ConsentConfirmationsTable } from '../../db/schema.ts';

/** `consent_confirmations` (migration 0016, decision 0017): written only here. */
export function createConfirmStore(db: Database) {
  const k = db.kysely;
  return {
    /** At the start of a consent that must be confirmed (nothing held yet). */
    async insert(row: ConsentConfirmationsTable): Promise<void> {
      await k.insertInto('consent_confirmations').values(row).execute();
    },

    /** The consent flow's confirmation row, if its consent must be confirmed. */
    async find(id: string): Promise<ConsentConfirmationsTable | undefined> {
      return k.selectFrom('consent_confirmations').selectAll().where('id', '=', id).executeTakeFirst();
    },

    async findByHash(flowHash: string): Promise<ConsentConfirmationsTable | undefined> {
      return k
        .selectFrom('consent_confirmations')
        .selectAll()
        .where('flow_hash', '=', flowHash)
        .executeTakeFirst();
    },

    /** At the callback: the sealed credentials and the hash of the flow_id handed to the verifier. */
    async hold(
      id: string,
      values: { flow_hash: string; held: Uint8Array; held_at: number; expires_at: number },
    ) {
      await k
        .updateTable('consent_confirmations')
        .set(values)
        .where('id', '=', id)
        .where('used_at', 'is', null)
        .execute();
    },

    /**
     * Uses the confirmation up and erases what it held, atomically: of two confirmations with the
     * same flow_id exactly one gets the row (with its sealed credentials, read before).
     */
    async claim(id: string, now: number): Promise<ConsentConfirmationsTable | undefined> {
      const before = await k
        .selectFrom('consent_confirmations')
        .selectAll()
        .where('id', '=', id)
        .where('used_at', 'is', null)
        .where('held', 'is not', null)
        .where('expires_at', '>', now)
        .executeTakeFirst();
      if (before === undefined) return undefined;
      const result = await k
        .updateTable('consent_confirmations')
        .set({ used_at: now, held: null })
        .where('id', '=', id)
        .where('used_at', 'is', null)
        .executeTakeFirst();
      return Number(result.numUpdatedRows) === 1 ? before : undefined;
    },

    /**
     * Gives back a claim whose confirmation failed before it decided anything (the database or the
     * secret backend away): the row holds its sealed credentials again and its flow_id works again.
     * Only the claim made at `usedAt` is given back.
     */
    async release(id: string, usedAt: number, held: Uint8Array): Promise<void> {
      await k
        .updateTable('consent_confirmations')
        .set({ used_at: null, held })
        .where('id', '=', id)
        .where('used_at', '=', usedAt)
        .where('held', 'is', null)
        .execute();
    },

    /**
     * Housekeeping: unconfirmed rows past expiry that still hold credentials (at most `limit`), to
     * revoke at the provider before they go.
     */
    async expiredHeld(now: number, limit: number): Promise<ConsentConfirmationsTable[]> {
      return k
        .selectFrom('consent_confirmations')
        .selectAll()
        .where('expires_at', '<', now)
        .where('held', 'is not', null)
        .limit(limit)
        .execute();
    },

    /** Removes these rows (expired holds, once revoked at the provider). */
    async remove(ids: readonly string[]): Promise<void> {
      if (ids.length > 0) await k.deleteFrom('consent_confirmations').where('id', 'in', ids).execute();
    },

    /** Rows past expiry that hold nothing (used, or never reached the callback); answers how many. */
    async deleteExpired(now: number): Promise<number> {
      const result = await k
        .deleteFrom('consent_confirmations')
        .where('expires_at', '<', now)
        .where('held', 'is', null)
        .executeTakeFirst();
      return Number(result.numDeletedRows);
    },
  };
}

export type ConfirmStore = ReturnType<typeof createConfirmStore>;
