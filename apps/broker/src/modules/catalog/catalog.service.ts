/**
 * The provider catalogue (decision 0015): the entries of catalog/providers/, read and checked once
 * (catalog-loader.ts) on first use, then answered from memory; `nexus serve` logs any entry it
 * had to leave out then. Not read at start: its files, YAML parser and JSON Schema validator were a
 * third of the embedded default's start-up, for a feature used when providers are added. Templates expand here (catalog-expand.ts); the broker never
 * consults the catalogue when it serves a connection.
 */
import { errorFrom } from '../../errors/nexus-error.ts';
import { catalogErrors } from './catalog.errors.ts';
import type { CatalogEntry } from './catalog.types.ts';
import { applyTemplate, expandEntry } from './catalog-expand.ts';
import { type LoadedCatalog, loadCatalog } from './catalog-loader.ts';

/** What `GET /catalog` lists of each entry. */
export interface CatalogSummary {
  key: string;
  name: string;
  description?: string;
  categories: string[];
  auth_type: CatalogEntry['auth_type'];
  version: number;
  /** Names of the per-connection parameters (`connection_config` of request-connection). */
  parameters: string[];
}

export function createCatalogService(deps: { load?: () => Promise<LoadedCatalog> } = {}) {
  const load = deps.load ?? (() => loadCatalog());
  let loaded: Promise<LoadedCatalog> | undefined;
  const listeners: ((catalog: LoadedCatalog) => void)[] = [];
  const catalog = (): Promise<LoadedCatalog> => {
    if (loaded === undefined) {
      loaded = load();
      void loaded.then(
        (c) => {
          for (const listener of listeners.splice(0)) listener(c);
        },
        () => undefined,
      );
    }
    return loaded;
  };

  async function get(key: string): Promise<CatalogEntry> {
    const entry = (await catalog()).entries.get(key);
    if (entry === undefined) throw errorFrom(catalogErrors, 'catalog_entry_not_found', { details: { key } });
    return entry;
  }

  return {
    /** Reads the catalogue now (once); its problems are the files left out. */
    load: (): Promise<LoadedCatalog> => catalog(),

    /** Calls `listener` once, when the catalogue is first read (by whoever reads it first). */
    onFirstLoad(listener: (catalog: LoadedCatalog) => void): void {
      if (loaded === undefined) listeners.push(listener);
      else void loaded.then(listener, () => undefined);
    },

    list: async (): Promise<CatalogSummary[]> =>
      [...(await catalog()).entries.values()].map((e) => ({
        key: e.key,
        name: e.name,
        ...(e.description !== undefined && { description: e.description }),
        categories: e.categories,
        auth_type: e.auth_type,
        version: e.version,
        parameters: Object.keys(e.parameters ?? {}),
      })),

    get,

    /** The profile the entry expands into before any explicit field: what `template` starts from. */
    profile: async (key: string): Promise<Record<string, unknown>> => expandEntry(await get(key)),

    /**
     * A profile as a request gives it, with its template expanded (explicit fields win); a profile
     * without a string `template` is returned as it is, for the schema to judge.
     */
    async expandProfile(profile: unknown): Promise<unknown> {
      if (typeof profile !== 'object' || profile === null || Array.isArray(profile)) return profile;
      const template = (profile as Record<string, unknown>).template;
      if (typeof template !== 'string') return profile;
      const entry = (await catalog()).entries.get(template);
      if (entry === undefined)
        throw errorFrom(catalogErrors, 'unknown_template', { details: { template: template.slice(0, 64) } });
      return applyTemplate(entry, profile as Record<string, unknown>);
    },
  };
}

export type CatalogService = ReturnType<typeof createCatalogService>;
