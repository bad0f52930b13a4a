/** The shapes of a plan (plan.ts): actions with their field changes, orphans, and what apply runs. */
import type { Api } from './api.ts';
import type { Kind, SecretSource } from './manifest.ts';
import type { Outdated } from './plan-catalog.ts';

export type Op = 'create' | 'update' | 'delete' | 'unchanged';

export interface FieldChange {
  field: string;
  old?: unknown;
  new?: unknown;
  /** Shown as *** whatever the values. */
  secret?: boolean;
}

export interface ExecContext {
  api: Api;
  /** Provider name → id, filled as providers are created. */
  providerIds: Map<string, string>;
  resolveSecret(source: SecretSource): Promise<string>;
  /** Messages for the operator after the run (never secret values). */
  notes: string[];
  /** Where generated agent client secrets are written (mode 0600), if anywhere. */
  onAgentSecret?: (agentId: string, secret: string) => void;
}

export interface Action {
  op: Op;
  kind: Kind | 'alias';
  name: string;
  changes: FieldChange[];
  note?: string;
  /** Lines beneath the changes that are not changes (a client_secret kept as stored). */
  remarks?: string[];
  run?: (ctx: ExecContext) => Promise<void>;
}

/** An object the broker has and the file does not list, of a kind the file has a section for. */
export interface Orphan {
  kind: Kind;
  name: string;
}

export interface Plan {
  actions: Action[];
  counts: Record<Op, number>;
  /** Without --prune: what --prune would delete, listed and left alone (never a change). */
  orphans: Orphan[];
  /** Providers made from an older version of their catalogue entry (plan-catalog.ts); not a change. */
  outdated: Outdated[];
}

export interface PlanOptions {
  prune: boolean;
  /** Send secrets that cannot be compared (they are write-only on the broker). */
  updateSecrets: boolean;
}

/** What planning one kind of object yields: its actions in order, its deletions, its orphans. */
export interface KindPlan {
  actions: Action[];
  deletes: Action[];
  orphans: Orphan[];
}
