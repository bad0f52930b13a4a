import type { Database } from '../../db/client.ts';
import type { WebhookDeliveriesTable, WebhooksTable } from '../../db/schema.ts';
import type { PagePosition } from './events.store.ts';

/** A delivery row with the type of its event, as the delivery log shows it. */
export type DeliveryRow = WebhookDeliveriesTable & { event_type: string };

export interface DeliveryQuery {
  readonly webhookId: string;
  readonly status?: string | undefined;
  readonly before?: PagePosition | undefined;
  readonly limit: number;
}

export function createWebhooksStore(db: Database) {
  const k = db.kysely;
  const live = () => k.selectFrom('webhooks').where('deleted_at', 'is', null);
  const deliveriesWithType = () =>
    k
      .selectFrom('webhook_deliveries as d')
      .innerJoin('connection_events as e', 'e.id', 'd.event_id')
      .selectAll('d')
      .select('e.type as event_type');

  return {
    async insert(row: WebhooksTable): Promise<void> {
      await k.insertInto('webhooks').values(row).execute();
    },
    async findLive(id: string): Promise<WebhooksTable | undefined> {
      return live().selectAll().where('id', '=', id).executeTakeFirst();
    },
    async listLive(limit: number): Promise<WebhooksTable[]> {
      return live().selectAll().orderBy('created_at').orderBy('id').limit(limit).execute();
    },
    async countLive(): Promise<number> {
      const row = await live()
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .executeTakeFirstOrThrow();
      return Number(row.n);
    },
    /** Applies only while the webhook is live. */
    async update(
      id: string,
      set: Partial<Pick<WebhooksTable, 'url' | 'description' | 'event_types' | 'secret' | 'disabled_at'>> & {
        updated_at: number;
      },
    ): Promise<boolean> {
      const result = await k
        .updateTable('webhooks')
        .set(set)
        .where('id', '=', id)
        .where('deleted_at', 'is', null)
        .executeTakeFirst();
      return Number(result.numUpdatedRows) === 1;
    },
    /**
     * Soft delete: the secret is erased and the webhook's queued deliveries end as failed, in one
     * transaction, so no worker signs anything with it afterwards.
     */
    async softDelete(id: string, at: number): Promise<boolean> {
      return k.transaction().execute(async (trx) => {
        const result = await trx
          .updateTable('webhooks')
          .set({ deleted_at: at, updated_at: at, secret: null })
          .where('id', '=', id)
          .where('deleted_at', 'is', null)
          .executeTakeFirst();
        if (Number(result.numUpdatedRows) !== 1) return false;
        await trx
          .updateTable('webhook_deliveries')
          .set({
            status: 'failed',
            next_attempt_at: null,
            lease_owner: null,
            lease_until: null,
            last_error: 'the webhook was deleted',
            updated_at: at,
          })
          .where('webhook_id', '=', id)
          .where('status', '=', 'pending')
          .execute();
        return true;
      });
    },

    /** The delivery log of one webhook, newest first. */
    async deliveries(query: DeliveryQuery): Promise<DeliveryRow[]> {
      let q = deliveriesWithType()
        .where('d.webhook_id', '=', query.webhookId)
        .orderBy('d.created_at', 'desc')
        .orderBy('d.id', 'desc')
        .limit(query.limit);
      if (query.status !== undefined) q = q.where('d.status', '=', query.status);
      const before = query.before;
      if (before !== undefined)
        q = q.where((eb) =>
          eb.or([
            eb('d.created_at', '<', before.createdAt),
            eb.and([eb('d.created_at', '=', before.createdAt), eb('d.id', '<', before.id)]),
          ]),
        );
      return q.execute();
    },
    async findDelivery(id: string): Promise<DeliveryRow | undefined> {
      return deliveriesWithType().where('d.id', '=', id).executeTakeFirst();
    },
    async insertDelivery(row: WebhookDeliveriesTable): Promise<void> {
      await k.insertInto('webhook_deliveries').values(row).execute();
    },
  };
}

export type WebhooksStore = ReturnType<typeof createWebhooksStore>;
