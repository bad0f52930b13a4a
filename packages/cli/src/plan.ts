/**
 * The plan: what apply would do to bring the broker to the manifest, as an ordered list of actions
 * (dependency order: scopes, trusted issuers, providers and their aliases, agents; deletions last,
 * in reverse). Updates carry the version read here, sent back as If-Match, so a change made on the
 * broker between plan and apply is refused (409) instead of overwritten.
 *
 * Each kind is planned in its own file (plan-scopes.ts, plan-issuers.ts, plan-providers.ts,
 * plan-agents.ts), compared with plan-compare.ts; what the file does not list is pruned or
 * reported by plan-orphans.ts.
 */
import type { AgentSpec, Manifest } from './manifest.ts';
import { planAgents } from './plan-agents.ts';
import { outdatedProviders } from './plan-catalog.ts';
import { planIssuers } from './plan-issuers.ts';
import { inDeletionOrder } from './plan-orphans.ts';
import { planProviders } from './plan-providers.ts';
import { planScopes } from './plan-scopes.ts';
import type { Action, Op, Plan, PlanOptions } from './plan-types.ts';
import type { State } from './state.ts';

export type { Action, ExecContext, FieldChange, Op, Orphan, Plan, PlanOptions } from './plan-types.ts';

/** Compares the manifest with the broker's state. */
export function makePlan(manifest: Manifest, state: State, options: PlanOptions): Plan {
  const kinds = [planScopes, planIssuers, planProviders, planAgents].map((plan) =>
    plan(manifest, state, options),
  );
  const actions: Action[] = kinds.flatMap((k) => k.actions);
  // Deletions after everything else, dependents first: agents, providers, issuers, scopes.
  actions.push(...inDeletionOrder(kinds.flatMap((k) => k.deletes)));
  const counts: Record<Op, number> = { create: 0, update: 0, delete: 0, unchanged: 0 };
  for (const a of actions) counts[a.op] += 1;
  // In the order --prune would delete them.
  const orphans = inDeletionOrder(kinds.flatMap((k) => k.orphans));
  return { actions, counts, orphans, outdated: outdatedProviders(state) };
}

export const hasChanges = (plan: Plan) => plan.counts.create + plan.counts.update + plan.counts.delete > 0;

export type { AgentSpec };
