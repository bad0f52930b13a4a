import type { Logger } from 'pino';
import { isDatabaseUnavailable } from '../../db/availability.ts';
import { NexusError } from '../../errors/nexus-error.ts';
import type { WebhookDelivery } from '../events/webhook-delivery.ts';
import type { Housekeeping } from '../housekeeping/housekeeping.ts';
import type { RefreshWorker } from './refresh-worker.ts';

/** Housekeeping runs this often; refreshes and deliveries poll every NEXUS_WORKER_POLL_MS. */
const HOUSEKEEPING_MS = 60_000;

/**
 * One account of a database outage for all the loops: every loop polls it, so during an outage
 * each would log a failure per poll (three lines a second at the default poll interval). The
 * first failure is logged, the others only counted, and the first success of any loop after it
 * (every poll reads the database, so it answered) is logged with the outage's length.
 */
function outageLog(logger: Logger, pollMs: number, now: () => number = Date.now) {
  let since: number | undefined;
  let failures = 0;
  return {
    /** True when the failure was the database being unavailable (and is accounted for here). */
    failed(loop: string, error: unknown): boolean {
      if (!isDatabaseUnavailable(error)) return false;
      failures++;
      if (since === undefined) {
        since = now();
        logger.warn(
          { loop, err: error, retry_ms: pollMs },
          'database unavailable: background jobs pause and retry until it answers',
        );
      }
      return true;
    },
    succeeded(): void {
      if (since === undefined) return;
      logger.info(
        { unavailable_ms: now() - since, failed_polls: failures },
        'database available again: background jobs resumed',
      );
      since = undefined;
      failures = 0;
    },
  };
}

/** What the background jobs need from the composition root (the container satisfies it). */
export interface BackgroundJobs {
  readonly config: { readonly refresh: { readonly pollMs: number } };
  readonly refreshWorker: Pick<RefreshWorker, 'start'>;
  readonly webhookDelivery: Pick<WebhookDelivery, 'start'>;
  readonly housekeeping: Pick<Housekeeping, 'start'>;
}

/**
 * Starts every background job of a broker process: the refresh worker, webhook delivery and
 * housekeeping. Failures are logged and retried at the next tick, never fatal; a database outage
 * is logged when it starts and when it ends. Returns a stop function that lets running refreshes
 * and deliveries finish.
 */
export function startBackgroundJobs(jobs: BackgroundJobs, logger: Logger): () => Promise<void> {
  const pollMs = jobs.config.refresh.pollMs;
  const outage = outageLog(logger, pollMs);
  const stopRefresh = jobs.refreshWorker.start(
    pollMs,
    (error) => {
      if (!outage.failed('refresh', error)) logger.error({ err: error }, 'refresh worker: claim failed');
    },
    (error, connectionId) => {
      if (outage.failed('refresh', error)) return;
      // The code and detail say what failed (`provider_unavailable`: "refresh of … : invalid_grant");
      // `err` is what errorForLog keeps of the cause: never a provider's answer.
      const { code, detail } = error instanceof NexusError ? error : { code: undefined, detail: undefined };
      logger.warn({ connection_id: connectionId, code, detail, err: error }, 'background refresh failed');
    },
  );
  const stopDelivery = jobs.webhookDelivery.start(pollMs, (result) => {
    if (!(result instanceof Error)) outage.succeeded();
    else if (!outage.failed('webhook_delivery', result))
      logger.error({ err: result }, 'webhook delivery failed');
  });
  const stopHousekeeping = jobs.housekeeping.start(HOUSEKEEPING_MS, (result) => {
    if (result instanceof Error) {
      if (!outage.failed('housekeeping', result)) logger.error({ err: result }, 'housekeeping failed');
      return;
    }
    outage.succeeded();
    if (result.expiredConnections + result.gaveUp + result.deletedFlows + result.auditRemoved > 0)
      logger.info(result, 'housekeeping');
  });
  return async () => {
    stopHousekeeping();
    await Promise.all([stopDelivery(), stopRefresh()]);
  };
}
