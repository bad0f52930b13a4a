import { type Kysely, sql, type Transaction } from 'kysely';
import type { Database } from '../../db/client.ts';
import type { DB, ProvidersTable } from '../../db/schema.ts';

/** pg_advisory_xact_lock key serialising claims on provider names and aliases (arbitrary, fixed). */
const NAME_LOCK = 7_264_013_311;

export function createProvidersStore(db: Database) {
  const store = storeOver(db.kysely);
  return {
    ...store,
    /**
     * Runs `fn` in a transaction that holds the provider-name lock, so "is this name or alias
     * free?" and the write that claims it cannot interleave with another replica's (names and
     * aliases live in two tables, so no single unique index covers both). SQLite transactions are
     * serialised already.
     */
    withNameLock<T>(fn: (locked: ReturnType<typeof storeOver>) => Promise<T>): Promise<T> {
      return db.kysely.transaction().execute(async (trx) => {
        if (db.dialect === 'postgres') await sql`SELECT pg_advisory_xact_lock(${NAME_LOCK})`.execute(trx);
        return fn(storeOver(trx));
      });
    },
    /**
     * Whether any connection of the provider holds credentials (tokens, captured fields, or the
     * marker of a copy in the secret backend), or a consent holds some for its confirmation: what a
     * change of the provider's endpoints would send elsewhere. Revoked and failed connections hold
     * none (their credentials are erased).
     */
    async connectionsHoldCredentials(providerId: string): Promise<boolean> {
      const row = await db.kysely
        .selectFrom('connections')
        .select('id')
        .where('provider_id', '=', providerId)
        .where('credentials', 'is not', null)
        .limit(1)
        .executeTakeFirst();
      if (row !== undefined) return true;
      // Tokens held for a consent's confirmation (verify: true) are stored credentials too: they
      // become a connection's, or are revoked at the provider (housekeeping, once expired), with
      // the profile as it is then. Rows expired over a day ago were long swept (by the expires_at
      // index: no scan of every confirmation there ever was).
      const held = await db.kysely
        .selectFrom('consent_confirmations')
        .select('id')
        .where('expires_at', '>', Date.now() - 86_400_000)
        .where('provider_id', '=', providerId)
        .where('held', 'is not', null)
        .limit(1)
        .executeTakeFirst();
      return held !== undefined;
    },
  };
}

function storeOver(k: Kysely<DB> | Transaction<DB>) {
  const live = () => k.selectFrom('providers').where('deleted_at', 'is', null);
  return {
    async insert(row: ProvidersTable): Promise<void> {
      await k.insertInto('providers').values(row).execute();
    },
    /** Whether any row, deleted ones included, has this id. */
    async idTaken(id: string): Promise<boolean> {
      return (
        (await k.selectFrom('providers').select('id').where('id', '=', id).executeTakeFirst()) !== undefined
      );
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
    /** Soft delete, releasing the provider's aliases (call inside `withNameLock`). */
    async softDelete(id: string, version: number, at: number): Promise<boolean> {
      const result = await k
        .updateTable('providers')
        .set({ deleted_at: at, updated_at: at, version: version + 1 })
        .where('id', '=', id)
        .where('version', '=', version)
        .where('deleted_at', 'is', null)
        .executeTakeFirst();
      if (Number(result.numUpdatedRows) !== 1) return false;
      await k.deleteFrom('provider_aliases').where('provider_id', '=', id).execute();
      return true;
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
export type LockedProvidersStore = ReturnType<typeof storeOver>;
