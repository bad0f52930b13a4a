/** How an agent is found (by id or agent_id, live only) and shown to an operator. */
import type { AgentsTable } from '../../db/schema.ts';
import { errorFrom } from '../../errors/nexus-error.ts';
import { agentErrors } from './agents.errors.ts';
import type { AgentsStore } from './agents.store.ts';
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

export function createAgentViews(deps: {
  store: Pick<AgentsStore, 'findLiveById' | 'findLiveByAgentId' | 'liveSecrets' | 'listLive'>;
  now: () => number;
}) {
  const { store, now } = deps;

  return {
    /** The live agent by id or `agent_id`; `agent_not_found` otherwise. */
    async liveRow(ref: string): Promise<AgentsTable> {
      const row = /^[0-9a-f-]{36}$/.test(ref)
        ? await store.findLiveById(ref)
        : await store.findLiveByAgentId(ref);
      if (row === undefined) throw errorFrom(agentErrors, 'agent_not_found');
      return row;
    },

    /** The admin view of an agent, with its live client secrets (ids and dates, never values). */
    async view(row: AgentsTable): Promise<AgentView> {
      const secrets = await store.liveSecrets(row.id, now());
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

    listRows: (): Promise<AgentsTable[]> => store.listLive(),
  };
}

export type AgentViews = ReturnType<typeof createAgentViews>;
