import type { Database } from '../../db/client.ts';
import type { ProvidersTable } from '../../db/schema.ts';

export function createProvidersStore(db: Database) {
  const k = db.kysely;
  const live = () => k.selectFrom('providers').where('deleted_at', 'is', null);
  return {
    transaction: <T>(fn: () => Promise<T>) => k.transaction().execute(fn),

    async insert(row: ProvidersTable): Promise<void> {
      await k.insertInto('providers').values(row).execute();
    },
    async findLive(id: string): Promise<ProvidersTable | undefined> {
      return live().selectAll().where('id', '=', id).executeTakeFirst();
    },
    async findLiveByName(name: string): Promise<ProvidersTable | undefined> {
      return live().selectAll().where('name', '=', name).executeTakeFirst();
    },
    async findLiveByAlias(alias: string): Promise<ProvidersTable | undefined> {
      return k
        .selectFrom('provider_aliases')
        .innerJoin('providers', 'providers.id', 'provider_aliases.provider_id')
        .selectAll('providers')
        .where('provider_aliases.alias', '=', alias)
        .where('providers.deleted_at', 'is', null)
        .executeTakeFirst();
    },
    async listLive(limit: number): Promise<Pick<ProvidersTable, 'id' | 'name' | 'auth_type' | 'profile'>[]> {
      return live().select(['id', 'name', 'auth_type', 'profile']).orderBy('name').limit(limit).execute();
    },
    /** Optimistic update: applies only while the row is live and still at `version`. */
    async update(
      id: string,
      version: number,
      set: Pick<ProvidersTable, 'name' | 'auth_type' | 'profile' | 'updated_at'>,
    ): Promise<boolean> {
      const result = await k
        .updateTable('providers')
        .set({ ...set, version: version + 1 })
        .where('id', '=', id)
        .where('version', '=', version)
        .where('deleted_at', 'is', null)
        .executeTakeFirst();
      return Number(result.numUpdatedRows) === 1;
    },
    /** Soft delete; the provider's aliases are released in the same transaction. */
    async softDelete(id: string, version: number, at: number): Promise<boolean> {
      return k.transaction().execute(async (trx) => {
        const result = await trx
          .updateTable('providers')
          .set({ deleted_at: at, updated_at: at, version: version + 1 })
          .where('id', '=', id)
          .where('version', '=', version)
          .where('deleted_at', 'is', null)
          .executeTakeFirst();
        if (Number(result.numUpdatedRows) !== 1) return false;
        await trx.deleteFrom('provider_aliases').where('provider_id', '=', id).execute();
        return true;
      });
    },

    async aliasesOf(providerId: string): Promise<string[]> {
      const rows = await k
        .selectFrom('provider_aliases')
        .select('alias')
        .where('provider_id', '=', providerId)
        .orderBy('alias')
        .execute();
      return rows.map((r) => r.alias);
    },
    async aliasesOfMany(ids: readonly string[]): Promise<Map<string, string[]>> {
      const out = new Map<string, string[]>();
      if (ids.length === 0) return out;
      const rows = await k
        .selectFrom('provider_aliases')
        .select(['alias', 'provider_id'])
        .where('provider_id', 'in', ids)
        .orderBy('alias')
        .execute();
      for (const r of rows) out.set(r.provider_id, [...(out.get(r.provider_id) ?? []), r.alias]);
      return out;
    },
    async aliasExists(alias: string): Promise<boolean> {
      return (
        (await k
          .selectFrom('provider_aliases')
          .select('alias')
          .where('alias', '=', alias)
          .executeTakeFirst()) !== undefined
      );
    },
    async insertAlias(alias: string, providerId: string, at: number): Promise<void> {
      await k
        .insertInto('provider_aliases')
        .values({ alias, provider_id: providerId, created_at: at })
        .execute();
    },
    async deleteAlias(alias: string, providerId: string): Promise<boolean> {
      const result = await k
        .deleteFrom('provider_aliases')
        .where('alias', '=', alias)
        .where('provider_id', '=', providerId)
        .executeTakeFirst();
      return Number(result.numDeletedRows) === 1;
    },
  };
}

export type ProvidersStore = ReturnType<typeof createProvidersStore>;
