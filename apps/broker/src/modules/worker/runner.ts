import type { Logger } from 'pino';
import type { Container } from '../../container.ts';

/** Housekeeping runs this often; refreshes and deliveries poll every NEXUS_WORKER_POLL_MS. */
const HOUSEKEEPING_MS = 60_000;

/**
 * Starts every background job of a broker process: the refresh worker, webhook delivery and
 * housekeeping. Failures are logged and retried at the next tick, never fatal. Returns a stop
 * function that lets running refreshes and deliveries finish.
 */
export function startBackgroundJobs(container: Container, logger: Logger): () => Promise<void> {
  const pollMs = container.config.refresh.pollMs;
  const stopRefresh = container.refreshWorker.start(pollMs, (error) =>
    logger.error({ err: error }, 'refresh worker: claim failed'),
  );
  const stopDelivery = container.webhookDelivery.start(pollMs, (result) => {
    if (result instanceof Error) logger.error({ err: result }, 'webhook delivery failed');
  });
  const stopHousekeeping = container.housekeeping.start(HOUSEKEEPING_MS, (result) => {
    if (result instanceof Error) logger.error({ err: result }, 'housekeeping failed');
    else if (result.expiredConnections + result.gaveUp + result.deletedFlows + result.auditRemoved > 0)
      logger.info(result, 'housekeeping');
  });
  return async () => {
    stopHousekeeping();
    stopDelivery();
    await stopRefresh();
  };
}
