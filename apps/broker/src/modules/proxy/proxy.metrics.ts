import { Counter, Histogram, type Registry } from 'prom-client';
import type { ProxyOutcome } from './proxy.ts';

/**
 * Proxy metrics. `route` is a configured route or a provider name (operator-defined, bounded);
 * a name that is no route is counted as `unknown`, so callers cannot mint label values.
 */
export function createProxyMetrics(registry: Registry) {
  const requests = new Counter({
    name: 'nexus_proxy_requests_total',
    help: 'Proxied requests by route, answer status and outcome',
    labelNames: ['route', 'status', 'outcome'] as const,
    registers: [registry],
  });
  const upstream = new Histogram({
    name: 'nexus_proxy_upstream_seconds',
    help: "Time until the upstream's response headers arrived (including a refresh-and-retry)",
    labelNames: ['route'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  return {
    observe(info: {
      route: string;
      status: number;
      outcome: ProxyOutcome;
      upstreamSeconds: number | undefined;
    }) {
      const route = info.outcome === 'unknown_route' ? 'unknown' : info.route;
      requests.inc({ route, status: String(info.status), outcome: info.outcome });
      if (info.upstreamSeconds !== undefined) upstream.observe({ route }, info.upstreamSeconds);
    },
  };
}

export type ProxyMetrics = ReturnType<typeof createProxyMetrics>;
