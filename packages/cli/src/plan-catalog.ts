/**
 * The provider catalogue in a plan (decision 0015). A provider written `template: KEY` is the
 * entry's profile (`GET /catalog/{key}/profile`) under the fields the file writes, merged as the
 * broker merges a template write: each field written replaces the entry's, `params` merge key by
 * key, and `params.template` records the entry and version. A provider whose `params.template`
 * names an older version than the catalogue's is reported (`outdated`), never changed by itself.
 */
import { NexusError } from '@nexus-broker/sdk';
import type { Api } from './api.ts';
import { CliError } from './io.ts';
import { type Manifest, normalizeProfile, type ProviderSpec } from './manifest.ts';
import type { State } from './state.ts';

type Obj = Record<string, unknown>;

export interface CatalogState {
  /** The current version of each entry, by key. */
  versions: Map<string, number>;
  /** The expanded profile of each entry the manifest names. */
  profiles: Map<string, Obj>;
}

/** A provider made from an older version of its catalogue entry. */
export interface Outdated {
  name: string;
  key: string;
  version: number;
  /** The catalogue's version; undefined when the catalogue no longer has the entry. */
  latest: number | undefined;
}

const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function templateOf(params: unknown): { key: string; version: number } | undefined {
  const t = isObject(params) ? params.template : undefined;
  return isObject(t) && typeof t.key === 'string' && typeof t.version === 'number'
    ? { key: t.key, version: t.version }
    : undefined;
}

/**
 * What the plan needs of the catalogue: nothing (undefined) when neither the file nor the broker's
 * providers use it. A broker without a catalogue fails the plan only when the file names a template.
 */
export async function readCatalog(
  api: Api,
  manifest: Manifest,
  state: State,
): Promise<CatalogState | undefined> {
  const wanted = new Map(
    manifest.providers.flatMap((p) => (p.template ? [[p.template, p.name] as const] : [])),
  );
  const made = state.providers.some((p) => templateOf(p.params) !== undefined);
  if (wanted.size === 0 && !made) return undefined;
  let versions: Map<string, number>;
  try {
    versions = new Map((await api.listCatalog()).map((e) => [e.key, e.version]));
  } catch (error) {
    if (wanted.size === 0 && error instanceof NexusError && error.status === 404) return undefined;
    throw error;
  }
  const profiles = new Map<string, Obj>();
  for (const [key, name] of wanted) {
    if (!versions.has(key))
      throw new CliError(
        `provider ${name}: template ${key} is not in the broker's provider catalogue (\`GET /catalog\` lists the keys)`,
      );
    profiles.set(key, await api.request<Obj>('GET', `catalog/${encodeURIComponent(key)}/profile`));
  }
  return { versions, profiles };
}

/** The profile a provider spec stands for: the template's expansion under its fields, or itself. */
export function specProfile(spec: ProviderSpec, catalog: CatalogState | undefined): Obj {
  if (spec.template === undefined) return spec.profile;
  const base = catalog?.profiles.get(spec.template);
  if (base === undefined) throw new Error(`template ${spec.template} was not read from the broker`);
  const baseParams = isObject(base.params) ? base.params : {};
  const given = spec.profile.params;
  const params = isObject(given) ? { ...baseParams, ...given, template: baseParams.template } : baseParams;
  return normalizeProfile({ ...base, ...spec.profile, params });
}

/** The broker's providers made from an older version of their entry (or from one since removed). */
export function outdatedProviders(state: State): Outdated[] {
  const catalog = state.catalog;
  if (catalog === undefined) return [];
  return state.providers.flatMap((p) => {
    const t = templateOf(p.params);
    const latest = t === undefined ? undefined : catalog.versions.get(t.key);
    if (t === undefined || (latest !== undefined && latest <= t.version)) return [];
    return [{ name: p.name, key: t.key, version: t.version, latest }];
  });
}

/** One line of the plan for an outdated provider. */
export function outdatedLine(o: Outdated): string {
  return o.latest === undefined
    ? `provider ${o.name} was made from catalogue entry ${o.key} version ${o.version}, which the catalogue no longer has`
    : `provider ${o.name} was made from catalogue entry ${o.key} version ${o.version}; the catalogue has version ${o.latest} (a write with template: ${o.key} applies it)`;
}
