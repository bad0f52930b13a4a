import { NexusError } from '../../errors/nexus-error.ts';
import {
  type ProviderView,
  profileInput,
  providerName,
  withoutZeroEnums,
} from '../providers/providers.schemas.ts';
import type { ImportDeps, Tally } from './import.types.ts';
import type { OriginalAlias, OriginalProvider } from './original-source.ts';

/** Where an original provider went: its Nexus id (none in a dry run that would create it), or why not. */
export interface ProviderMapping {
  readonly name: string;
  readonly authType: string;
  readonly nexusId: string | undefined;
  /** Set when its connections cannot be imported; `deleted` ones are skipped, the others failed. */
  readonly blocked?: { readonly reason: string; readonly deleted: boolean };
}

/** A caller-safe account of a refusal: the error code and its validation details, never a value. */
export function describeFailure(error: unknown): string {
  if (error instanceof NexusError) {
    const details = Array.isArray(error.details)
      ? (error.details as { path?: unknown; message?: unknown }[])
          .map((d) => `${String(d.path ?? '')}: ${String(d.message ?? '')}`)
          .join('; ')
      : '';
    return `${error.code}: ${error.expose ? error.message : 'internal error'}${details ? ` (${details})` : ''}`;
  }
  return (error as Error)?.message?.slice(0, 200) ?? String(error);
}

const isNotFound = (error: unknown) => error instanceof NexusError && error.code === 'provider_not_found';

/** The original's profile as POST /providers takes it: its columns, with SQL nulls left out. */
function profileOf(p: OriginalProvider): Record<string, unknown> {
  const profile = Object.fromEntries(
    Object.entries(p.profile).filter(([, v]) => v !== null && v !== undefined),
  );
  return withoutZeroEnums(profile) as Record<string, unknown>;
}

/** The fields that decide whether a Nexus provider of the same name is the same provider. */
const IDENTITY = ['auth_type', 'client_id', 'auth_url', 'token_url', 'issuer'] as const;

/**
 * What the original may have changed since a previous run took the provider over, by name: its
 * text settings, its scopes (in any order), and the string entries of its `params` (endpoints
 * such as `revocation_endpoint`, authorize parameters). Nexus keeps its own; the report says so.
 */
function drift(wanted: Record<string, unknown>, existing: ProviderView): string[] {
  const out: string[] = [];
  for (const field of ['auth_header', 'api_base_url', 'user_info_endpoint'] as const)
    if ((wanted[field] || undefined) !== (existing[field] || undefined)) out.push(field);
  const scopes = (list: unknown) => JSON.stringify([...new Set(Array.isArray(list) ? list : [])].sort());
  if (scopes(wanted.scopes) !== scopes(existing.scopes)) out.push('scopes');
  const params = (wanted.params ?? {}) as Record<string, unknown>;
  for (const [key, value] of Object.entries(params))
    if (typeof value === 'string' && existing.params[key] !== value) out.push(`params.${key}`);
  return out;
}

/**
 * Providers: each live profile goes through the same schema and `create` as POST /providers (in
 * a dry run, through the scratch registry). A Nexus provider of the same name is taken as this
 * one when it has the same type, client id and endpoints (a previous run made it); otherwise the
 * name is in conflict and the provider's connections are not imported.
 */
