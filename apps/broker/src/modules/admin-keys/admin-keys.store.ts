import type { Database } from '../../db/client.ts';
import { coalescedReads } from '../../db/coalesce.ts';
import type { AdminKeysTable } from '../../db/schema.ts';

export function createAdminKeysStore(db: Database) {
  const k = db.kysely;
  /*
   * Every authenticated request looks its key up by id. Nothing is cached, so a key revoked by any
   * process (the CLI, another replica) fails on its next request; on PostgreSQL concurrent lookups
   * share one prepared query (`id = ANY($1)`) instead of one round trip each.
   */
  const findOne = k.selectFrom('admin_keys').selectAll().where('id', '=', '').compile();
  const findMany = k
    .selectFrom('admin_keys')
    .selectAll()
    .where((eb) => eb('id', '=', eb.fn.any(eb.val<string[]>([]))))
    .compile();
  const findCoalesced = coalescedReads<string, AdminKeysTable>(
    async (ids) => {
      const { rows } = await db.prepared<AdminKeysTable>(findMany.sql, [ids]);
      return new Map(rows.map((r) => [r.id, r]));
    },
    { maxBatch: 200, maxInFlight: 2 },
  );
  return {
    async insert(row: AdminKeysTable): Promise<void> {
      await k.insertInto('admin_keys').values(row).execute();
    },
    async findById(id: string): Promise<AdminKeysTable | undefined> {
      if (db.dialect === 'postgres') return findCoalesced(id);
      return (await db.prepared<AdminKeysTable>(findOne.sql, [id])).rows[0];
    },
    async findLiveByName(name: string): Promise<AdminKeysTable | undefined> {
      return k
        .selectFrom('admin_keys')
        .selectAll()
        .where('name', '=', name)
        .where('revoked_at', 'is', null)
        .executeTakeFirst();
    },
    async list(includeRevoked: boolean): Promise<AdminKeysTable[]> {
      let q = k.selectFrom('admin_keys').selectAll().orderBy('created_at', 'asc').limit(1000);
      if (!includeRevoked) q = q.where('revoked_at', 'is', null);
      return q.execute();
    },
    async countLive(): Promise<number> {
      const row = await k
        .selectFrom('admin_keys')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('revoked_at', 'is', null)
        .executeTakeFirstOrThrow();
      return Number(row.n);
    },
    async revoke(id: string, at: number): Promise<boolean> {
      const result = await k
        .updateTable('admin_keys')
        .set({ revoked_at: at })
        .where('id', '=', id)
        .where('revoked_at', 'is', null)
        .executeTakeFirst();
      return Number(result.numUpdatedRows) > 0;
    },
    async touch(id: string, at: number): Promise<void> {
      await k.updateTable('admin_keys').set({ last_used_at: at }).where('id', '=', id).execute();
    },
  };
}

export type AdminKeysStore = ReturnType<typeof createAdminKeysStore>;
