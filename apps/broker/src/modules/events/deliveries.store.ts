import type { Kysely } from 'kysely';
import type { Database } from '../../db/client.ts';
import type { ConnectionEventsTable, DB, WebhookDeliveriesTable, WebhooksTable } from '../../db/schema.ts';

/** What a finished attempt writes. */
export type AttemptResult = Pick<
  WebhookDeliveriesTable,
  'status' | 'next_attempt_at' | 'last_status_code' | 'last_error' | 'delivered_at'
> & { attempts?: number };

/** The delivery worker's queue: claim due rows under a lease, write each result back. */
export function createDeliveriesStore(db: Database) {
  const k = db.kysely;
  return {
    /**
     * Claims up to `limit` due pending deliveries for `owner`: the lease moves `next_attempt_at` to
     * its end (so the row comes due again by itself if this worker dies) and counts the attempt.
     * The UPDATE repeats the due condition, so a row another claimer took first is never returned.
     *
     * PostgreSQL: one short transaction locks the due rows with `FOR UPDATE SKIP LOCKED`, so
     * replicas claiming at the same moment take disjoint rows without waiting for each other.
     * SQLite: the same as one statement. SQLite has a single writer anyway, and `node:sqlite` is
     * synchronous: a transaction left open across an `await` would make another connection in the
     * same process spin on the lock and block the very event loop that would release it.
     */
    async claim(
      owner: string,
      now: number,
      leaseMs: number,
      limit: number,
    ): Promise<WebhookDeliveriesTable[]> {
      const due = (q: Kysely<DB>) =>
        q
          .selectFrom('webhook_deliveries')
          .select('id')
          .where('status', '=', 'pending')
          .where('next_attempt_at', '<=', now)
          .orderBy('next_attempt_at')
          .limit(limit);
      const take = (q: Kysely<DB>, ids: readonly string[] | ReturnType<typeof due>) =>
        q
          .updateTable('webhook_deliveries')
          .set((eb) => ({
            attempts: eb('attempts', '+', 1),
            lease_owner: owner,
            lease_until: now + leaseMs,
            next_attempt_at: now + leaseMs,
            last_attempt_at: now,
            updated_at: now,
          }))
          .where('id', 'in', ids)
          .where('status', '=', 'pending')
          .where('next_attempt_at', '<=', now)
          .returningAll()
          .execute();
      if (db.dialect === 'postgres') {
        return k.transaction().execute(async (trx) => {
          const ids = (await due(trx).forUpdate().skipLocked().execute()).map((r) => r.id);
          return ids.length === 0 ? [] : take(trx, ids);
        });
      }
      return take(k, due(k));
    },

    /**
     * Writes an attempt's result and releases the lease, only while `owner` still holds it: a
     * worker whose lease ran out and was taken over by another changes nothing.
     */
    async complete(id: string, owner: string, result: AttemptResult, now: number): Promise<boolean> {
      const outcome = await k
        .updateTable('webhook_deliveries')
        .set({ ...result, lease_owner: null, lease_until: null, updated_at: now })
        .where('id', '=', id)
        .where('lease_owner', '=', owner)
        .where('status', '=', 'pending')
        .executeTakeFirst();
      return Number(outcome.numUpdatedRows) === 1;
    },

    /** Webhooks by id, deleted ones included (the worker must see that they are gone). */
    async webhooks(ids: readonly string[]): Promise<Map<string, WebhooksTable>> {
      if (ids.length === 0) return new Map();
      const rows = await k.selectFrom('webhooks').selectAll().where('id', 'in', ids).execute();
      return new Map(rows.map((r) => [r.id, r]));
    },

    async events(ids: readonly string[]): Promise<Map<string, ConnectionEventsTable>> {
      if (ids.length === 0) return new Map();
      const rows = await k.selectFrom('connection_events').selectAll().where('id', 'in', ids).execute();
      return new Map(rows.map((r) => [r.id, r]));
    },

    /** Pending deliveries already due (the queue depth). */
    async countDue(now: number): Promise<number> {
      const row = await k
        .selectFrom('webhook_deliveries')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('status', '=', 'pending')
        .where('next_attempt_at', '<=', now)
        .executeTakeFirstOrThrow();
      return Number(row.n);
    },
  };
}

export type DeliveriesStore = ReturnType<typeof createDeliveriesStore>;
