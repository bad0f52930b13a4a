import { sql } from 'kysely';
import { open, seal } from '../../crypto/envelope.ts';
import type { KeyRing } from '../../crypto/keyring.ts';
import type { Database } from '../../db/client.ts';
import { checkPath, checkPrefix, checkValue, listLimit, type SecretBackend } from './secret-backend.ts';

/** The ciphertext of a secret is bound to its path: a value copied to another path does not open. */
export const bindingFor = (path: string) => ({ table: 'secret_store', id: path, field: 'value' });

/** Stores secrets in the broker's own database, encrypted with the key ring. */
export function createInternalBackend(
  db: Database,
  ring: KeyRing,
  now: () => number = Date.now,
): SecretBackend {
  const k = db.kysely;
  return {
    kind: 'internal',
    // One row per path: an overwrite replaces the value, so old versions are not readable.
    keepsVersions: false,
    async get(path, options = {}) {
      checkPath(path);
      const row = await k
        .selectFrom('secret_store')
        .select(['value', 'version'])
        .where('path', '=', path)
        .executeTakeFirst();
      if (row === undefined) return null;
      if (options.version !== undefined && options.version !== String(row.version)) return null;
      return { value: open(ring, row.value, bindingFor(path)), version: String(row.version) };
    },
    async put(path, value) {
      checkPath(path);
      checkValue(value);
      const sealed = seal(ring, value, bindingFor(path));
      const t = now();
      const row = await k
        .insertInto('secret_store')
        .values({ path, version: 1, value: sealed, created_at: t, updated_at: t })
        .onConflict((oc) =>
          oc
            .column('path')
            .doUpdateSet({ value: sealed, updated_at: t, version: sql<number>`secret_store.version + 1` }),
        )
        .returning('version')
        .executeTakeFirstOrThrow();
      return { version: String(row.version) };
    },
    async delete(path) {
      checkPath(path);
      await k.deleteFrom('secret_store').where('path', '=', path).execute();
    },
    async list(prefix, options = {}) {
      checkPrefix(prefix);
      const limit = listLimit(options.limit);
      // Byte order on both dialects (PostgreSQL's default collation ignores punctuation), and a
      // prefix test by `substr` instead of LIKE, so `%` and `_` in paths are not patterns.
      const col = db.dialect === 'postgres' ? sql<string>`path collate "C"` : sql<string>`path`;
      let q = k
        .selectFrom('secret_store')
        .select('path')
        .where(col, '>=', prefix)
        .where(sql<string>`substr(path, 1, ${[...prefix].length})`, '=', prefix)
        .orderBy(col)
        .limit(limit);
      if (options.after !== undefined) q = q.where(col, '>', options.after);
      return (await q.execute()).map((r) => r.path);
    },
    async healthCheck() {
      await db.ping();
    },
    async close() {},
  };
}
