import type { Database } from '../../db/client.ts';
import type { ConnectSessionsTable } from '../../db/schema.ts';

/** `connect_sessions` (migration 0015): written only here. */
export function createConnectStore(db: Database) {
  const k = db.kysely;
  return {
    async insert(row: ConnectSessionsTable): Promise<void> {
      await k.insertInto('connect_sessions').values(row).execute();
    },

    /** By the SHA-256 of its token, used or not, expired or not (the page says which). */
    async findByTokenHash(tokenHash: string): Promise<ConnectSessionsTable | undefined> {
      return k
        .selectFrom('connect_sessions')
        .selectAll()
        .where('token_hash', '=', tokenHash)
        .executeTakeFirst();
    },

    async find(id: string): Promise<ConnectSessionsTable | undefined> {
      return k.selectFrom('connect_sessions').selectAll().where('id', '=', id).executeTakeFirst();
    },

    /**
     * Uses the session up, atomically: of two picks with the same token exactly one gets it. An
     * expired or used session is not claimed.
     */
    async claim(id: string, now: number): Promise<boolean> {
      const result = await k
        .updateTable('connect_sessions')
        .set({ used_at: now })
        .where('id', '=', id)
        .where('used_at', 'is', null)
        .where('expires_at', '>', now)
        .executeTakeFirst();
      return Number(result.numUpdatedRows) === 1;
    },

    /** The pending connection a claimed session started, and where its browser was sent. */
    async setConnection(id: string, connectionId: string, authUrl: string): Promise<void> {
      await k
        .updateTable('connect_sessions')
        .set({ connection_id: connectionId, auth_url: authUrl })
        .where('id', '=', id)
        .execute();
    },

    /** Sessions that expired before `before` (used or not) are removed. */
    async deleteExpired(before: number): Promise<number> {
      const result = await k
        .deleteFrom('connect_sessions')
        .where('expires_at', '<', before)
        .executeTakeFirst();
      return Number(result.numDeletedRows);
    },
  };
}

export type ConnectStore = ReturnType<typeof createConnectStore>;
