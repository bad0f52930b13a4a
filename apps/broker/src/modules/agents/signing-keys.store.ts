/**
 * Every query on `signing_keys`, the broker's token-signing keys (signing-keys.ts seals, caches and
 * rotates them). `keys/rewrap.ts` re-seals the `private_key` column with the other sealed columns.
 */
import type { Database } from '../../db/client.ts';
import type { SigningKeysTable } from '../../db/schema.ts';

export function createSigningKeysStore(db: Database) {
  const k = db.kysely;
  const newestFirst = () =>
    k.selectFrom('signing_keys').selectAll().orderBy('created_at', 'desc').orderBy('kid');
  return {
    async insert(row: SigningKeysTable): Promise<void> {
      await k.insertInto('signing_keys').values(row).execute();
    },

    /** Keys not past retirement at `t` (the JWKS), newest first. */
    async unretiredAt(t: number): Promise<SigningKeysTable[]> {
      return newestFirst()
        .where((eb) => eb.or([eb('retire_at', 'is', null), eb('retire_at', '>', t)]))
        .execute();
    },

    /** Keys with no retirement scheduled (one of them signs), newest first. */
    async live(): Promise<SigningKeysTable[]> {
      return newestFirst().where('retire_at', 'is', null).execute();
    },

    /** The kids of the keys with no retirement scheduled. */
    async liveKids(): Promise<string[]> {
      const rows = await k.selectFrom('signing_keys').select('kid').where('retire_at', 'is', null).execute();
      return rows.map((r) => r.kid);
    },

    /** Schedules these keys' retirement at `at`. */
    async retire(kids: readonly string[], at: number): Promise<void> {
      if (kids.length === 0) return;
      await k
        .updateTable('signing_keys')
        .set({ retire_at: at })
        .where('kid', 'in', [...kids])
        .execute();
    },

    /** Deletes the keys retired before `t`; how many. */
    async deleteRetiredBefore(t: number): Promise<number> {
      const result = await k.deleteFrom('signing_keys').where('retire_at', '<', t).executeTakeFirst();
      return Number(result.numDeletedRows);
    },
  };
}

export type SigningKeysStore = ReturnType<typeof createSigningKeysStore>;
