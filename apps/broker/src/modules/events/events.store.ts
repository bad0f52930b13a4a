import type { Database } from '../../db/client.ts';
import type { ConnectionEventsTable, WebhookDeliveriesTable } from '../../db/schema.ts';

/** A keyset position in a newest-first listing: rows strictly older than (created_at, id). */
export interface PagePosition {
  readonly createdAt: number;
  readonly id: string;
}

export interface EventQuery {
  readonly connectionId?: string | undefined;
  readonly type?: string | undefined;
  readonly before?: PagePosition | undefined;
  readonly limit: number;
}

export function createEventsStore(db: Database) {
  const k = db.kysely;
  return {
    /**
     * Stores an event and, in the same short transaction, one pending delivery per live, active
     * webhook that `wants` the event. Returns how many deliveries were queued.
     */
    async append(
      event: ConnectionEventsTable,
      deliveryFor: (webhook: { id: string; event_types: string }) => WebhookDeliveriesTable | undefined,
    ): Promise<number> {
      return k.transaction().execute(async (trx) => {
        await trx.insertInto('connection_events').values(event).execute();
        const webhooks = await trx
          .selectFrom('webhooks')
          .select(['id', 'event_types'])
          .where('deleted_at', 'is', null)
          .where('disabled_at', 'is', null)
          .execute();
        const deliveries = webhooks.flatMap((w) => deliveryFor(w) ?? []);
        if (deliveries.length > 0) await trx.insertInto('webhook_deliveries').values(deliveries).execute();
        return deliveries.length;
      });
    },

    /**
     * Deletes up to `limit` of the oldest events created before `cutoff`, with their finished
     * deliveries (indexes: events by time, deliveries by event). An event whose delivery is still
     * pending stays until it is finished. Returns how many events were deleted and whether older
     * ones remain to look at.
     */
    async pruneBefore(cutoff: number, limit: number): Promise<{ deleted: number; more: boolean }> {
      return k.transaction().execute(async (trx) => {
        const old = await trx
          .selectFrom('connection_events')
          .select('id')
          .where('created_at', '<', cutoff)
          .orderBy('created_at')
          .orderBy('id')
          .limit(limit)
          .execute();
        if (old.length === 0) return { deleted: 0, more: false };
        const ids = old.map((r) => r.id);
        await trx
          .deleteFrom('webhook_deliveries')
          .where('event_id', 'in', ids)
          .where('status', '<>', 'pending')
          .execute();
        const result = await trx
          .deleteFrom('connection_events')
          .where('id', 'in', ids)
          .where((eb) =>
            eb.not(
              eb.exists(
                eb
                  .selectFrom('webhook_deliveries')
                  .select('id')
                  .whereRef('webhook_deliveries.event_id', '=', 'connection_events.id'),
              ),
            ),
          )
          .executeTakeFirst();
        const deleted = Number(result.numDeletedRows ?? 0);
        // Only when this batch was full and made progress: kept (pending) events never loop.
        return { deleted, more: old.length === limit && deleted > 0 };
      });
    },

    /** Newest first. */
    async list(query: EventQuery): Promise<ConnectionEventsTable[]> {
      let q = k
        .selectFrom('connection_events')
        .selectAll()
        .orderBy('created_at', 'desc')
        .orderBy('id', 'desc')
        .limit(query.limit);
      if (query.connectionId !== undefined) q = q.where('connection_id', '=', query.connectionId);
      if (query.type !== undefined) q = q.where('type', '=', query.type);
      const before = query.before;
      if (before !== undefined)
        q = q.where((eb) =>
          eb.or([
            eb('created_at', '<', before.createdAt),
            eb.and([eb('created_at', '=', before.createdAt), eb('id', '<', before.id)]),
          ]),
        );
      return q.execute();
    },
  };
}

export type EventsStore = ReturnType<typeof createEventsStore>;
