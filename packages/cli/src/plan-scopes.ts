/** The plan for custom scopes, by name. */
import type { Manifest } from './manifest.ts';
import { createChanges } from './plan-compare.ts';
import { unlisted } from './plan-orphans.ts';
import type { Action, ExecContext, KindPlan, PlanOptions } from './plan-types.ts';
import type { State } from './state.ts';

export function planScopes(manifest: Manifest, state: State, options: PlanOptions): KindPlan {
  const actions: Action[] = [];
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
  const rest = unlisted(
    manifest,
    options,
    'scope',
    state.scopes,
    (cur) => wantScopes.has(cur.name),
    (cur) => cur.name,
    (api, cur) => api.deleteScope(cur.name),
  );
  return { actions, ...rest };
}
