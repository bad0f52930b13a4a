import type { FastifyInstance } from 'fastify';
import { Counter, collectDefaultMetrics, Registry } from 'prom-client';

/**
 * Prometheus metrics. Labels are route templates (`/providers/:id`), methods and status codes
 * only: never ids, names, keys or anything a caller controls. The modules register theirs on the
 * same registry (`*.metrics.ts`), and so do the original's names (original-metrics.ts), whose
 * `provider` label is an operator-defined provider name.
 */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'nexus_' });
  const cells = new Map<string, RequestCell>();
  const durations = new Map<string, DurationCell>();
  new Counter({
    name: 'nexus_http_requests_total',
    help: 'HTTP requests answered',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [registry],
    // Counted per request in `cells`, handed to the counter when it is scraped.
    collect() {
      for (const cell of cells.values()) {
        if (cell.unreported > 0) this.inc(cell.labels, cell.unreported);
        cell.unreported = 0;
      }
    },
  });
  registry.registerMetric(
    new DurationHistogram('nexus_http_request_duration_seconds', 'HTTP request duration', durations) as never,
  );
  /*
   * Per request: one string key and one map lookup per metric. prom-client's `inc` and `observe`
   * check, sort and hash the label object on every call (~1.4 µs of a no-op request's ~30 µs);
   * its output is kept: the counter is prom-client's, the histogram prints what prom-client's does.
   */
  function observe(method: string, route: string, status: number, seconds: number): void {
    const key = `${method} ${route} ${status}`;
    let cell = cells.get(key);
    if (cell === undefined) {
      const durationKey = `${method} ${route}`;
      let duration = durations.get(durationKey);
      if (duration === undefined) {
        duration = { labels: { method, route }, counts: UPPER_BOUNDS.map(() => 0), sum: 0, count: 0 };
        durations.set(durationKey, duration);
      }
      cell = { labels: { method, route, status: String(status) }, unreported: 0, duration };
      cells.set(key, cell);
    }
    cell.unreported++;
    const d = cell.duration;
    d.count++;
    d.sum += seconds;
    for (let i = 0; i < UPPER_BOUNDS.length; i++) {
      if (seconds <= UPPER_BOUNDS[i]!) {
        d.counts[i]!++;
        break;
      }
    }
  }
  return {
    registry,
    install(app: FastifyInstance): void {
      app.addHook('onResponse', (request, reply, done) => {
        const route = request.is404 ? 'unmatched' : (request.routeOptions.url ?? 'unmatched');
        observe(request.method, route, reply.statusCode, reply.elapsedTime / 1000);
        done();
      });
    },
  };
}

/** The duration histogram's buckets, in seconds (and `+Inf`). */
const UPPER_BOUNDS: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5];

interface DurationCell {
  labels: { method: string; route: string };
  /** Observations per bucket (not cumulative), in the order of UPPER_BOUNDS. */
  counts: number[];
  sum: number;
  count: number;
}

interface RequestCell {
  labels: { method: string; route: string; status: string };
  /** Requests since the counter last took them (prom-client's counter keeps the total). */
  unreported: number;
  duration: DurationCell;
}

/**
 * A histogram of request durations by method and route, registered on a prom-client registry as
 * prom-client's own `Histogram` would be, and printed the same: per label set, the cumulative
 * `_bucket` lines (`le` first, then the labels), `+Inf`, `_sum` and `_count`.
 */
class DurationHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';

  readonly name: string;
  readonly help: string;
  readonly cells: Map<string, DurationCell>;

  constructor(name: string, help: string, cells: Map<string, DurationCell>) {
    this.name = name;
    this.help = help;
    this.cells = cells;
  }

  async getForPromString() {
    const name = this.name;
    const values: Array<{
      labels: Record<string, string | number>;
      sharedLabels?: Record<string, string>;
      value: number;
      metricName: string;
    }> = [];
    for (const cell of this.cells.values()) {
      let cumulative = 0;
      UPPER_BOUNDS.forEach((le, i) => {
        cumulative += cell.counts[i]!;
        values.push({
          labels: { le },
          sharedLabels: cell.labels,
          value: cumulative,
          metricName: `${name}_bucket`,
        });
      });
      values.push(
        {
          labels: { le: '+Inf' },
          sharedLabels: cell.labels,
          value: cell.count,
          metricName: `${name}_bucket`,
        },
        { labels: {}, sharedLabels: cell.labels, value: cell.sum, metricName: `${name}_sum` },
        { labels: {}, sharedLabels: cell.labels, value: cell.count, metricName: `${name}_count` },
      );
    }
    return { name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  /** As prom-client's `get`: each value's labels with the shared ones merged in. */
  async get() {
    const data = await this.getForPromString();
    return {
      ...data,
      values: data.values.map(({ sharedLabels, labels, ...rest }) => ({
        ...rest,
        labels: { ...labels, ...sharedLabels },
      })),
    };
  }

  reset(): void {
    for (const cell of this.cells.values()) {
      cell.counts.fill(0);
      cell.sum = 0;
      cell.count = 0;
    }
  }
}

export type Metrics = ReturnType<typeof createMetrics>;
