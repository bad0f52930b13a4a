/**
 * The plan: what apply would do to bring the broker to the manifest, as an ordered list of actions
 * (dependency order: scopes, trusted issuers, providers and their aliases, agents; deletions last,
 * in reverse). Updates carry the version read here, sent back as If-Match, so a change made on the
 * broker between plan and apply is refused (409) instead of overwritten.
 */
import { createHash } from 'node:crypto';
import type { CreateAgentInput } from '@nexus-broker/sdk';
import type { Api } from './api.ts';
import type { AgentSpec, IssuerSpec, Kind, Manifest, ProviderSpec, SecretSource } from './manifest.ts';
import { storedParams } from './params.ts';
import { providerNames, type State } from './state.ts';

export type Op = 'create' | 'update' | 'delete' | 'unchanged';

export interface FieldChange {
  field: string;
  old?: unknown;
  new?: unknown;
  /** Shown as *** whatever the values. */
  secret?: boolean;
}

export interface ExecContext {
  api: Api;
  /** Provider name → id, filled as providers are created. */
  providerIds: Map<string, string>;
  resolveSecret(source: SecretSource): Promise<string>;
  /** Messages for the operator after the run (never secret values). */
  notes: string[];
  /** Where generated agent client secrets are written (mode 0600), if anywhere. */
  onAgentSecret?: (agentId: string, secret: string) => void;
}

export interface Action {
  op: Op;
  kind: Kind | 'alias';
  name: string;
  changes: FieldChange[];
  note?: string;
  run?: (ctx: ExecContext) => Promise<void>;
}

/** An object the broker has and the file does not list, of a kind the file has a section for. */
export interface Orphan {
  kind: Kind;
  name: string;
}

export interface Plan {
  actions: Action[];
  counts: Record<Op, number>;
  /** Without --prune: what --prune would delete, listed and left alone (never a change). */
  orphans: Orphan[];
}

export interface PlanOptions {
  prune: boolean;
  /** Send secrets that cannot be compared (they are write-only on the broker). */
  updateSecrets: boolean;
}

const canon = (v: unknown): string => JSON.stringify(sortKeys(v)) ?? 'undefined';
/** A short, stable name for a key set in plans: its keys are long and public, the point is "changed". */
const fingerprint = (jwks: unknown) =>
  `sha256:${createHash('sha256').update(canon(jwks)).digest('hex').slice(0, 12)}`;
function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v !== null && typeof v === 'object')
    return Object.fromEntries(
      Object.keys(v)
        .sort()
        .map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]),
    );
  return v;
}
const same = (a: unknown, b: unknown) => canon(a) === canon(b);
const sorted = (a: readonly string[]) => [...new Set(a)].sort();

function diff(fields: readonly string[], current: Record<string, unknown>, desired: Record<string, unknown>) {
  const changes: FieldChange[] = [];
  for (const f of fields) {
    if (!same(current[f] ?? null, desired[f] ?? null))
      changes.push({ field: f, old: current[f], new: desired[f] });
  }
  return changes;
}

function createChanges(values: Record<string, unknown>): FieldChange[] {
  return Object.entries(values)
    .filter(([, v]) => v !== undefined && v !== null && !(Array.isArray(v) && v.length === 0))
    .map(([field, v]) => ({ field, new: v }));
}

const PROVIDER_FIELDS = [
  'auth_type',
  'auth_header',
  'client_id',
  'auth_url',
  'token_url',
  'issuer',
  'enable_discovery',
  'scopes',
  'params',
  'api_base_url',
  'user_info_endpoint',
  'description',
  'category',
] as const;

/**
 * Fields that change where the broker sends a provider's secrets. The broker accepts such a change
 * only with the provider's current client secret in the same request, or, for a provider with none,
 * while none of its connections holds credentials (`provider_secret_required`,
 * `provider_destination_locked`).
 */
const DESTINATION_FIELDS = ['token_url', 'issuer', 'enable_discovery', 'auth_header', 'api_base_url'];

function destinationChanges(
  changes: readonly FieldChange[],
  current: Record<string, unknown>,
  desired: Record<string, unknown>,
): string[] {
  const fields = changes.filter((c) => DESTINATION_FIELDS.includes(c.field)).map((c) => c.field);
  const revocation = (params: unknown) =>
    (params as Record<string, unknown> | null | undefined)?.revocation_endpoint ?? null;
  if (!same(revocation(current.params), revocation(desired.params)))
    fields.push('params.revocation_endpoint');
  return fields;
}

/** What the plan says about a change of destination, and whether apply sends the secret for it. */
function destinationNote(moved: readonly string[], hasStoredSecret: boolean, fileHasSecret: boolean) {
  const what = `${moved.join(', ')} change${moved.length === 1 ? 's' : ''} where the broker sends this provider's secrets`;
  if (!hasStoredSecret)
    return `${what}: the broker refuses this while connections of this provider hold credentials`;
  if (fileHasSecret) return `${what}: the client secret is sent with it, as the broker requires`;
  return `${what}: the broker requires the current client_secret with it, and this file has none for the provider, so apply will fail; add client_secret (\${VAR} or nexus-secret:NAME)`;
}

