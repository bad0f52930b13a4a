import { sql } from 'kysely';
import type { Database } from '../../db/client.ts';
import type { UserSecretsTable, UserSecretVersionsTable } from '../../db/schema.ts';

/** Whose secrets a query reaches: one user, one zone. */
export interface SecretOwner {
  readonly userId: string;
  readonly zone: string;
}

/** One stored version: a secret and its version number. */
export type VersionKey = Pick<UserSecretVersionsTable, 'secret_id' | 'version'>;

/**
 * Where a version's value is kept in the secret backend: the one definition of this format (the
 * service writes and reads there, maintenance.ts reads there for the key reports).
 */
export const versionPath = (secretId: string, version: number) => `user-secrets/${secretId}/v${version}`;

/**
 * Rows of `user_secrets` and `user_secret_versions`: every query on them. Values are never here;
 * they live in the secret backend under `versionPath`.
 */
export function createUserSecretsStore(db: Database) {
  const k = db.kysely;
  const owned = (owner: SecretOwner) =>
    k
      .selectFrom('user_secrets')
      .selectAll()
      .where('user_id', '=', owner.userId)
      .where('zone', '=', owner.zone);

  return {
    /** The secret by name, deleted or not. */
    async find(owner: SecretOwner, name: string): Promise<UserSecretsTable | undefined> {
      return owned(owner).where('name', '=', name).executeTakeFirst();
    },

    /** Throws when (user, zone, name) is taken, by a concurrent create say. */
    async insert(row: UserSecretsTable): Promise<void> {
      await k.insertInto('user_secrets').values(row).execute();
    },

    /**
     * At most `limit` after the name `after`, by name in byte order on both databases (PostgreSQL's
     * default collation would order `a-b` and `ab` by its own rules); deleted ones only when asked.
     */
    async list(
      owner: SecretOwner,
      includeDeleted: boolean,
      page: { after?: string | undefined; limit: number },
    ): Promise<UserSecretsTable[]> {
      const byName = db.dialect === 'postgres' ? sql<string>`name collate "C"` : sql<string>`name`;
      let q = owned(owner);
      if (!includeDeleted) q = q.where('deleted_at', 'is', null);
      if (page.after !== undefined) q = q.where(byName, '>', page.after);
      return q.orderBy(byName).limit(page.limit).execute();
    },

    /**
     * Claims version `current + 1`: applies only while the row is still at `current`, so two
     * writers never share a number. False when another writer moved it first.
     */
    async claimVersion(
      id: string,
      current: number,
      set: { updated_at: number; description?: string },
    ): Promise<boolean> {
      const result = await k
        .updateTable('user_secrets')
        .set({ current_version: current + 1, ...set })
        .where('id', '=', id)
        .where('current_version', '=', current)
        .executeTakeFirst();
      return Number(result.numUpdatedRows) === 1;
    },

    /** Gives a claimed version back (its value was never stored), unless a later one was claimed. */
    async releaseVersion(id: string, version: number): Promise<void> {
      await k
        .updateTable('user_secrets')
        .set({ current_version: version - 1 })
        .where('id', '=', id)
        .where('current_version', '=', version)
        .execute();
    },

    /** The newest version below `below` whose value was stored (it has its versions row). */
    async newestStored(secretId: string, below: number): Promise<number | undefined> {
      const row = await k
        .selectFrom('user_secret_versions')
        .select('version')
        .where('secret_id', '=', secretId)
        .where('version', '<', below)
        .orderBy('version', 'desc')
        .limit(1)
        .executeTakeFirst();
      return row?.version;
    },

    async insertVersion(row: UserSecretVersionsTable): Promise<void> {
      await k.insertInto('user_secret_versions').values(row).execute();
    },

    /** A secret's versions below `before`, newest first, at most `limit`. */
    async versions(
      secretId: string,
      page: { before?: number | undefined; limit: number },
    ): Promise<Omit<UserSecretVersionsTable, 'secret_id'>[]> {
      let q = k
        .selectFrom('user_secret_versions')
        .select(['version', 'created_at', 'created_by'])
        .where('secret_id', '=', secretId);
      if (page.before !== undefined) q = q.where('version', '<', page.before);
      return q.orderBy('version', 'desc').limit(page.limit).execute();
    },

    /** Every stored version of every secret, in a stable order (key rewrap). */
    async allVersions(): Promise<VersionKey[]> {
      return k
        .selectFrom('user_secret_versions')
        .select(['secret_id', 'version'])
        .orderBy('secret_id')
        .orderBy('version')
        .execute();
    },

    /**
     * One page of every stored version, in the order of `allVersions`, after `after` (from the
     * start when undefined): the key reports walk them without holding them all.
     */
    async versionsAfter(after: VersionKey | undefined, limit: number): Promise<VersionKey[]> {
      let q = k
        .selectFrom('user_secret_versions')
        .select(['secret_id', 'version'])
        .orderBy('secret_id')
        .orderBy('version')
        .limit(limit);
      if (after !== undefined)
        q = q.where((eb) =>
          eb.or([
            eb('secret_id', '>', after.secret_id),
            eb.and([eb('secret_id', '=', after.secret_id), eb('version', '>', after.version)]),
          ]),
        );
      return q.execute();
    },

    /** Sets the lifecycle columns (`deleted_at`, `disabled_at`) and `updated_at`. */
    async update(
      id: string,
      set: Partial<Pick<UserSecretsTable, 'deleted_at' | 'disabled_at'>> & { updated_at: number },
    ): Promise<void> {
      await k.updateTable('user_secrets').set(set).where('id', '=', id).execute();
    },
  };
}

export type UserSecretsStore = ReturnType<typeof createUserSecretsStore>;
