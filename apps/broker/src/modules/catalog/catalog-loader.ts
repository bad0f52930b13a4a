/**
 * Reads catalog/providers/*.yaml and checks each file against catalog/schema/provider.schema.json
 * (JSON Schema 2020-12, with Ajv), and that its key is its file name. A file that fails is left out
 * and reported: the broker starts without it (and logs why), while the test suite fails on it
 * (apps/broker/test/catalog.test.ts), so a broken entry never reaches a release.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ErrorObject } from 'ajv/dist/2020.js';
import type { CatalogEntry, CatalogProblem } from './catalog.types.ts';

/**
 * Where the catalogue is: the repository's catalog/ (seen from this source file, five levels up,
 * or from the bundle apps/broker/dist/bundle/nexus.mjs, four levels up), so an edited entry is read
 * without a rebuild; else the copy beside the bundle (scripts/build.mjs puts it there, and the
 * Docker image has only that one).
 */
export function catalogDir(): string {
  const candidates = ['../../../../../catalog', '../../../../catalog', './catalog'].map((path) =>
    fileURLToPath(new URL(path, import.meta.url)),
  );
  return candidates.find((dir) => existsSync(join(dir, 'providers'))) ?? (candidates[0] as string);
}

export interface LoadedCatalog {
  /** The entries that passed, by key, in key order. */
  entries: Map<string, CatalogEntry>;
  /** Files left out, and why. */
  problems: CatalogProblem[];
  dir: string;
}

function describe(errors: readonly ErrorObject[] | null | undefined): string {
  return (errors ?? [])
    .slice(0, 5)
    .map((e) => {
      const extra =
        e.keyword === 'additionalProperties'
          ? ` (${String((e.params as { additionalProperty: unknown }).additionalProperty)})`
          : '';
      return `${e.instancePath || '/'} ${e.message ?? 'is not valid'}${extra}`;
    })
    .join('; ');
}

/**
 * A validator of one entry: the list of problems, empty when the entry is valid. Ajv (and YAML,
 * below) are imported when the catalogue is first read, not when the broker (or any command of the
 * one-file bundle) starts.
 */
export async function entryValidator(
  dir: string = catalogDir(),
): Promise<(entry: unknown, file: string) => string[]> {
  // A CommonJS module: its class is the module itself, also exported as `Ajv2020` and `default`,
  // and which of those an `import()` shows depends on who compiled the importer (Node, esbuild).
  const ajvModule = (await import('ajv/dist/2020.js')) as unknown as Record<string, unknown>;
  const Ajv2020 = [
    ajvModule.Ajv2020,
    (ajvModule.default as Record<string, unknown>)?.Ajv2020,
    ajvModule.default,
  ].find((candidate) => typeof candidate === 'function') as typeof import('ajv/dist/2020.js').Ajv2020;
  const schema = JSON.parse(readFileSync(join(dir, 'schema', 'provider.schema.json'), 'utf8')) as object;
  const ajv = new Ajv2020({ allErrors: true, strict: true, strictRequired: false, strictTypes: false });
  const validate = ajv.compile(schema);
  return (entry, file) => {
    if (!validate(entry)) return [describe(validate.errors)];
    const key = (entry as CatalogEntry).key;
    const expected = basename(file, '.yaml');
    return key === expected ? [] : [`key "${key}" is not the file name "${expected}"`];
  };
}

/** Reads and checks every entry of `dir` (default: catalogDir()). Never throws for a bad entry. */
export async function loadCatalog(dir: string = catalogDir()): Promise<LoadedCatalog> {
  const entries = new Map<string, CatalogEntry>();
  const problems: CatalogProblem[] = [];
  let files: string[];
  let check: Awaited<ReturnType<typeof entryValidator>>;
  let parse: typeof import('yaml').parse;
  try {
    files = readdirSync(join(dir, 'providers'))
      .filter((f) => f.endsWith('.yaml'))
      .sort();
    check = await entryValidator(dir);
    ({ parse } = await import('yaml'));
  } catch (error) {
    problems.push({ file: dir, message: `the catalogue cannot be read: ${(error as Error).message}` });
    return { entries, problems, dir };
  }
  for (const file of files) {
    try {
      const entry = parse(readFileSync(join(dir, 'providers', file), 'utf8'), {
        uniqueKeys: true,
      }) as unknown;
      const found = check(entry, file);
      if (found.length > 0) problems.push({ file, message: found.join('; ') });
      else entries.set((entry as CatalogEntry).key, entry as CatalogEntry);
    } catch (error) {
      problems.push({ file, message: (error as Error).message.split('\n')[0] ?? 'not valid YAML' });
    }
  }
  const byKey = new Map([...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return { entries: byKey, problems, dir };
}
