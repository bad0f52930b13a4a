import type { Database } from '../../db/client.ts';
import type { AdminKeysTable } from '../../db/schema.ts';

export function createAdminKeysStore(db: Database) {
  const k = db.kysely;
  return {
    async insert(row: AdminKeysTable): Promise<void> {
      await k.insertInto('admin_keys').values(row).execute();
    },
    async findById(id: string): Promise<AdminKeysTable | undefined> {
      return k.selectFrom('admin_keys').selectAll().where('id', '=', id).executeTakeFirst();
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
