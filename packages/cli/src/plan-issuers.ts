/** The plan for trusted issuers, by issuer URL. */
import type { IssuerSpec, Manifest } from './manifest.ts';
import { createChanges, diff, sorted, withoutNulls } from './plan-compare.ts';
import { unlisted } from './plan-orphans.ts';
import type { Action, KindPlan, PlanOptions } from './plan-types.ts';
import type { State } from './state.ts';

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

export function planIssuers(manifest: Manifest, state: State, options: PlanOptions): KindPlan {
  const actions: Action[] = [];
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
  const rest = unlisted(
    manifest,
    options,
    'trusted_issuer',
    state.issuers,
    (cur) => wantIssuers.has(cur.issuer),
    (cur) => cur.issuer,
    (api, cur) => api.deleteTrustedIssuer(cur.id, cur.version),
  );
  return { actions, ...rest };
}
