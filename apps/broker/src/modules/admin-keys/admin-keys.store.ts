import type { Database } from '../../db/client.ts';
import { coalescedReads } from '../../db/coalesce.ts';
import type { AdminKeysTable } from '../../db/schema.ts';

/** How many revoked keys a list with `include_revoked` shows: the most recently revoked. */
export const REVOKED_LISTED = 1000;

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
    /**
     * Every live key, oldest first (their number is capped at creation, so the list is whole),
     * then with `includeRevoked` the `REVOKED_LISTED` most recently revoked.
     */
    async list(includeRevoked: boolean): Promise<AdminKeysTable[]> {
      const live = await k
        .selectFrom('admin_keys')
        .selectAll()
        .where('revoked_at', 'is', null)
        .orderBy('created_at', 'asc')
        .orderBy('id', 'asc')
        .execute();
      if (!includeRevoked) return live;
      const revoked = await k
        .selectFrom('admin_keys')
        .selectAll()
        .where('revoked_at', 'is not', null)
        .orderBy('revoked_at', 'desc')
        .limit(REVOKED_LISTED)
        .execute();
      return [...live, ...revoked];
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
