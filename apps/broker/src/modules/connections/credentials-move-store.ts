import { sql } from 'kysely';
import type { Database } from '../../db/client.ts';
import type { ConnectionsTable } from '../../db/schema.ts';
import { BACKEND_MARKER } from './credential-store.ts';

/** A connection's stored credentials column: sealed bytes, or the secret-backend marker. */
export interface CredentialsRow {
  readonly id: string;
  readonly credentials: Uint8Array;
}

const bytes = (value: Uint8Array | Buffer) => new Uint8Array(value);

/**
 * The queries that move a connection's credentials without refreshing it: `nexus secrets migrate
 * --tokens` (tokens-migration.ts) between the row and the secret backend, and `nexus import
 * original` (connections.import.ts) replacing an imported row's tokens. Every write is fenced by
 * the refresh lease its caller holds (`owner`), so no refresh can write between the read and it.
 */
export function createCredentialMoveQueries(db: Database) {
  const k = db.kysely;
  return {
    /** Connections holding credentials: all of them, or only those kept in the secret backend. */
    async countWithCredentials(where: 'anywhere' | 'in-backend'): Promise<number> {
      const q = k.selectFrom('connections').select((eb) => eb.fn.countAll<number>().as('n'));
      const row = await (where === 'in-backend'
        ? // The marker, with or without a write id after it (credential-store.ts).
          q.where(sql`substr(credentials, 1, ${sql.lit(BACKEND_MARKER.length)})`, '=', BACKEND_MARKER)
        : q.where('credentials', 'is not', null)
      ).executeTakeFirst();
      return Number(row?.n ?? 0);
    },

    /** Up to `limit` connections holding credentials, by id, after `after` (keyset pagination). */
    async pageWithCredentials(after: string | undefined, limit: number): Promise<CredentialsRow[]> {
      let q = k
        .selectFrom('connections')
        .select(['id', 'credentials'])
        .where('credentials', 'is not', null)
        .orderBy('id')
        .limit(limit);
      if (after !== undefined) q = q.where('id', '>', after);
      return (await q.execute()).map((r) => ({ id: r.id, credentials: bytes(r.credentials!) }));
    },

    /** The credentials column of these connections (rows without credentials left out). */
    async credentialsOf(ids: readonly string[]): Promise<CredentialsRow[]> {
      if (ids.length === 0) return [];
      const rows = await k
        .selectFrom('connections')
        .select(['id', 'credentials'])
        .where('id', 'in', ids)
        .execute();
      return rows.flatMap((r) =>
        r.credentials === null ? [] : [{ id: r.id, credentials: bytes(r.credentials) }],
      );
    },

    /** One connection's credentials column; undefined when it has none (revoked, expired) or is gone. */
    async credentialsOfOne(id: string): Promise<Uint8Array | undefined> {
      const row = await k
        .selectFrom('connections')
        .select('credentials')
        .where('id', '=', id)
        .executeTakeFirst();
      return row?.credentials == null ? undefined : bytes(row.credentials);
    },

    /** Points the row at `to` if it still holds `from` and `owner` holds its lease; whether it did. */
    async switchCredentials(id: string, from: Uint8Array, to: Uint8Array, owner: string): Promise<boolean> {
      const updated = await k
        .updateTable('connections')
        .set({ credentials: to })
        .where('id', '=', id)
        .where('credentials', '=', from)
        .where('refresh_lease_owner', '=', owner)
        .executeTakeFirst();
      return Number(updated.numUpdatedRows) === 1;
    },

    /**
     * Replaces the tokens of an imported connection that is active and was never refreshed here,
     * if `owner` holds its lease: clears its failure state and bumps `version`. Whether it did.
     */
    async replaceImportedTokens(
      id: string,
      owner: string,
      set: Pick<
        ConnectionsTable,
        'credentials' | 'access_expires_at' | 'access_issued_at' | 'refresh_due_at' | 'scopes'
      >,
      now: number,
    ): Promise<boolean> {
      const updated = await k
        .updateTable('connections')
        .set((eb) => ({
          ...set,
          last_error: null,
          refresh_failures: 0,
          failing_since: null,
          refresh_attempted_at: null,
          updated_at: now,
          version: eb('version', '+', 1),
        }))
        .where('id', '=', id)
        .where('status', '=', 'active')
        .where('last_refreshed_at', 'is', null)
        .where('refresh_lease_owner', '=', owner)
        .executeTakeFirst();
      return Number(updated.numUpdatedRows) === 1;
    },
  };
}
