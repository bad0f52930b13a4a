import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { ConnectionsService } from '../connections/connections.service.ts';
import type { RefreshWorkerMetrics } from './refresh-worker.ts';

/**
 * Refresh-worker metrics. The `provider` label is the provider id (an operator-created, bounded
 * set); connection ids never become labels. The gauges are read from the database when scraped,
 * by index (`status`, and the partial index on `refresh_due_at`).
 */
export function createRefreshMetrics(
  registry: Registry,
  connections: Pick<ConnectionsService, 'countDue' | 'countByStatus'>,
  now: () => number,
): RefreshWorkerMetrics {
  const refreshes = new Counter({
    name: 'nexus_refresh_total',
    help: 'Background refreshes by outcome (refreshed, attention_required, failed, skipped, error)',
    labelNames: ['outcome', 'provider'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'nexus_refresh_duration_seconds',
    help: 'Duration of background refreshes, provider call included',
    labelNames: ['provider'] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const takeovers = new Counter({
    name: 'nexus_refresh_lease_takeovers_total',
    help: 'Refresh leases taken over after they expired in another holder (a replica died mid-refresh)',
    registers: [registry],
  });
  new Gauge({
    name: 'nexus_refresh_queue_depth',
    help: 'Active connections whose refresh is due but not done yet',
    registers: [registry],
    async collect() {
      this.set(await connections.countDue(now()));
    },
  });
  new Gauge({
    name: 'nexus_connections',
    help: 'Connections by state',
    labelNames: ['status'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      for (const [status, n] of Object.entries(await connections.countByStatus())) this.set({ status }, n);
    },
  });
  return {
    refreshed(outcome, provider, seconds) {
      refreshes.inc({ outcome, provider });
      duration.observe({ provider }, seconds);
    },
    tookOver(count) {
      takeovers.inc(count);
    },
  };
}
