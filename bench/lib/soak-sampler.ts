/**
 * The soak bench's machine-side samples: RSS of each replica every few seconds (for the trend),
 * and at each interval's end a row of the time series: CPU of the replicas, of PostgreSQL, of this
 * driver and of everything else (from /proc), each replica's heap and background refreshes (from
 * its /metrics), its warn/error log lines, and what the provider saw (from the token tap).
 */
import { cpus } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { LogTally } from './broker-logs.ts';
import {
  machineBusyTicks,
  postgresTicksBetween,
  postgresTicksByPid,
  procTicks,
  rssMb,
  TICK_MS,
} from './proc.ts';
import type { IntervalRow, ReplicaRow } from './soak-report.ts';
import type { Kind, KindRow } from './soak-series.ts';
import { round } from './stats.ts';
import type { TokenTap } from './token-tap.ts';

interface Scraped {
  /** nexus_refresh_total by outcome, summed over providers. */
  refresh: Record<string, number>;
  heapMb: number | null;
  externalMb: number | null;
  queueDepth: number | null;
  /** Event-loop delay since the previous scrape (prom-client resets its histogram on each). */
  lagP99Ms: number | null;
  lagMaxMs: number | null;
  /** Time in garbage collection since the process started. */
  gcSeconds: number;
}

/** The refresh outcomes, heap and refresh queue a replica reports on /metrics (admin key). */
async function scrape(base: string, adminKey: string): Promise<Scraped> {
  const out: Scraped = {
    refresh: {},
    heapMb: null,
    externalMb: null,
    queueDepth: null,
    lagP99Ms: null,
    lagMaxMs: null,
    gcSeconds: 0,
  };
  try {
    const res = await fetch(`${base}/metrics`, {
      headers: { 'x-api-key': adminKey },
      signal: AbortSignal.timeout(10_000),
    });
    for (const line of (await res.text()).split('\n')) {
      const value = Number(line.slice(line.lastIndexOf(' ') + 1));
      const m = /^nexus_refresh_total\{[^}]*outcome="([^"]+)"/.exec(line);
      if (m) out.refresh[m[1]!] = (out.refresh[m[1]!] ?? 0) + value;
      else if (line.startsWith('nexus_nodejs_heap_size_used_bytes ')) out.heapMb = value / 2 ** 20;
      else if (line.startsWith('nexus_nodejs_external_memory_bytes ')) out.externalMb = value / 2 ** 20;
      else if (line.startsWith('nexus_refresh_queue_depth ')) out.queueDepth = value;
      else if (line.startsWith('nexus_nodejs_eventloop_lag_p99_seconds ')) out.lagP99Ms = value * 1000;
      else if (line.startsWith('nexus_nodejs_eventloop_lag_max_seconds ')) out.lagMaxMs = value * 1000;
      else if (line.startsWith('nexus_nodejs_gc_duration_seconds_sum')) out.gcSeconds += value;
    }
  } catch {}
  return out;
}

export async function createSampler(deps: {
  replicas: ReadonlyArray<{ pid: number; base: string }>;
  adminKey: string;
  tap: TokenTap;
  logs: LogTally;
  startedAt: number;
}) {
  const { replicas, tap, logs, startedAt } = deps;
  const seconds = () => (Date.now() - startedAt) / 1000;
  const rss = replicas.map(() => [] as Array<[number, number]>);
  const heap = replicas.map(() => [] as Array<[number, number]>);
  const cpu = () => ({
    replicas: replicas.map((r) => procTicks(r.pid)),
    pg: postgresTicksByPid(),
    self: procTicks('self'),
    busy: machineBusyTicks(),
    at: Date.now(),
  });
  // The driver's own event-loop delay: a stalled driver delays its calls and its measurements.
  const driverLag = monitorEventLoopDelay({ resolution: 10 });
  driverLag.enable();
  const scrapeAll = () => Promise.all(replicas.map((r) => scrape(r.base, deps.adminKey)));
  let last = {
    cpu: cpu(),
    tap: { ...tap.counts },
    metrics: await scrapeAll(),
    logs: logs.counts.map((c) => ({ ...c })),
  };

  return {
    /** [seconds since start, MB] per replica: RSS every few seconds, heap at each interval's end. */
    rss,
    heap,

    /** Stops the driver's event-loop monitor. */
    stop(): void {
      driverLag.disable();
    },

    sampleRss(): void {
      const t = seconds();
      for (const [i, r] of replicas.entries()) rss[i]!.push([t, rssMb(r.pid)]);
    },

    /** The interval's row, from the kinds' rows and everything measured since the last one. */
    async close(kinds: Record<Kind, KindRow>): Promise<IntervalRow> {
      const now = cpu();
      const wall = (now.at - last.cpu.at) / 1000;
      // Percent of one core.
      const pct = (ticks: number) => round((ticks * TICK_MS) / 10 / wall, 0);
      const metrics = await scrapeAll();
      const t = seconds();
      const replicaRows: ReplicaRow[] = replicas.map((r, i) => {
        const m = metrics[i]!;
        const worker: Record<string, number> = {};
        for (const [outcome, n] of Object.entries(m.refresh))
          worker[outcome] = n - (last.metrics[i]!.refresh[outcome] ?? 0);
        if (m.heapMb !== null) heap[i]!.push([t, m.heapMb]);
        return {
          rss_mb: round(rssMb(r.pid)),
          heap_used_mb: round(m.heapMb ?? Number.NaN),
          external_mb: round(m.externalMb ?? Number.NaN),
          cpu_pct: pct(now.replicas[i]! - last.cpu.replicas[i]!),
          worker,
          refresh_queue_depth: m.queueDepth,
          loop_lag_p99_ms: round(m.lagP99Ms ?? Number.NaN),
          loop_lag_max_ms: round(m.lagMaxMs ?? Number.NaN),
          gc_ms: round((m.gcSeconds - last.metrics[i]!.gcSeconds) * 1000, 0),
          log_warn: logs.counts[i]!.warn - last.logs[i]!.warn,
          log_error: logs.counts[i]!.error - last.logs[i]!.error,
        };
      });
      const replicaTicks = now.replicas.reduce((a, ticks, i) => a + ticks - last.cpu.replicas[i]!, 0);
      const pgTicks = postgresTicksBetween(last.cpu.pg, now.pg);
      const c = tap.counts;
      const row: IntervalRow = {
        t_s: Math.round(t),
        seconds: wall,
        kinds,
        replicas: replicaRows,
        // Every PostgreSQL process: other users of the same server count too.
        postgres_cpu_pct: pct(pgTicks),
        driver_cpu_pct: pct(now.self - last.cpu.self),
        driver_loop_lag_max_ms: round(driverLag.max / 1e6, 0),
        machine_busy_pct: round(((now.busy - last.cpu.busy) * TICK_MS) / 10 / wall / cpus().length, 0),
        // Everything else on the machine: other people's work disturbs the figures.
        other_cpu_pct: pct(now.busy - last.cpu.busy - pgTicks - (now.self - last.cpu.self) - replicaTicks),
        provider: {
          code_grants: c.code_grants - last.tap.code_grants,
          refresh_ok: c.refresh_ok - last.tap.refresh_ok,
          invalid_grant: c.invalid_grant - last.tap.invalid_grant,
          reused_refresh_tokens: c.reused_refresh_tokens - last.tap.reused_refresh_tokens,
        },
      };
      driverLag.reset();
      last = { cpu: now, tap: { ...c }, metrics, logs: logs.counts.map((x) => ({ ...x })) };
      return row;
    },
  };
}

export type Sampler = Awaited<ReturnType<typeof createSampler>>;
