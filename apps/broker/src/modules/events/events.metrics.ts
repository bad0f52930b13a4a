import { Counter, Histogram, type Registry } from 'prom-client';

/** What became of one claimed delivery. */
export type DeliveryOutcome = 'delivered' | 'retried' | 'failed' | 'lease_lost';

/** Webhook delivery metrics, registered on the broker's registry. Labels are the outcome only. */
export function createWebhookMetrics(registry: Registry) {
  const deliveries = new Counter({
    name: 'nexus_webhook_deliveries_total',
    help: 'Webhook delivery attempts by outcome: delivered (2xx), retried (queued again with backoff), failed (given up), lease_lost (another worker took the delivery over)',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'nexus_webhook_delivery_duration_seconds',
    help: 'Time from sending a webhook request to its answer or failure',
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  return {
    outcome(outcome: DeliveryOutcome): void {
      deliveries.inc({ outcome });
    },
    sent(seconds: number): void {
      duration.observe(seconds);
    },
  };
}

export type WebhookMetrics = ReturnType<typeof createWebhookMetrics>;
