/**
 * The plan for providers and their aliases. Aliases that go away are removed before providers are
 * written, and new ones added after, so another provider may take a released name.
 */
import {
  type Manifest,
  ManifestError,
  type Problem,
  type ProviderSpec,
  type SecretSource,
} from './manifest.ts';
import { storedParams } from './params.ts';
import { specProfile } from './plan-catalog.ts';
import { createChanges, diff, same } from './plan-compare.ts';
import { unlisted } from './plan-orphans.ts';
import type { Action, ExecContext, FieldChange, KindPlan, PlanOptions } from './plan-types.ts';
import type { State } from './state.ts';

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
function destinationNote(
  moved: readonly string[],
  hasStoredSecret: boolean,
  secret: SecretSource | undefined,
) {
  const what = `${moved.join(', ')} change${moved.length === 1 ? 's' : ''} where the broker sends this provider's secrets`;
  if (!hasStoredSecret)
    return `${what}: the broker refuses this while connections of this provider hold credentials`;
  if (secret === undefined)
    return `${what}: the broker requires the current client_secret with it, and this file has none for the provider, so apply will fail; add client_secret (\${VAR} or nexus-secret:NAME)`;
  if (secret.kind === 'unset')
    return `${what}: the broker requires the current client_secret with it, and ${secret.vars.join(', ')} is not set, so apply will fail; set it`;
  return `${what}: the client secret is sent with it, as the broker requires`;
}

/**
 * A client_secret whose variable is unset is kept as the broker stores it (manifest.ts,
 * `keepUnsetSecrets`). Where nothing can be kept (a new provider, one without a stored secret) or
 * the secret must be sent (--update-secrets), that is the file's error, at the secret's line.
 */
function unsetProblem(p: ProviderSpec, why: string): Problem | undefined {
  if (p.secret?.kind !== 'unset') return undefined;
  const { vars, line, col } = p.secret;
  return { line, col, message: `environment variable ${vars.join(', ')} is not set: ${why}` };
}

async function secretField(ctx: ExecContext, p: ProviderSpec): Promise<{ client_secret?: string }> {
  return p.secret && p.secret.kind !== 'unset' ? { client_secret: await ctx.resolveSecret(p.secret) } : {};
}

export function planProviders(manifest: Manifest, state: State, options: PlanOptions): KindPlan {
  const wantProviders = new Set(manifest.providers.map((p) => p.name));
  const aliasRemovals: Action[] = [];
  const aliasAdditions: Action[] = [];
  const providerActions: Action[] = [];
  const problems: Problem[] = [];
  for (const p of manifest.providers) {
    const unset = p.secret?.kind === 'unset' ? p.secret : undefined;
    const given = p.secret !== undefined && unset === undefined;
    const cur = state.providers.find((c) => c.name === p.name);
    // Compared, and written, in the form the broker stores (flat strategy settings folded in); a
    // template is the entry's profile under the fields the file writes (plan-catalog.ts).
    const profile = specProfile(p, state.catalog);
    const desired = { ...profile, params: storedParams(profile, cur) };
    if (!cur) {
      const changes = createChanges(desired).filter((c) => c.field !== 'name');
      const problem = unsetProblem(
        p,
        `provider ${p.name} is new, so there is no stored client_secret to keep`,
      );
      if (problem) problems.push(problem);
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
      const sendSecret = given && (!cur.has_client_secret || options.updateSecrets || moved.length > 0);
      const problem = !cur.has_client_secret
        ? unsetProblem(p, `provider ${p.name} has no stored client_secret to keep`)
        : options.updateSecrets
          ? unsetProblem(p, '--update-secrets sends every client_secret')
          : undefined;
      if (problem) problems.push(problem);
      const remarks = unset ? [`client_secret: kept (${unset.vars.join(', ')} not set)`] : [];
      if (sendSecret)
        changes.push({
          field: 'client_secret',
          old: cur.has_client_secret ? '***' : undefined,
          new: '***',
          secret: true,
        });
      if (changes.length === 0)
        providerActions.push({ op: 'unchanged', kind: 'provider', name: p.name, changes, remarks });
      else
        providerActions.push({
          op: 'update',
          kind: 'provider',
          name: p.name,
          changes,
          remarks,
          ...(moved.length > 0 && { note: destinationNote(moved, cur.has_client_secret, p.secret) }),
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
  if (problems.length > 0) throw new ManifestError(manifest.file, problems);
  const rest = unlisted(
    manifest,
    options,
    'provider',
    state.providers,
    (cur) => wantProviders.has(cur.name),
    (cur) => cur.name,
    (api, cur) => api.deleteProvider(cur.id, cur.version),
  );
  return { actions: [...aliasRemovals, ...providerActions, ...aliasAdditions], ...rest };
}
