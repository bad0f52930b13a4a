/**
 * Every query on the agents module's tables: `agents`, `agent_secrets`, `agent_assertions` and
 * `custom_scopes`. Nothing else reads or writes them; other modules ask the agents service.
 */
import type { Database } from '../../db/client.ts';
import { coalescedReads } from '../../db/coalesce.ts';
import type { AgentSecretsTable, AgentsTable } from '../../db/schema.ts';

/** An agent row with the client secret that was looked up by its id (client-auth.ts). */
export type AgentWithSecret = AgentsTable & {
  secret_hash: string;
  secret_expires_at: number | null;
  secret_revoked_at: number | null;
};

export function createAgentsStore(db: Database) {
  const k = db.kysely;
  const live = () => k.selectFrom('agents').selectAll().where('deleted_at', 'is', null);

  /*
   * The hot query of every agent request (access-tokens.ts): the row by primary key, live or not
   * (the caller checks `deleted_at` and `disabled_at`), compiled once and run as a prepared
   * statement; on PostgreSQL, concurrent reads are coalesced into one `= ANY($1)` query. Nothing is
   * cached: each answer is read after it was asked for.
   */
  const findOne = k.selectFrom('agents').selectAll().where('id', '=', '').compile();
  const findMany = k
    .selectFrom('agents')
    .selectAll()
    .where((eb) => eb('id', '=', eb.fn.any(eb.val<string[]>([]))))
    .compile();
  const findCoalesced = coalescedReads<string, AgentsTable>(
    async (ids) => {
      const { rows } = await db.prepared<AgentsTable>(findMany.sql, [ids]);
      return new Map(rows.map((r) => [r.id, r]));
    },
    { maxBatch: 200, maxInFlight: 2 },
  );

  return {
    /** The agent by id, deleted or not (see above: one prepared primary-key query). */
    async findById(id: string): Promise<AgentsTable | undefined> {
      return db.dialect === 'postgres'
        ? findCoalesced(id)
        : (await db.prepared<AgentsTable>(findOne.sql, [id])).rows[0];
    },

    async findLiveById(id: string): Promise<AgentsTable | undefined> {
      return live().where('id', '=', id).executeTakeFirst();
    },

    async findLiveByAgentId(agentId: string): Promise<AgentsTable | undefined> {
      return live().where('agent_id', '=', agentId).executeTakeFirst();
    },

    async listLive(): Promise<AgentsTable[]> {
      return live().orderBy('agent_id').limit(1000).execute();
    },

    async insert(row: AgentsTable): Promise<void> {
      await k.insertInto('agents').values(row).execute();
    },

    /** Applies `set` if the live row is still at `version`; false when another writer came first. */
    async update(id: string, version: number, set: Partial<AgentsTable>): Promise<boolean> {
      const result = await k
        .updateTable('agents')
        .set(set)
        .where('id', '=', id)
        .where('version', '=', version)
        .where('deleted_at', 'is', null)
        .executeTakeFirst();
      return Number(result.numUpdatedRows) === 1;
    },

    /** Soft-deletes the agent and revokes its live secrets, together. */
    async softDelete(id: string, version: number, t: number): Promise<void> {
      await k.transaction().execute(async (trx) => {
        await trx
          .updateTable('agents')
          .set({ deleted_at: t, updated_at: t, version: version + 1 })
          .where('id', '=', id)
          .execute();
        await trx
          .updateTable('agent_secrets')
          .set({ revoked_at: t })
          .where('agent_uuid', '=', id)
          .where('revoked_at', 'is', null)
          .execute();
      });
    },

    /** The agent's secrets that still work at `t` (ids and dates only), oldest first. */
    async liveSecrets(agentUuid: string, t: number) {
      return k
        .selectFrom('agent_secrets')
        .select(['id', 'created_at', 'expires_at'])
        .where('agent_uuid', '=', agentUuid)
        .where('revoked_at', 'is', null)
        .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', t)]))
        .orderBy('created_at')
        .execute();
    },

    async insertSecret(row: AgentSecretsTable): Promise<void> {
      await k.insertInto('agent_secrets').values(row).execute();
    },

    /** Unrevoked secrets that would outlive `expiresAt` now expire then (a rotation's overlap). */
    async expireSecrets(agentUuid: string, expiresAt: number): Promise<void> {
      await k
        .updateTable('agent_secrets')
        .set({ expires_at: expiresAt })
        .where('agent_uuid', '=', agentUuid)
        .where('revoked_at', 'is', null)
        .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', expiresAt)]))
        .execute();
    },

    /**
     * Revokes one unrevoked secret of the live agent and, with it, every access token and session
     * the agent was issued up to `t` (`tokens_not_before`): tokens do not record which secret
     * obtained them. False when there is no such secret.
     */
    async revokeSecret(agentUuid: string, secretId: string, t: number): Promise<boolean> {
      return k.transaction().execute(async (trx) => {
        const result = await trx
          .updateTable('agent_secrets')
          .set({ revoked_at: t })
          .where('id', '=', secretId)
          .where('agent_uuid', '=', agentUuid)
          .where('revoked_at', 'is', null)
          .executeTakeFirst();
        if (Number(result.numUpdatedRows) !== 1) return false;
        await trx
          .updateTable('agents')
          .set((eb) => ({ tokens_not_before: t, updated_at: t, version: eb('version', '+', 1) }))
          .where('id', '=', agentUuid)
          .execute();
        return true;
      });
    },

    /** A secret by its id, with its live agent (one indexed join), for client authentication. */
    async findSecretWithAgent(secretId: string): Promise<AgentWithSecret | undefined> {
      return k
        .selectFrom('agent_secrets')
        .innerJoin('agents', 'agents.id', 'agent_secrets.agent_uuid')
        .selectAll('agents')
        .select([
          'agent_secrets.secret_hash',
          'agent_secrets.expires_at as secret_expires_at',
          'agent_secrets.revoked_at as secret_revoked_at',
        ])
        .where('agent_secrets.id', '=', secretId)
        .where('agents.deleted_at', 'is', null)
        .executeTakeFirst();
    },

    /** Records an assertion id; throws when it was already used (the primary key refuses it). */
    async insertAssertion(jtiHash: string, expiresAt: number): Promise<void> {
      await k.insertInto('agent_assertions').values({ jti_hash: jtiHash, expires_at: expiresAt }).execute();
    },

    async deleteAssertionsBefore(t: number): Promise<number> {
      const result = await k.deleteFrom('agent_assertions').where('expires_at', '<', t).executeTakeFirst();
      return Number(result.numDeletedRows);
    },

    /** Throws when the name is taken (the primary key refuses it). */
    async insertScope(row: { name: string; description: string; created_at: number }): Promise<void> {
      await k.insertInto('custom_scopes').values(row).execute();
    },

    async listScopes() {
      return k
        .selectFrom('custom_scopes')
        .select(['name', 'description'])
        .orderBy('name')
        .limit(1000)
        .execute();
    },

    async deleteScope(name: string): Promise<boolean> {
      const result = await k.deleteFrom('custom_scopes').where('name', '=', name).executeTakeFirst();
      return Number(result.numDeletedRows) === 1;
    },

    /** Which of `names` are defined custom scopes. */
    async scopeNamesAmong(names: readonly string[]): Promise<string[]> {
      if (names.length === 0) return [];
      const rows = await k
        .selectFrom('custom_scopes')
        .select('name')
        .where('name', 'in', [...names])
        .execute();
      return rows.map((r) => r.name);
    },
  };
}

export type AgentsStore = ReturnType<typeof createAgentsStore>;
