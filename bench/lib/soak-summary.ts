/**
 * The soak bench's end of run: every connection's status (from the broker's own list), the audit
 * events by action (from the database, once the replicas have stopped and flushed), and the summary
 * with its verdict.
 */
import pg from 'pg';
import type { LogTally } from './broker-logs.ts';
import { refreshBudget } from './refresh-budget.ts';
import type { SoakWorld } from './soak-calls.ts';
import type { AuditChain, IntervalRow, Summary } from './soak-report.ts';
import { trend } from './soak-report.ts';
import { FAILING, KINDS, type Kind } from './soak-series.ts';
import { median, round } from './stats.ts';

/** connection id → status, for every connection, through GET /connections a page at a time. */
export async function connectionStatuses(base: string, adminKey: string): Promise<Map<string, string>> {
  const statusOf = new Map<string, string>();
  let cursor: string | null = null;
  do {
    const res = await fetch(`${base}/connections?limit=500${cursor ? `&cursor=${cursor}` : ''}`, {
      headers: { 'x-api-key': adminKey },
    });
    if (!res.ok) throw new Error(`GET /connections: ${res.status} ${await res.text()}`);
    const page = (await res.json()) as {
      connections: Array<{ id: string; status: string }>;
      next_cursor: string | null;
    };
    for (const c of page.connections) statusOf.set(c.id, c.status);
    cursor = page.next_cursor;
  } while (cursor !== null);
  return statusOf;
}

/**
 * Audit events by action: `action` for those with outcome `success`, `action:outcome` for the
 * others.
 */
export async function auditCounts(databaseUrl: string): Promise<Record<string, number>> {
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  try {
    const { rows } = await db.query<{ action: string; outcome: string; n: string }>(
      'SELECT action, outcome, count(*) AS n FROM audit_events GROUP BY action, outcome ORDER BY action',
    );
    return Object.fromEntries(
      rows.map((r) => [r.outcome === 'success' ? r.action : `${r.action}:${r.outcome}`, Number(r.n)]),
    );
  } finally {
    await db.end();
  }
}

/**
 * Each call the broker answered with success is one audit event; each refresh the provider
 * granted is one `connection.refreshed`. Fewer events than that means the audit lost some.
 */
function auditShortfalls(
  audit: Record<string, number>,
  answered: Record<Kind, number>,
  providerRefreshes: number,
): string[] {
  const expected: Array<[string, number]> = [
    // An explicit refresh answers with the token, and a consent ends with the agent's first read.
    ['connection.token_read', answered.token + answered.refresh + answered.consent],
    ['proxy.request', answered.proxy],
    ['key_accessed', answered.secret],
  ];
  // A refresh whose connection was superseded while the provider answered is audited as discarded.
  const refreshAudits =
    (audit['connection.refreshed'] ?? 0) + (audit['connection.refresh_discarded:failure'] ?? 0);
  if (refreshAudits < providerRefreshes)
    return [
      `${refreshAudits} connection.refreshed and refresh_discarded audit events for ${providerRefreshes} refreshes the provider granted`,
      ...expected
        .filter(([action, n]) => (audit[action] ?? 0) < n)
        .map(([action, n]) => `${audit[action] ?? 0} ${action} audit events for ${n} successful calls`),
    ];
  return expected
    .filter(([action, n]) => (audit[action] ?? 0) < n)
    .map(([action, n]) => `${audit[action] ?? 0} ${action} audit events for ${n} successful calls`);
}