export async function importProviders(
  deps: ImportDeps,
  tally: Tally,
  providers: readonly OriginalProvider[],
): Promise<Map<string, ProviderMapping>> {
  const map = new Map<string, ProviderMapping>();
  for (const p of providers) {
    const authType = typeof p.profile.auth_type === 'string' ? p.profile.auth_type : 'oauth2';
    const base = { name: p.name, authType, nexusId: undefined };
    const row = { kind: 'provider' as const, id: p.id, name: p.name };
    if (p.deleted) {
      // Deleted providers are not imported; a live one may carry the same name.
      tally.add({ ...row, outcome: 'skipped', reason: 'deleted in the original' });
      map.set(p.id, {
        ...base,
        blocked: { reason: 'its provider was deleted in the original', deleted: true },
      });
      continue;
    }
    try {
      const nexusId = await one(p, row);
      map.set(p.id, { ...base, nexusId });
    } catch (error) {
      tally.add({
        ...row,
        outcome: 'failed',
        reason: error instanceof Refused ? error.message : describeFailure(error),
      });
      map.set(p.id, {
        ...base,
        blocked: { reason: `its provider ${p.name} was not imported`, deleted: false },
      });
    }
  }
  return map;

  /** One live provider: its Nexus id (undefined when a dry run would create it), or it throws. */
  async function one(p: OriginalProvider, row: { kind: 'provider'; id: string; name: string }) {
    const parsed = profileInput.safeParse(profileOf(p));
    if (!parsed.success)
      throw new Refused(
        `invalid profile: ${parsed.error.issues
          .map((i) => `${i.path.join('.') || '(profile)'}: ${i.message}`)
          .join('; ')
          .slice(0, 500)}`,
      );
    const existing = await deps.nexus.providers.resolve(p.name).catch((error: unknown) => {
      if (isNotFound(error)) return undefined;
      throw error;
    });
    if (existing !== undefined) {
      if (existing.name !== p.name)
        throw new Refused(`name conflict: "${p.name}" is an alias of the Nexus provider ${existing.name}`);
      const wanted = parsed.data as Record<string, unknown>;
      const differs = IDENTITY.filter(
        (f) => (wanted[f] || undefined) !== ((existing as Record<string, unknown>)[f] || undefined),
      );
      if (differs.length > 0)
        throw new Refused(
          `name conflict: Nexus already has a provider named ${p.name} with a different ${differs.join(', ')}; rename or remove one of them and run again`,
        );
      const { clientSecret } = await deps.nexus.providers.loadForUse(existing.id);
      const secret =
        typeof wanted.client_secret === 'string' && wanted.client_secret !== ''
          ? wanted.client_secret
          : undefined;
      const changed = [...drift(wanted, existing), ...(clientSecret !== secret ? ['client secret'] : [])];
      tally.add({
        ...row,
        outcome: 'unchanged',
        nexus_id: existing.id,
        ...(changed.length > 0
          ? {
              reason: `${changed.length === 1 ? 'this setting differs' : 'these settings differ'} from the original's, and Nexus's ${changed.length === 1 ? 'is' : 'are'} kept (change with PATCH /providers/{id}): ${changed.join(', ')}`,
            }
          : {}),
      });
      return existing.id;
    }
    if (!deps.apply) {
      const rehearsed = await deps.rehearsal!.create(deps.ctx, parsed.data);
      tally.add({ ...row, outcome: 'would_create', ...warned(rehearsed.warnings) });
      return undefined;
    }
    // The original's id is kept, so agents and scripts that stored it keep working.
    const created = await deps.nexus.providers.create(deps.ctx, parsed.data, { id: p.id });
    tally.add({ ...row, outcome: 'created', nexus_id: created.id, ...warned(created.warnings) });
    return created.id;
  }
}

/** A refusal of the import's own, with a caller-safe message. */
class Refused extends Error {}

function warned(warnings: readonly { code: string; message: string }[] | undefined): { reason?: string } {
  return warnings?.length ? { reason: warnings.map((w) => `${w.code}: ${w.message}`).join('; ') } : {};
}

/** Aliases of imported providers, in Nexus's form (lower-case names); existing ones are kept. */
export async function importAliases(
  deps: ImportDeps,
  tally: Tally,
  aliases: readonly OriginalAlias[],
  map: ReadonlyMap<string, ProviderMapping>,
): Promise<void> {
  for (const a of aliases) {
    const alias = (a.alias_norm ?? a.alias).trim().toLowerCase();
    const mapping = map.get(a.provider_id);
    const row = { kind: 'alias' as const, id: alias, ...(mapping ? { name: mapping.name } : {}) };
    if (mapping === undefined || mapping.blocked) {
      tally.add({
        ...row,
        outcome: 'skipped',
        reason: mapping?.blocked?.reason ?? 'its provider is unknown',
      });
      continue;
    }
    if (!providerName.safeParse(alias).success) {
      tally.add({
        ...row,
        outcome: 'failed',
        reason: 'not a valid Nexus name (lower-case letters, digits and dashes)',
      });
      continue;
    }
    const holder = await deps.nexus.providers.resolve(alias).catch((error: unknown) => {
      if (isNotFound(error)) return undefined;
      throw error;
    });
    if (holder !== undefined) {
      if (mapping.nexusId !== undefined && holder.id === mapping.nexusId && holder.name !== alias)
        tally.add({ ...row, outcome: 'unchanged' });
      else
        tally.add({
          ...row,
          outcome: 'failed',
          reason: `name conflict: "${alias}" already names the Nexus provider ${holder.name}`,
        });
      continue;
    }
    if (!deps.apply || mapping.nexusId === undefined) {
      tally.add({ ...row, outcome: 'would_create' });
      continue;
    }
    try {
      await deps.nexus.providers.addAlias(deps.ctx, mapping.nexusId, alias);
      tally.add({ ...row, outcome: 'created' });
    } catch (error) {
      tally.add({ ...row, outcome: 'failed', reason: describeFailure(error) });
    }
  }
}
