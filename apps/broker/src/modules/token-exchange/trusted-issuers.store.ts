import type { Database } from '../../db/client.ts';
import type { TrustedIssuersTable } from '../../db/schema.ts';

/** Rows of `trusted_issuers`; a deleted issuer keeps its row (`deleted_at`) and stops being trusted. */
export function createTrustedIssuersStore(db: Database) {
  const k = db.kysely;
  const live = () => k.selectFrom('trusted_issuers').selectAll().where('deleted_at', 'is', null);

  return {
    async insert(row: TrustedIssuersTable): Promise<void> {
      await k.insertInto('trusted_issuers').values(row).execute();
    },
    async findLive(id: string): Promise<TrustedIssuersTable | undefined> {
      return live().where('id', '=', id).executeTakeFirst();
    },
    /** The live issuer whose `issuer` equals a token's `iss` exactly (no normalisation). */
    async findLiveByIssuer(issuer: string): Promise<TrustedIssuersTable | undefined> {
      return live().where('issuer', '=', issuer).executeTakeFirst();
    },
    async listLive(limit: number): Promise<TrustedIssuersTable[]> {
      return live().orderBy('issuer').orderBy('id').limit(limit).execute();
    },
    /** Optimistic: applies only at `version` while live; false when someone else changed it first. */
    async update(id: string, version: number, set: Partial<TrustedIssuersTable>): Promise<boolean> {
      const result = await k
        .updateTable('trusted_issuers')
        .set(set)
        .where('id', '=', id)
        .where('version', '=', version)
        .where('deleted_at', 'is', null)
        .executeTakeFirst();
      return Number(result.numUpdatedRows) === 1;
    },
    async softDelete(id: string, at: number): Promise<boolean> {
      const result = await k
        .updateTable('trusted_issuers')
        .set((eb) => ({ deleted_at: at, updated_at: at, version: eb('version', '+', 1) }))
        .where('id', '=', id)
        .where('deleted_at', 'is', null)
        .executeTakeFirst();
      return Number(result.numUpdatedRows) === 1;
    },
  };
}

export type TrustedIssuersStore = ReturnType<typeof createTrustedIssuersStore>;