const ISSUER_FIELDS = [
  'jwks_uri',
  'use_discovery',
  'audience',
  'algorithms',
  'user_id_claim',
  'tenant_claim',
  'permissions_claim',
  'clearance_claim',
] as const;

const AGENT_FIELDS = [
  'description',
  'allowed_scopes',
  'allowed_providers',
  'allowed_workspaces',
  'allowed_secrets',
  'active',
  'jwks_uri',
] as const;

/** Compares the manifest with the broker's state. */
export function makePlan(manifest: Manifest, state: State, options: PlanOptions): Plan {
  const actions: Action[] = [];
  const deletes: Action[] = [];
  const orphans: Orphan[] = [];
  const prune = (kind: Kind) => options.prune && manifest.sections.has(kind);
  const orphan = (kind: Kind) => !options.prune && manifest.sections.has(kind);

  // Custom scopes: no update endpoint, so a changed description is delete + create.
  const wantScopes = new Map(manifest.scopes.map((s) => [s.name, s]));
  for (const s of manifest.scopes) {
    const cur = state.scopes.find((c) => c.name === s.name);
    const run = async ({ api }: ExecContext) => {
      await api.createScope(s);
    };
    if (!cur)
      actions.push({
        op: 'create',
        kind: 'scope',
        name: s.name,
        changes: createChanges({ description: s.description || undefined }),
        run,
      });
    else if (cur.description !== s.description)
      actions.push({
        op: 'update',
        kind: 'scope',
        name: s.name,
        changes: [{ field: 'description', old: cur.description, new: s.description }],
        note: 'replaced: deleted then created (scopes cannot be edited in place)',
        run: async (ctx) => {
          await ctx.api.deleteScope(s.name);
          await run(ctx);
        },
      });
    else actions.push({ op: 'unchanged', kind: 'scope', name: s.name, changes: [] });
  }
  if (prune('scope'))
    for (const cur of state.scopes)
      if (!wantScopes.has(cur.name))
        deletes.push({
          op: 'delete',
          kind: 'scope',
          name: cur.name,
          changes: [],
          run: async ({ api }) => {
            await api.deleteScope(cur.name);
          },
        });
  if (orphan('scope'))
    for (const cur of state.scopes)
      if (!wantScopes.has(cur.name)) orphans.push({ kind: 'scope', name: cur.name });

  // Trusted issuers, by issuer URL.
  const wantIssuers = new Set(manifest.issuers.map((i) => i.issuer));
  for (const t of manifest.issuers) {
    const cur = state.issuers.find((c) => c.issuer === t.issuer);
    const desired = { ...t, algorithms: sorted(t.algorithms) } as unknown as Record<string, unknown>;
    if (!cur) {
      actions.push({
        op: 'create',
        kind: 'trusted_issuer',
        name: t.issuer,
        changes: createChanges({ ...desired, issuer: undefined }),
        run: async ({ api }) => {
          await api.createTrustedIssuer(withoutNulls(t));
        },
      });
      continue;
    }
    const current = { ...cur, algorithms: sorted(cur.algorithms) } as unknown as Record<string, unknown>;
    const changes = diff(ISSUER_FIELDS, current, desired);
    if (changes.length === 0) {
      actions.push({ op: 'unchanged', kind: 'trusted_issuer', name: t.issuer, changes });
      continue;
    }
    actions.push({
      op: 'update',
      kind: 'trusted_issuer',
      name: t.issuer,
      changes,
      run: async ({ api }) => {
        const patch = Object.fromEntries(
          changes.map((c) => [c.field, t[c.field as keyof IssuerSpec] ?? null]),
        );
        await api.updateTrustedIssuer(cur.id, patch, cur.version);
      },
    });
  }
  if (prune('trusted_issuer'))
    for (const cur of state.issuers)
      if (!wantIssuers.has(cur.issuer))
        deletes.push({
          op: 'delete',
          kind: 'trusted_issuer',
          name: cur.issuer,
          changes: [],
          run: async ({ api }) => {
            await api.deleteTrustedIssuer(cur.id, cur.version);
          },
        });
  if (orphan('trusted_issuer'))
    for (const cur of state.issuers)
      if (!wantIssuers.has(cur.issuer)) orphans.push({ kind: 'trusted_issuer', name: cur.issuer });

  // Providers; aliases that go away are removed first so another provider may take the name.
  const wantProviders = new Set(manifest.providers.map((p) => p.name));
  const aliasRemovals: Action[] = [];
  const aliasAdditions: Action[] = [];
  const providerActions: Action[] = [];
  for (const p of manifest.providers) {
    const cur = state.providers.find((c) => c.name === p.name);
    // Compared, and written, in the form the broker stores (flat strategy settings folded in).
    const desired = { ...p.profile, params: storedParams(p.profile, cur) };
    if (!cur) {
      const changes = createChanges(desired).filter((c) => c.field !== 'name');
      if (p.secret) changes.push({ field: 'client_secret', new: '***', secret: true });
      providerActions.push({
        op: 'create',
        kind: 'provider',
        name: p.name,
        changes,
        run: async (ctx) => {
          const profile = { ...desired, ...(await secretField(ctx, p)) };
          const { id } = await ctx.api.createProvider(profile as never);
          ctx.providerIds.set(p.name, id);
        },
      });
    } else {
      const current = Object.fromEntries(
        PROVIDER_FIELDS.map((f) => [f, (cur as unknown as Record<string, unknown>)[f]]),
      );
      const changes = diff(PROVIDER_FIELDS, current, desired);
      const moved = destinationChanges(changes, current, desired);
      // A change of destination needs the secret: send it whenever the file has it.
      const sendSecret =
        p.secret !== undefined && (!cur.has_client_secret || options.updateSecrets || moved.length > 0);
      if (sendSecret)
        changes.push({
          field: 'client_secret',
          old: cur.has_client_secret ? '***' : undefined,
          new: '***',
          secret: true,
        });
      if (changes.length === 0)
        providerActions.push({ op: 'unchanged', kind: 'provider', name: p.name, changes });
      else
        providerActions.push({
          op: 'update',
          kind: 'provider',
          name: p.name,
          changes,
          ...(moved.length > 0 && {
            note: destinationNote(moved, cur.has_client_secret, p.secret !== undefined),
          }),
          run: async (ctx) => {
            const profile = { ...desired, ...(sendSecret ? await secretField(ctx, p) : {}) };
            await ctx.api.replaceProvider(cur.id, profile as never, cur.version);
          },
        });
    }
    if (p.aliases !== undefined) {
      const have = cur?.aliases ?? [];
      for (const alias of have)
        if (!p.aliases.includes(alias))
          aliasRemovals.push({
            op: 'delete',
            kind: 'alias',
            name: `${p.name}/${alias}`,
            changes: [],
            run: async ({ api }) => {
              await api.removeAlias(cur!.id, alias);
            },
          });
      for (const alias of p.aliases)
        if (!have.includes(alias))
          aliasAdditions.push({
            op: 'create',
            kind: 'alias',
            name: `${p.name}/${alias}`,
            changes: [],
            run: async ({ api, providerIds }) => {
              const id = cur?.id ?? providerIds.get(p.name);
              if (id === undefined) throw new Error(`provider ${p.name} was not created`);
              await api.addAlias(id, alias);
            },
          });
    }
  }
  actions.push(...aliasRemovals, ...providerActions, ...aliasAdditions);
  if (prune('provider'))
    for (const cur of state.providers)
      if (!wantProviders.has(cur.name))
        deletes.push({
          op: 'delete',
          kind: 'provider',
          name: cur.name,
          changes: [],
          run: async ({ api }) => {
            await api.deleteProvider(cur.id, cur.version);
          },
        });
  if (orphan('provider'))
    for (const cur of state.providers)
      if (!wantProviders.has(cur.name)) orphans.push({ kind: 'provider', name: cur.name });

  // Agents; provider references compare by provider name whatever form (id, name, alias) was used.
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
  if (prune('agent'))
    for (const cur of state.agents)
      if (!wantAgents.has(cur.agent_id))
        deletes.unshift({
          op: 'delete',
          kind: 'agent',
          name: cur.agent_id,
          changes: [],
          run: async ({ api }) => {
            await api.deleteAgent(cur.id, cur.version);
          },
        });
  if (orphan('agent'))
    for (const cur of state.agents)
      if (!wantAgents.has(cur.agent_id)) orphans.push({ kind: 'agent', name: cur.agent_id });

  // Deletions after everything else, dependents first: agents, providers, issuers, scopes.
  const rank: Record<string, number> = { agent: 0, provider: 1, trusted_issuer: 2, scope: 3 };
  deletes.sort((x, y) => rank[x.kind]! - rank[y.kind]!);
  actions.push(...deletes);
  const counts: Record<Op, number> = { create: 0, update: 0, delete: 0, unchanged: 0 };
  for (const a of actions) counts[a.op] += 1;
  orphans.sort((x, y) => rank[x.kind]! - rank[y.kind]!); // in the order --prune would delete them
  return { actions, counts, orphans };
}

async function secretField(ctx: ExecContext, p: ProviderSpec): Promise<{ client_secret?: string }> {
  return p.secret ? { client_secret: await ctx.resolveSecret(p.secret) } : {};
}

function withoutNulls(o: object): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== null && v !== undefined));
}

export const hasChanges = (plan: Plan) => plan.counts.create + plan.counts.update + plan.counts.delete > 0;

export type { AgentSpec };
