/** Every query on `agent_sessions`; the agents themselves are the agents module's (its service). */
import type { Database } from '../../db/client.ts';
import type { AgentSessionsTable } from '../../db/schema.ts';

export function createSessionsStore(db: Database) {
  const k = db.kysely;
  return {
    async insert(row: AgentSessionsTable): Promise<void> {
      await k.insertInto('agent_sessions').values(row).execute();
    },

    /** The session by id (primary key), open or not. */
    async find(id: string): Promise<AgentSessionsTable | undefined> {
      return k.selectFrom('agent_sessions').selectAll().where('id', '=', id).executeTakeFirst();
    },

    /** Closes the session at `t` unless it is already closed (the first close wins). */
    async close(id: string, t: number): Promise<void> {
      await k
        .updateTable('agent_sessions')
        .set({ closed_at: t })
        .where('id', '=', id)
        .where('closed_at', 'is', null)
        .execute();
    },
  };
}

export type SessionsStore = ReturnType<typeof createSessionsStore>;
