/**
 * The soak bench's report: the time series as a markdown table, memory trends (least-squares
 * slope over the second half of the run, first- vs last-quarter median), and the summary printed
 * after the table.
 */

import type { refreshBudget } from './refresh-budget.ts';
import { type Failure, KINDS, type Kind, type KindRow } from './soak-series.ts';
import { median, round, slope } from './stats.ts';
import type { TapCounts } from './token-tap.ts';

export interface ReplicaRow {
  rss_mb: number | null;
  heap_used_mb: number | null;
  /** Memory outside the V8 heap that Node accounts for (buffers). */
  external_mb: number | null;
  cpu_pct: number | null;
  /** Background refreshes in the interval, by outcome (the broker's nexus_refresh_total). */
  worker: Record<string, number>;
  refresh_queue_depth: number | null;
  loop_lag_p99_ms: number | null;
  loop_lag_max_ms: number | null;
  gc_ms: number | null;
  log_warn: number;
  log_error: number;
}

export interface IntervalRow {
  /** Seconds since the load started, at the end of the interval. */
  t_s: number;
  seconds: number;
  kinds: Record<Kind, KindRow>;
  replicas: ReplicaRow[];
  postgres_cpu_pct: number | null;
  driver_cpu_pct: number | null;
  driver_loop_lag_max_ms: number | null;
  machine_busy_pct: number | null;
  other_cpu_pct: number | null;
  provider: { code_grants: number; refresh_ok: number; invalid_grant: number; reused_refresh_tokens: number };
}

export interface Trend {
  samples: number;
  first_mb: number | null;
  first_quarter_median_mb: number | null;
  last_quarter_median_mb: number | null;
  last_mb: number | null;
  /** Least-squares slope over the second half of the run. */
  second_half_slope_mb_per_hour: number | null;
  /**
   * The floor: the lowest sample in each twelfth of the run (windows of at least a minute). Garbage
   * collection makes memory a saw-tooth; a leak shows as a rising floor more clearly than in the
   * raw samples, whose slope depends on where in the saw-tooth the run happens to end.
   */
  floors_mb: Array<number | null>;
  floor_second_half_slope_mb_per_hour: number | null;
}

/**
 * The lowest sample of each window of `windowS` seconds from the first sample: [window middle,
 * MB]. What is left at the end, shorter than a window, joins the last window.
 */
function floors(ok: ReadonlyArray<readonly [number, number]>, windowS: number): Array<[number, number]> {
  if (ok.length === 0) return [];
  const t0 = ok[0]![0];
  const windows = Math.max(1, Math.floor((ok.at(-1)![0] - t0) / windowS));
  const lowest = new Array<number>(windows).fill(Number.POSITIVE_INFINITY);
  for (const [t, mb] of ok) {
    const w = Math.min(windows - 1, Math.floor((t - t0) / windowS));
    lowest[w] = Math.min(lowest[w]!, mb);
  }
  return lowest.map((mb, w) => [t0 + (w + 0.5) * windowS, mb]);
}

/** The trend of [seconds, MB] samples. */
export function trend(samples: ReadonlyArray<readonly [number, number]>): Trend {
  const ok = samples.filter(([, mb]) => Number.isFinite(mb));
  const n = ok.length;
  const quarter = Math.max(1, Math.floor(n / 4));
  const mbs = ok.map(([, mb]) => mb);
  const span = n === 0 ? 0 : ok[n - 1]![0] - ok[0]![0];
  const floor = floors(ok, Math.max(60, span / 12));
  return {
    samples: n,
    first_mb: round(mbs[0] ?? Number.NaN),
    first_quarter_median_mb: round(median(mbs.slice(0, quarter))),
    last_quarter_median_mb: round(median(mbs.slice(n - quarter))),
    last_mb: round(mbs.at(-1) ?? Number.NaN),
    second_half_slope_mb_per_hour: round(slope(ok.slice(Math.floor(n / 2))) * 3600, 2),
    floors_mb: floor.map(([, mb]) => round(mb)),
    floor_second_half_slope_mb_per_hour: round(slope(floor.slice(Math.floor(floor.length / 2))) * 3600, 2),
  };
}

