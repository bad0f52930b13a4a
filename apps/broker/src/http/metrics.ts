import type { FastifyInstance } from 'fastify';
import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';

/**
 * Prometheus metrics. Labels are route templates (`/providers/:id`), methods and status codes
 * only: never ids, names, keys or anything a caller controls. The modules register theirs on the
 * same registry (`*.metrics.ts`), and so do the original's names (original-metrics.ts), whose
 * `provider` label is an operator-defined provider name.
 */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'nexus_' });
  const requests = new Counter({
    name: 'nexus_http_requests_total',
    help: 'HTTP requests answered',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'nexus_http_request_duration_seconds',
    help: 'HTTP request duration',
    labelNames: ['method', 'route'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
    registers: [registry],
  });
  return {
    registry,
    install(app: FastifyInstance): void {
      app.addHook('onResponse', (request, reply, done) => {
        const route = request.is404 ? 'unmatched' : (request.routeOptions.url ?? 'unmatched');
        requests.inc({ method: request.method, route, status: String(reply.statusCode) });
        duration.observe({ method: request.method, route }, reply.elapsedTime / 1000);
        done();
      });
    },
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
