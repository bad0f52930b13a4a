import { sql } from 'kysely';
import type { Database } from '../../db/client.ts';
import type { ConnectionEventsTable, WebhookDeliveriesTable, WebhooksTable } from '../../db/schema.ts';

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
     * `quota` bounds what one webhook may have in flight: a webhook with `busy` deliveries in
     * flight in this process gets at most `perWebhook - busy` more, and one at its cap is left out
     * of the look-up, so the rest of the queue is claimed past a receiver that hangs (the next
     * claim skips a webhook this one filled). Of the `limit` oldest due rows of the others, those
     * within their webhook's room are taken.
     *
     * One statement on both databases. PostgreSQL locks the rows looked at with `FOR UPDATE SKIP
     * LOCKED`, so replicas claiming at the same moment take disjoint rows without waiting for each
     * other. SQLite has a single writer, and one statement leaves no gap between the look-up and
     * the UPDATE in which another claimer in this process could take the rows.
     */
    async claim(
      owner: string,
      now: number,
      leaseMs: number,
      limit: number,
      quota: { perWebhook: number; busy: ReadonlyMap<string, number> } = {
        perWebhook: limit,
        busy: new Map(),
      },
    ): Promise<WebhookDeliveriesTable[]> {
      const busy = [...quota.busy];
      const full = busy.filter(([, n]) => n >= quota.perWebhook).map(([id]) => id);
      const head = k
        .selectFrom('webhook_deliveries')
        .select(['id', 'webhook_id', 'next_attempt_at'])
        .where('status', '=', 'pending')
        .where('next_attempt_at', '<=', now)
        .$if(full.length > 0, (w) => w.where('webhook_id', 'not in', full))
        .orderBy('next_attempt_at')
        .orderBy('id')
        .limit(limit)
        .$if(db.dialect === 'postgres', (w) => w.forUpdate().skipLocked())
        .as('head');
      const partial = busy.filter(([, n]) => n < quota.perWebhook);
      // Whole numbers written into the statement (never text from outside): PostgreSQL would type
      // a CASE of parameters as text and refuse to compare it with row_number()'s bigint.
      const room =
        partial.length === 0
          ? sql<number>`${sql.lit(quota.perWebhook)}`
          : sql<number>`case ranked.webhook_id ${sql.join(
              partial.map(([id, n]) => sql`when ${id} then ${sql.lit(quota.perWebhook - n)}`),
              sql` `,
            )} else ${sql.lit(quota.perWebhook)} end`;
      const ranked = k
        .selectFrom(head)
        .select([
          'head.id',
          'head.next_attempt_at',
          'head.webhook_id',
          sql<number>`row_number() over (partition by head.webhook_id order by head.next_attempt_at, head.id)`.as(
            'n',
          ),
        ])
        .as('ranked');
      const chosen = k.selectFrom(ranked).select('ranked.id').where(sql<number>`ranked.n`, '<=', room);
      return k
        .updateTable('webhook_deliveries')
        .set((eb) => ({
          attempts: eb('attempts', '+', 1),
          lease_owner: owner,
          lease_until: now + leaseMs,
          next_attempt_at: now + leaseMs,
          last_attempt_at: now,
          updated_at: now,
        }))
        .where('id', 'in', chosen.$asScalar())
        .where('status', '=', 'pending')
        .where('next_attempt_at', '<=', now)
        .returningAll()
        .execute();
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
