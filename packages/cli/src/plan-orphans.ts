/**
 * Objects the broker has and the file does not list, of a kind the file has a section for: with
 * --prune they are deleted, without it they are listed as orphans and left alone. A kind the file
 * has no section for is never touched.
 */
import type { Api } from './api.ts';
import type { Kind, Manifest } from './manifest.ts';
import type { Action, Orphan, PlanOptions } from './plan-types.ts';

export function unlisted<T>(
  manifest: Manifest,
  options: Pick<PlanOptions, 'prune'>,
  kind: Kind,
  have: readonly T[],
  listed: (cur: T) => boolean,
  nameOf: (cur: T) => string,
  remove: (api: Api, cur: T) => Promise<unknown>,
): { deletes: Action[]; orphans: Orphan[] } {
  if (!manifest.sections.has(kind)) return { deletes: [], orphans: [] };
  const gone = have.filter((cur) => !listed(cur));
  if (!options.prune) return { deletes: [], orphans: gone.map((cur) => ({ kind, name: nameOf(cur) })) };
  const deletes: Action[] = gone.map((cur) => ({
    op: 'delete',
    kind,
    name: nameOf(cur),
    changes: [],
    run: async ({ api }) => {
      await remove(api, cur);
    },
  }));
  return { deletes, orphans: [] };
}

/** Dependents first: agents, providers, issuers, scopes (the order deletions run in). */
const RANK: Record<string, number> = { agent: 0, provider: 1, trusted_issuer: 2, scope: 3 };

/** Sorts in place into deletion order; stable, so each kind keeps its own order. */
export function inDeletionOrder<T extends { kind: string }>(items: T[]): T[] {
  return items.sort((x, y) => RANK[x.kind]! - RANK[y.kind]!);
}
