/**
 * The plan for agents, by agent_id. Provider references compare by provider name whatever form
 * (id, name, alias) was used, so a file naming an alias matches a broker that stores the id.
 */
import type { CreateAgentInput } from '@nexus-broker/sdk';
import type { Manifest } from './manifest.ts';
import { canon, createChanges, diff, fingerprint, sorted, withoutNulls } from './plan-compare.ts';
import { unlisted } from './plan-orphans.ts';
import type { Action, KindPlan, PlanOptions } from './plan-types.ts';
import { providerNames, type State } from './state.ts';

const AGENT_FIELDS = [
  'description',
  'allowed_scopes',
  'allowed_providers',
  'allowed_workspaces',
  'allowed_secrets',
  'active',
  'jwks_uri',
] as const;

export function planAgents(manifest: Manifest, state: State, options: PlanOptions): KindPlan {
  const actions: Action[] = [];
  const names = providerNames(state);
  for (const p of manifest.providers) {
    names.set(p.name, p.name);
    for (const a of p.aliases ?? []) names.set(a, p.name);
  }
  const canonProviders = (refs: readonly string[]) => sorted(refs.map((r) => names.get(r) ?? r));
  const wantAgents = new Set(manifest.agents.map((a) => a.agent_id));
  for (const a of manifest.agents) {
    const cur = state.agents.find((c) => c.agent_id === a.agent_id);
    const desired: Record<string, unknown> = {
      ...a,
      allowed_scopes: sorted(a.allowed_scopes),
      allowed_providers: canonProviders(a.allowed_providers),
      allowed_workspaces: sorted(a.allowed_workspaces),
      allowed_secrets: sorted(a.allowed_secrets),
    };
    if (!cur) {
      const changes = createChanges({ ...desired, agent_id: undefined, jwks: undefined });
      if (a.jwks) changes.push({ field: 'jwks', new: '(set)' });
      actions.push({
        op: 'create',
        kind: 'agent',
        name: a.agent_id,
        changes,
        run: async (ctx) => {
          const generate = !a.jwks && !a.jwks_uri && ctx.onAgentSecret !== undefined;
          const input = { ...withoutNulls(a), generate_secret: generate } as unknown as CreateAgentInput;
          const created = await ctx.api.createAgent(input);
          const secret = (created as { client_secret?: string }).client_secret;
          if (secret !== undefined && ctx.onAgentSecret) ctx.onAgentSecret(a.agent_id, secret);
          else if (!a.jwks && !a.jwks_uri)
            ctx.notes.push(
              `agent ${a.agent_id} has no credential yet: issue one with \`nexus agents rotate-secret ${a.agent_id} --out FILE\` (or apply with --agent-secrets FILE)`,
            );
        },
      });
      continue;
    }
    const current: Record<string, unknown> = {
      ...cur,
      allowed_scopes: sorted(cur.allowed_scopes),
      allowed_providers: canonProviders(cur.allowed_providers),
      allowed_workspaces: sorted(cur.allowed_workspaces),
      allowed_secrets: sorted(cur.allowed_secrets),
    };
    const managed = AGENT_FIELDS.filter((f) => f !== 'jwks_uri' || a.jwks_uri !== undefined);
    const changes = diff(managed, current, desired);
    // Public keys: the broker shows them, so they are compared like any other field.
    const currentJwks = (cur as { jwks?: Record<string, unknown> | null }).jwks ?? null;
    const jwksChange = a.jwks !== undefined && canon(a.jwks ?? null) !== canon(currentJwks);
    if (jwksChange)
      changes.push({
        field: 'jwks',
        old: currentJwks ? fingerprint(currentJwks) : undefined,
        new: a.jwks ? fingerprint(a.jwks) : undefined,
      });
    if (changes.length === 0) {
      actions.push({ op: 'unchanged', kind: 'agent', name: a.agent_id, changes });
      continue;
    }
    actions.push({
      op: 'update',
      kind: 'agent',
      name: a.agent_id,
      changes,
      run: async ({ api }) => {
        const patch: Record<string, unknown> = {};
        for (const c of changes) patch[c.field] = (a as unknown as Record<string, unknown>)[c.field] ?? null;
        if (patch.description === null) patch.description = '';
        await api.updateAgent(cur.id, patch as never, cur.version);
      },
    });
  }
  const rest = unlisted(
    manifest,
    options,
    'agent',
    state.agents,
    (cur) => wantAgents.has(cur.agent_id),
    (cur) => cur.agent_id,
    (api, cur) => api.deleteAgent(cur.id, cur.version),
  );
  // Agents are deleted in the reverse of the broker's order (as plans always listed them).
  return { actions, deletes: rest.deletes.reverse(), orphans: rest.orphans };
}
