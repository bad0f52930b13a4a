import { sql } from 'kysely';
import type { Database } from '../../db/client.ts';
import { databaseNow, type LeaseTimes, leaseFree } from './lease-store.ts';

/**
 * The background worker's queue (decision 0006): active connections by `refresh_due_at`, claimed
 * under a lease so replicas take disjoint sets.
 */
export function createRefreshQueue(db: Database) {
  const k = db.kysely;
  const dbNow = databaseNow(db);
  return {
    /** Nothing left for the worker to do for this connection (not refreshable, or not active). */
    async clearDue(id: string): Promise<void> {
      await k.updateTable('connections').set({ refresh_due_at: null }).where('id', '=', id).execute();
    },

    /**
     * The worker's claim: the earliest due active connections whose lease is free, leased under
     * `leaseId` in one short transaction. On PostgreSQL the rows are locked with
     * `FOR UPDATE SKIP LOCKED`, so replicas claiming at the same time take disjoint sets.
     * `tookOver` marks a lease that had expired in another holder's hands (a crashed replica).
     */
    async claimDue(
      leaseId: string,
      now: number,
      lease: LeaseTimes,
      limit: number,
      skipProviders: readonly string[],
    ): Promise<{ id: string; provider_id: string; tookOver: boolean }[]> {
      return k.transaction().execute(async (trx) => {
        let query = trx
          .selectFrom('connections')
          .select(['id', 'provider_id', 'refresh_lease_owner'])
          .where('status', '=', 'active')
          .where('refresh_due_at', '<=', now)
          .where(leaseFree(dbNow, lease.graceMs))
          .orderBy('refresh_due_at')
          .limit(limit);
        if (skipProviders.length > 0) query = query.where('provider_id', 'not in', [...skipProviders]);
        if (db.dialect === 'postgres') query = query.forUpdate().skipLocked();
        const due = await query.execute();
        if (due.length === 0) return [];
        await trx
          .updateTable('connections')
          .set({
            refresh_lease_owner: leaseId,
            refresh_lease_until: sql<number>`${dbNow} + ${lease.leaseMs}`,
          })
          .where(
            'id',
            'in',
            due.map((d) => d.id),
          )
          .execute();
        return due.map((d) => ({
          id: d.id,
          provider_id: d.provider_id,
          tookOver: d.refresh_lease_owner !== null,
        }));
      });
    },

    /** Active connections whose refresh is due (the worker's queue depth), by index range. */
    async countDue(now: number): Promise<number> {
      const row = await k
        .selectFrom('connections')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('status', '=', 'active')
        .where('refresh_due_at', '<=', now)
        .executeTakeFirst();
      return Number(row?.n ?? 0);
    },
  };
}
