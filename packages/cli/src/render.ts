/**
 * Output for people (plan diffs, tables) and for scripts (JSON and YAML with stable shapes). Secret
 * fields are always `***`; values are never looked at.
 */
import type { NexusError } from '@nexus-broker/sdk';
import { stringify } from 'yaml';
import { type Io, painter } from './io.ts';
import type { Action, FieldChange, Orphan, Plan } from './plan.ts';
import { outdatedLine } from './plan-catalog.ts';

const SYMBOL = { create: '+', update: '~', delete: '-', unchanged: '=' } as const;
const COLOUR = { create: 'green', update: 'yellow', delete: 'red', unchanged: 'dim' } as const;
const KIND_LABEL: Record<Action['kind'], string> = {
  scope: 'scope',
  trusted_issuer: 'trusted issuer',
  provider: 'provider',
  alias: 'provider alias',
  agent: 'agent',
};

export function showValue(v: unknown): string {
  if (v === undefined || v === null) return '(none)';
  if (typeof v === 'string') return JSON.stringify(v);
  return JSON.stringify(v);
}

function changeLine(c: FieldChange, op: Action['op']): string {
  if (c.secret)
    return op === 'create'
      ? `${c.field}: ***`
      : `${c.field}: ${c.old === undefined ? '(none)' : '***'} → ***`;
  if (op === 'create') return `${c.field}: ${showValue(c.new)}`;
  return `${c.field}: ${showValue(c.old)} → ${showValue(c.new)}`;
}

/**
 * An orphan as the original CLI printed it, `! ORPHAN : NAME (would be deleted if --prune was
 * passed)`, at the start of the line; kinds the original did not manage name theirs first.
 */
export function orphanLine(o: Orphan): string {
  const kind = o.kind === 'provider' ? '' : `${KIND_LABEL[o.kind]}; `;
  return `! ORPHAN : ${o.name} (${kind}would be deleted if --prune was passed)`;
}

/** The orphan lines, after a blank line; nothing when there are none. */
export function renderOrphans(io: Io, plan: Plan): void {
  if (plan.orphans.length === 0) return;
  const paint = painter(io);
  io.out('');
  for (const o of plan.orphans) io.out(paint('yellow', orphanLine(o)));
}

/** The human plan: one line per object, changed fields beneath, orphans, a summary line. */
export function renderPlan(io: Io, plan: Plan, target: string): void {
  const paint = painter(io);
  io.out(`Plan for ${target}:\n`);
  for (const a of plan.actions) {
    const head = `${SYMBOL[a.op]} ${a.op === 'unchanged' ? 'unchanged' : a.op} ${KIND_LABEL[a.kind]} ${a.name}`;
    io.out(`  ${paint(COLOUR[a.op], head)}`);
    for (const c of a.changes) io.out(`      ${changeLine(c, a.op)}`);
    for (const r of a.remarks ?? []) io.out(paint('dim', `      ${r}`));
    if (a.note) io.out(paint('dim', `      (${a.note})`));
  }
  renderOrphans(io, plan);
  if (plan.outdated.length > 0) io.out('');
  for (const o of plan.outdated) io.out(paint('yellow', `! OUTDATED : ${outdatedLine(o)}`));
  const { create, update, delete: del, unchanged } = plan.counts;
  io.out(
    `\nPlan: ${create} to create, ${update} to update, ${del} to delete, ${unchanged} unchanged.${
      create + update + del === 0 ? ' No changes.' : ''
    }`,
  );
  const n = plan.orphans.length;
  if (n > 0)
    io.out(
      `${n} orphan${n === 1 ? '' : 's'} (in the broker, not in the file) left alone: --prune deletes ${n === 1 ? 'it' : 'them'}.`,
    );
}

/**
 * The plan for scripts: `{changes: [...], orphans: [{kind, name}], outdated: [{provider, template,
 * version, latest}], summary: {...}}`, secrets as "***".
 */
export function planJson(plan: Plan): unknown {
  return {
    changes: plan.actions.map((a) => ({
      action: a.op,
      kind: a.kind,
      name: a.name,
      fields: a.changes.map((c) => ({
        field: c.field,
        old: c.secret ? (c.old === undefined ? null : '***') : (c.old ?? null),
        new: c.secret ? '***' : (c.new ?? null),
      })),
    })),
    orphans: plan.orphans.map((o) => ({ kind: o.kind, name: o.name })),
    outdated: plan.outdated.map((o) => ({
      provider: o.name,
      template: o.key,
      version: o.version,
      latest: o.latest ?? null,
    })),
    summary: plan.counts,
  };
}

export type Format = 'table' | 'json' | 'yaml';

export function emit(io: Io, format: Format, data: unknown, table: () => void): void {
  if (format === 'json') io.out(JSON.stringify(data, null, 2));
  else if (format === 'yaml') io.out(stringify(data).trimEnd());
  else table();
}

/** A plain aligned table (headers dimmed on a colour terminal). */
export function table(
  io: Io,
  headers: string[],
  rows: (string | number | boolean | null | undefined)[][],
): void {
  const paint = painter(io);
  const cells = rows.map((r) => r.map((c) => (c === null || c === undefined ? '-' : String(c))));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  io.out(paint('bold', line(headers)));
  for (const r of cells) io.out(line(r));
  if (rows.length === 0) io.out(paint('dim', '(none)'));
}

/** The deepest cause's text: `connect ECONNREFUSED 127.0.0.1:9` rather than `fetch failed`. */
function rootCause(error: Error): string {
  let text = error.message;
  let current: unknown = error.cause;
  for (let depth = 0; depth < 5 && current instanceof Error; depth++) {
    const code = (current as { code?: unknown }).code;
    const own = current.message || (typeof code === 'string' ? code : '');
    if (own !== '') text = own;
    current = current.cause;
  }
  return text;
}

/**
 * One line for a failed request: `message [404 not_found]` when the broker answered; when it did
 * not, the code in parentheses, and for an unreachable broker (given its URL) what the network said:
 * `cannot reach the broker at URL: connect ECONNREFUSED … (broker_unavailable)` (issue #24).
 */
export function describeApiError(error: NexusError, url?: string): string {
  if (error.status !== undefined) return `${error.message} [${error.status} ${error.code}]`;
  if (error.code === 'broker_unavailable' && url !== undefined)
    return `cannot reach the broker at ${url}: ${rootCause(error)} (${error.code})`;
  return `${error.message} (${error.code})`;
}