export function summarize(input: {
  config: Record<string, unknown>;
  accessTtlSeconds: number;
  world: SoakWorld;
  rows: readonly IntervalRow[];
  rss: ReadonlyArray<ReadonlyArray<readonly [number, number]>>;
  heap: ReadonlyArray<ReadonlyArray<readonly [number, number]>>;
  statusOf: ReadonlyMap<string, string>;
  audit: Record<string, number>;
  /** `nexus audit verify --json` after the run. */
  auditChain: AuditChain;
  exits: readonly string[];
  logs: LogTally;
  idpCounts: { refresh_token: number; revocation: number };
  loadSeconds: number;
  end: number;
  interrupted: boolean;
}): Summary {
  const { world: w, rows } = input;
  const tap = w.tap;
  const byStatus: Record<string, number> = {};
  for (const status of input.statusOf.values()) byStatus[status] = (byStatus[status] ?? 0) + 1;
  const currentNotActive = [...w.current.values()]
    .filter((id) => input.statusOf.get(id) !== 'active')
    .map((id) => `${id} ${input.statusOf.get(id) ?? 'missing'}`);

  // A chain ends when the consent that superseded its connection completed.
  const endedAt = new Map<number, number>();
  for (const [id, [, to]] of w.lifetimes) {
    const chain = w.chainOf.get(id);
    if (chain !== undefined && to !== undefined) endedAt.set(chain, to);
  }
  const budget = refreshBudget({
    chains: tap.chains,
    endedAt,
    explicitTokens: w.explicitTokens,
    lifetimeMs: input.accessTtlSeconds * 1000,
    end: input.end,
  });
  const c = tap.counts;

  const totals = {} as Summary['totals'];
  for (const k of KINDS) {
    const ks = rows.map((r) => r.kinds[k]);
    totals[k] = {
      requests: ks.reduce((a, r) => a + r.requests, 0),
      ...w.rec.totals()[k],
      p50_ms: round(median(ks.filter((r) => r.p50_ms !== null).map((r) => r.p50_ms!))),
      p99_ms: ks.reduce((a, r) => Math.max(a, r.p99_ms ?? 0), 0),
    };
  }
  const workerOutcomes: Record<string, number> = {};
  for (const row of rows)
    for (const r of row.replicas)
      for (const [outcome, n] of Object.entries(r.worker))
        workerOutcomes[outcome] = (workerOutcomes[outcome] ?? 0) + n;

  const reasons: string[] = [];
  for (const k of KINDS)
    for (const f of FAILING) if ((totals[k][f] ?? 0) > 0) reasons.push(`${totals[k][f]} ${k} ${f}`);
  if (c.reused_refresh_tokens > 0) reasons.push(`${c.reused_refresh_tokens} refresh tokens presented twice`);
  if (c.invalid_grant > 0) reasons.push(`${c.invalid_grant} invalid_grant answers`);
  if (c.unknown_refresh_tokens > 0)
    reasons.push(`${c.unknown_refresh_tokens} refresh tokens the provider never issued`);
  if (currentNotActive.length > 0) reasons.push(`${currentNotActive.length} current connections not active`);
  const others = Object.entries(byStatus).filter(([status]) => status !== 'active' && status !== 'revoked');
  if (others.length > 0)
    reasons.push(`connections neither active nor revoked: ${JSON.stringify(Object.fromEntries(others))}`);
  if (budget.chains_over_budget > 0)
    reasons.push(`${budget.chains_over_budget} connections refreshed more often than their lifetime allows`);
  if (budget.early_refreshes > 0)
    reasons.push(`${budget.early_refreshes} scheduled refreshes sooner than L/2 after the previous one`);
  // The workers' own view: with a healthy provider every background refresh should succeed.
  for (const [outcome, n] of Object.entries(workerOutcomes))
    if (outcome !== 'refreshed' && outcome !== 'skipped' && n > 0)
      reasons.push(`${n} background refreshes ended ${outcome}`);
  // Calls answered 2xx (a bad token still came in a 2xx answer, and was audited).
  const answered = Object.fromEntries(
    KINDS.map((k) => [k, (totals[k].ok ?? 0) + (totals[k].bad_token ?? 0)]),
  ) as Record<Kind, number>;
  const shortfalls = auditShortfalls(input.audit, answered, c.refresh_ok);
  reasons.push(...shortfalls);
  if (!input.auditChain.ok) reasons.push(`audit chain broken: ${JSON.stringify(input.auditChain)}`);
  if (input.exits.some((e) => e !== '0')) reasons.push(`replica exits: ${input.exits.join(', ')}`);
  if (input.interrupted) reasons.push('interrupted');

  return {
    config: input.config,
    load_seconds: Math.round(input.loadSeconds),
    totals,
    rss: input.rss.map(trend),
    heap: input.heap.map(trend),
    provider: {
      ...c,
      revocations: input.idpCounts.revocation,
      fixture_refresh_grants: input.idpCounts.refresh_token,
      explicit_refresh_calls_ok: w.explicitRefreshes,
      budget,
    },
    connections: { by_status: byStatus, current_not_active: currentNotActive },
    worker_outcomes: workerOutcomes,
    audit: input.audit,
    audit_chain: input.auditChain,
    replicas: input.exits.map((exit, i) => ({
      exit,
      log_warn: input.logs.counts[i]!.warn,
      log_error: input.logs.counts[i]!.error,
    })),
    log_messages: input.logs.messages(),
    failures: w.rec.failures(),
    verdict: { pass: reasons.length === 0, reasons },
  };
}
