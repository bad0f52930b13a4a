/** Every query on `agent_sessions`; the agents themselves are the agents module's (its service). */
import { sql } from 'kysely';
import type { Database } from '../../db/client.ts';
import type { AgentSessionsTable } from '../../db/schema.ts';

export interface SessionsFilter {
  agentUuid?: string | undefined;
  status?: 'active' | 'closed' | 'expired' | undefined;
  /** The user an on-behalf-of session acts for (`obo.user_id`). */
  actingFor?: string | undefined;
  connectionId?: string | undefined;
}

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

    /**
     * A page of sessions, newest first, keyset-paged on (created_at, id) after `after`. The agent
     * filter uses the (agent_uuid, created_at) index; the others filter what it or the table scan
     * reads, up to `limit` rows.
     */
    async listPage(
      filter: SessionsFilter,
      after: { createdAt: number; id: string } | undefined,
      limit: number,
      t: number,
    ): Promise<AgentSessionsTable[]> {
      let q = k.selectFrom('agent_sessions').selectAll();
      if (filter.agentUuid !== undefined) q = q.where('agent_uuid', '=', filter.agentUuid);
      if (filter.connectionId !== undefined) q = q.where('connection_id', '=', filter.connectionId);
      if (filter.status === 'closed') q = q.where('closed_at', 'is not', null);
      else if (filter.status === 'active') q = q.where('closed_at', 'is', null).where('expires_at', '>', t);
      else if (filter.status === 'expired') q = q.where('closed_at', 'is', null).where('expires_at', '<=', t);
      if (filter.actingFor !== undefined) {
        // `obo` is JSON text on both dialects.
        const user =
          db.dialect === 'postgres'
            ? sql<string>`(obo::jsonb ->> 'user_id')`
            : sql<string>`json_extract(obo, '$.user_id')`;
        q = q.where('obo', 'is not', null).where(user, '=', filter.actingFor);
      }
      if (after !== undefined)
        q = q.where((eb) =>
          eb.or([
            eb('created_at', '<', after.createdAt),
            eb.and([eb('created_at', '=', after.createdAt), eb('id', '<', after.id)]),
          ]),
        );
      return q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(limit).execute();
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