const fmt = (v: number | null | undefined, digits = 0) =>
  v === null || v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(digits);
const lat = (r: KindRow) => (r.requests === 0 ? '–' : `${fmt(r.p50_ms, 1)}/${fmt(r.p99_ms, 0)}`);

/** The time series, one row per interval. */
export function markdownTable(rows: readonly IntervalRow[]): string {
  const header = [
    't (s)',
    'req/s',
    'errors',
    '5xx',
    'expected',
    ...KINDS.map((k) => `${k} p50/p99 ms`),
    'RSS MB',
    'heap MB',
    'CPU %',
    'loop lag max ms (driver)',
    'pg CPU %',
    'other CPU %',
    'IdP refreshes',
    'worker refreshed',
  ];
  const lines = [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`];
  for (const row of rows) {
    const ks = KINDS.map((k) => row.kinds[k]);
    const sum = (f: (r: KindRow) => number) => ks.reduce((a, r) => a + f(r), 0);
    const per = (f: (r: ReplicaRow) => number | null, digits = 0) =>
      row.replicas.map((r) => fmt(f(r), digits)).join(' / ');
    lines.push(
      `| ${[
        row.t_s,
        fmt(sum((r) => r.requests) / row.seconds, 0),
        sum((r) => r.unexpected + r.bad_token + r.shed),
        sum((r) => r.server_error),
        sum((r) => r.expected),
        ...ks.map(lat),
        per((r) => r.rss_mb),
        per((r) => r.heap_used_mb),
        per((r) => r.cpu_pct),
        `${per((r) => r.loop_lag_max_ms)} (${fmt(row.driver_loop_lag_max_ms)})`,
        fmt(row.postgres_cpu_pct),
        fmt(row.other_cpu_pct),
        row.provider.refresh_ok,
        per((r) => r.worker.refreshed ?? 0),
      ].join(' | ')} |`,
    );
  }
  return lines.join('\n');
}

/** What `nexus audit verify --json` answered. */
export interface AuditChain {
  ok: boolean;
  checked?: number;
  brokenAt?: number;
  reason?: string;
}

export interface Summary {
  config: Record<string, unknown>;
  load_seconds: number;
  totals: Record<Kind, Record<string, number | null>>;
  rss: Trend[];
  heap: Trend[];
  provider: TapCounts & {
    revocations: number;
    /** The fixture's own count of processed refresh grants (should equal refresh_grants). */
    fixture_refresh_grants: number;
    explicit_refresh_calls_ok: number;
    budget: ReturnType<typeof refreshBudget>;
  };
  connections: { by_status: Record<string, number>; current_not_active: string[] };
  /** Background refreshes of all replicas, by the outcome the broker counted. */
  worker_outcomes: Record<string, number>;
  audit: Record<string, number>;
  audit_chain: AuditChain;
  replicas: Array<{ exit: string | undefined; log_warn: number; log_error: number }>;
  log_messages: Array<{ replica: number; level: number; msg: string; count: number }>;
  failures: Failure[];
  verdict: { pass: boolean; reasons: string[] };
}

/** The summary under the table: totals, trends, provider, connections, failures, verdict. */
export function markdownSummary(s: Summary): string {
  const out: string[] = [];
  out.push(
    '| kind | requests | ok | expected | 5xx | unexpected | bad token | shed | p50 ms (median) | p99 ms (worst interval) |',
  );
  out.push('|---|---|---|---|---|---|---|---|---|---|');
  for (const k of KINDS) {
    const t = s.totals[k];
    out.push(
      `| ${k} | ${t.requests} | ${t.ok} | ${t.expected} | ${t.server_error} | ${t.unexpected} | ${t.bad_token} | ${t.shed} | ${fmt(t.p50_ms, 1)} | ${fmt(t.p99_ms, 0)} |`,
    );
  }
  out.push('');
  out.push(
    '| replica | memory | first → last MB | first / last quarter median MB | slope, 2nd half | floor per twelfth of the run, MB | floor slope, 2nd half |',
  );
  out.push('|---|---|---|---|---|---|---|');
  const memoryRow = (i: number, what: string, t: Trend) =>
    `| ${i} | ${what} | ${fmt(t.first_mb)} → ${fmt(t.last_mb)} | ${fmt(t.first_quarter_median_mb)} / ${fmt(t.last_quarter_median_mb)} | ` +
    `${fmt(t.second_half_slope_mb_per_hour, 1)} MB/h | ${t.floors_mb.map((f) => fmt(f)).join(' ')} | ${fmt(t.floor_second_half_slope_mb_per_hour, 1)} MB/h |`;
  s.rss.forEach((r, i) => {
    out.push(memoryRow(i, 'RSS', r));
    out.push(memoryRow(i, 'heap used', s.heap[i]!));
  });
  out.push(`replica exits: ${s.replicas.map((r, i) => `${i}: ${r.exit ?? '?'}`).join(', ')}`);
  out.push('');
  const p = s.provider;
  const b = p.budget;
  const g = b.seconds_between_scheduled_refreshes;
  out.push(
    `provider (seen through the token tap): ${p.code_grants} code grants, ${p.refresh_ok} refreshes ` +
      `(${b.explicit} answering explicit refreshes, ${b.scheduled} scheduled), ${p.invalid_grant} invalid_grant, ` +
      `${p.reused_refresh_tokens} refresh tokens presented twice, ${p.unknown_refresh_tokens} unknown, ` +
      `${p.other_errors} other errors; the fixture counted ${p.fixture_refresh_grants} refresh grants and ${p.revocations} revocations`,
  );
  out.push(
    `lifetime bound: ${b.chains} grant chains need at least ${b.needed_at_least} refreshes (alive / L) and may have ` +
      `${b.budget} (alive / (L/2) + 1 each, plus explicit); ${b.chains_over_budget} over budget` +
      `${b.worst_chain ? ` (worst: ${b.worst_chain.refreshes} for ${b.worst_chain.budget} allowed in ${b.worst_chain.alive_s} s)` : ''}; ` +
      `${b.early_refreshes} scheduled refreshes sooner than L/2; seconds between scheduled refreshes ` +
      `min ${fmt(g.min, 1)}, p1 ${fmt(g.p1, 1)}, p50 ${fmt(g.p50, 1)}, max ${fmt(g.max, 1)}`,
  );
  out.push(
    `connections: ${JSON.stringify(s.connections.by_status)}; current and not active: ${s.connections.current_not_active.length === 0 ? 'none' : s.connections.current_not_active.join(', ')}`,
  );
  out.push(`background refreshes by outcome (both workers): ${JSON.stringify(s.worker_outcomes)}`);
  out.push(`audit events: ${JSON.stringify(s.audit)}`);
  out.push(
    `audit chain (nexus audit verify): ${s.audit_chain.ok ? `intact, ${s.audit_chain.checked} events` : `BROKEN ${JSON.stringify(s.audit_chain)}`}`,
  );
  out.push(
    `broker log lines at warn/error: ${s.replicas.map((r, i) => `replica ${i} ${r.log_warn}/${r.log_error}`).join(', ')}`,
  );
  for (const m of s.log_messages.slice(0, 10))
    out.push(`  - replica ${m.replica} level ${m.level} ×${m.count}: ${m.msg}`);
  if (s.failures.length > 0) {
    out.push('failures (distinct, most frequent first):');
    for (const f of s.failures.slice(0, 15))
      out.push(
        `  - ${f.kind} ${f.what} ×${f.count} (first at ${f.first_at_s} s)${f.example ? `: ${f.example.replace(/\s+/g, ' ').slice(0, 200)}` : ''}`,
      );
  }
  out.push('');
  out.push(s.verdict.pass ? 'PASS' : `FAIL: ${s.verdict.reasons.join('; ')}`);
  return out.join('\n');
}
