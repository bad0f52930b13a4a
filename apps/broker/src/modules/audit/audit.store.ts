import type { Kysely, Transaction } from 'kysely';
import type { Database } from '../../db/client.ts';
import type { AuditEventsTable, DB } from '../../db/schema.ts';

export interface AuditQuery {
  action?: string | undefined;
  actor?: string | undefined;
  resourceType?: string | undefined;
  resourceId?: string | undefined;
  since?: number | undefined;
  until?: number | undefined;
  beforeSeq?: number | undefined;
  limit: number;
}

export function createAuditStore(db: Database) {
  const k = db.kysely;
  return {
    /**
     * Appends rows after the current chain head inside one short transaction. The head row is
     * locked (`FOR UPDATE` on PostgreSQL; SQLite's write lock serialises the rest), so batches from
     * several replicas extend one chain.
     */
    async append(build: (head: { seq: number; hash: string }) => AuditEventsTable[]): Promise<void> {
      await k.transaction().execute(async (trx: Transaction<DB>) => {
        let q = trx.selectFrom('audit_chain').select(['seq', 'hash']).where('id', '=', 1);
        if (db.dialect === 'postgres') q = q.forUpdate();
        const head = await q.executeTakeFirstOrThrow();
        const rows = build(head);
        if (rows.length === 0) return;
        await trx.insertInto('audit_events').values(rows).execute();
        const last = rows[rows.length - 1]!;
        await trx
          .updateTable('audit_chain')
          .set({ seq: last.seq, hash: last.hash })
          .where('id', '=', 1)
          .execute();
      });
    },

    async head(): Promise<{ seq: number; hash: string }> {
      return k
        .selectFrom('audit_chain')
        .select(['seq', 'hash'])
        .where('id', '=', 1)
        .executeTakeFirstOrThrow();
    },

    /** Rows with seq > afterSeq in ascending order, for verification. */
    async pageAscending(afterSeq: number, limit: number): Promise<AuditEventsTable[]> {
      return k
        .selectFrom('audit_events')
        .selectAll()
        .where('seq', '>', afterSeq)
        .orderBy('seq', 'asc')
        .limit(limit)
        .execute();
    },

    /** Newest first, keyset-paged on seq (every filter column is indexed together with seq). */
    async query(q: AuditQuery, trx: Kysely<DB> = k): Promise<AuditEventsTable[]> {
      let sel = trx.selectFrom('audit_events').selectAll();
      if (q.action !== undefined) sel = sel.where('action', '=', q.action);
      if (q.actor !== undefined) sel = sel.where('actor', '=', q.actor);
      if (q.resourceType !== undefined) sel = sel.where('resource_type', '=', q.resourceType);
      if (q.resourceId !== undefined) sel = sel.where('resource_id', '=', q.resourceId);
      if (q.since !== undefined) sel = sel.where('occurred_at', '>=', q.since);
      if (q.until !== undefined) sel = sel.where('occurred_at', '<', q.until);
      if (q.beforeSeq !== undefined) sel = sel.where('seq', '<', q.beforeSeq);
      return sel.orderBy('seq', 'desc').limit(q.limit).execute();
    },
  };
}

export type AuditStore = ReturnType<typeof createAuditStore>;
