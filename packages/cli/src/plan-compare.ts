/**
 * How the plan compares the file with the broker: values in a canonical form (keys sorted, sets
 * sorted), field by field.
 */
import { createHash } from 'node:crypto';
import type { FieldChange } from './plan-types.ts';

export const canon = (v: unknown): string => JSON.stringify(sortKeys(v)) ?? 'undefined';
/** A short, stable name for a key set in plans: its keys are long and public, the point is "changed". */
export const fingerprint = (jwks: unknown) =>
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
export const same = (a: unknown, b: unknown) => canon(a) === canon(b);
export const sorted = (a: readonly string[]) => [...new Set(a)].sort();

/** The `fields` whose values differ (a missing value and null are the same). */
export function diff(
  fields: readonly string[],
  current: Record<string, unknown>,
  desired: Record<string, unknown>,
) {
  const changes: FieldChange[] = [];
  for (const f of fields) {
    if (!same(current[f] ?? null, desired[f] ?? null))
      changes.push({ field: f, old: current[f], new: desired[f] });
  }
  return changes;
}

/** The fields a create sets (empty values left out). */
export function createChanges(values: Record<string, unknown>): FieldChange[] {
  return Object.entries(values)
    .filter(([, v]) => v !== undefined && v !== null && !(Array.isArray(v) && v.length === 0))
    .map(([field, v]) => ({ field, new: v }));
}

export function withoutNulls(o: object): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== null && v !== undefined));
}
