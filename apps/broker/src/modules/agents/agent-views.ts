/** How an agent is found (by id or agent_id, live only) and shown to an operator. */
import type { Database } from '../../db/client.ts';
import type { AgentsTable } from '../../db/schema.ts';
import { errorFrom } from '../../errors/nexus-error.ts';
import { agentErrors } from './agents.errors.ts';
import { shownJwks } from './jwks.ts';

export const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
/** A JSON list column (`allowed_scopes`, `allowed_providers`, …) read back. */
export const list = (json: string) => JSON.parse(json) as string[];

export interface AgentView {
  id: string;
  agent_id: string;
  description: string;
  allowed_scopes: string[];
  allowed_providers: string[];
  allowed_workspaces: string[];
  allowed_secrets: string[];
  active: boolean;
  jwks_uri: string | null;
  has_jwks: boolean;
  jwks: { keys: Record<string, unknown>[] } | null;
  secrets: { id: string; created_at: string; expires_at: string | null }[];
  version: number;
  created_at: string;
  updated_at: string;
}

export function createAgentViews(deps: { db: Database; now: () => number }) {
  const k = deps.db.kysely;
  const { now } = deps;

  return {
    /** The live agent by id or `agent_id`; `agent_not_found` otherwise. */
    async liveRow(ref: string): Promise<AgentsTable> {
      const q = k.selectFrom('agents').selectAll().where('deleted_at', 'is', null);
      const row = /^[0-9a-f-]{36}$/.test(ref)
        ? await q.where('id', '=', ref).executeTakeFirst()
        : await q.where('agent_id', '=', ref).executeTakeFirst();
      if (row === undefined) throw errorFrom(agentErrors, 'agent_not_found');
      return row;
    },

    /** The admin view of an agent, with its live client secrets (ids and dates, never values). */
    async view(row: AgentsTable): Promise<AgentView> {
      const t = now();
      const secrets = await k
        .selectFrom('agent_secrets')
        .select(['id', 'created_at', 'expires_at'])
        .where('agent_uuid', '=', row.id)
        .where('revoked_at', 'is', null)
        .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', t)]))
        .orderBy('created_at')
        .execute();
      return {
        id: row.id,
        agent_id: row.agent_id,
        description: row.description,
        allowed_scopes: list(row.allowed_scopes),
        allowed_providers: list(row.allowed_providers),
        allowed_workspaces: list(row.allowed_workspaces),
        allowed_secrets: list(row.allowed_secrets),
        active: row.disabled_at === null,
        jwks_uri: row.jwks_uri,
        has_jwks: row.jwks !== null,
        jwks: row.jwks === null ? null : shownJwks(row.jwks),
        secrets: secrets.map((s) => ({
          id: s.id,
          created_at: iso(s.created_at)!,
          expires_at: iso(s.expires_at),
        })),
        version: row.version,
        created_at: iso(row.created_at)!,
        updated_at: iso(row.updated_at)!,
      };
    },

    async listRows(): Promise<AgentsTable[]> {
      return k
        .selectFrom('agents')
        .selectAll()
        .where('deleted_at', 'is', null)
        .orderBy('agent_id')
        .limit(1000)
        .execute();
    },
  };
}

export type AgentViews = ReturnType<typeof createAgentViews>;
