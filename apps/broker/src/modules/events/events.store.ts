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
