import { randomUUID } from 'node:crypto';
import { isKeyNotInRing, KEY_MISSING_RETRY_MS } from '../../crypto/crypto.errors.ts';
import { open } from '../../crypto/envelope.ts';
import type { KeyRing } from '../../crypto/keyring.ts';
import type { ConnectionEventsTable, WebhookDeliveriesTable, WebhooksTable } from '../../db/schema.ts';
import { EgressError, type SafeFetch } from '../../egress/safe-fetch.ts';
import type { AttemptResult, DeliveriesStore } from './deliveries.store.ts';
import type { DeliveryOutcome, WebhookMetrics } from './events.metrics.ts';
import { eventPayload } from './events.service.ts';
import { signatureHeader } from './webhook-signature.ts';
import { webhookSecretBinding } from './webhooks.service.ts';

/** Attempts before a delivery is given up (about 5 hours of retries with the default backoff). */
export const MAX_ATTEMPTS = 12;
export const BASE_DELAY_MS = 30_000;
export const MAX_DELAY_MS = 3_600_000;
/** Deliveries one process sends at once. */
export const CONCURRENCY = 16;
/**
 * Of which at most this many to one webhook: a receiver that hangs until the timeout holds these
 * slots, and the rest of the queue goes out past it on the others.
 */
export const PER_WEBHOOK = 4;
/** A bound on one `runOnce`, so a flood of events cannot keep one pass going forever. */
const MAX_PER_PASS = 1000;

export interface DeliveryRunResult {
  delivered: number;
  failed: number;
  retried: number;
}

/**
 * Delay before attempt `attempts + 1`: 30 s doubling per attempt, capped at one hour, with ±20 %
 * jitter so receivers that were down together are not hit by every retry at the same instant.
 */
export function backoffMs(attempts: number, random: () => number = Math.random): number {
  const base = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** Math.max(0, attempts - 1));
  return Math.min(MAX_DELAY_MS, Math.round(base * (0.8 + 0.4 * random())));
}

/** `Retry-After` in seconds (RFC 9110 §10.2.3); the HTTP-date form is ignored. */
function retryAfterMs(value: string | string[] | undefined): number {
  const text = Array.isArray(value) ? value[0] : value;
  return text !== undefined && /^\d{1,7}$/.test(text.trim()) ? Number(text.trim()) * 1000 : 0;
}

type Claimed = WebhookDeliveriesTable;

/**
 * Sends queued webhook deliveries. Each pass claims due deliveries under a lease (see
 * `DeliveriesStore.claim`), POSTs the signed event through the SSRF-guarded egress client outside
 * any transaction, and writes each result back while it still holds the lease. Delivery is
 * at-least-once: a worker that stalls past its lease may send an event another worker sends too,
 * so receivers deduplicate on the event's `id` (in the signed body).
 */
export function createWebhookDelivery(deps: {
  store: DeliveriesStore;
  ring: KeyRing;
  fetch: SafeFetch;
  /** Longer than one request can take (the egress timeout), so a live worker keeps its lease. */
  leaseMs: number;
  metrics?: WebhookMetrics;
  maxAttempts?: number;
  now?: () => number;
  random?: () => number;
}) {
  const { store, ring, metrics } = deps;
  const now = deps.now ?? Date.now;
  const random = deps.random ?? Math.random;
  const maxAttempts = deps.maxAttempts ?? MAX_ATTEMPTS;
  const owner = randomUUID();

  async function finish(d: Claimed, result: AttemptResult): Promise<DeliveryOutcome> {
    const outcome: DeliveryOutcome =
      result.status === 'delivered' ? 'delivered' : result.status === 'failed' ? 'failed' : 'retried';
    const held = await store.complete(d.id, owner, result, now());
    const counted = held ? outcome : 'lease_lost';
    metrics?.outcome(counted);
    return counted;
  }

  /** Never sent, and never will be: the attempt does not count. */
  const abandon = (d: Claimed, reason: string) =>
    finish(d, {
      status: 'failed',
      attempts: d.attempts - 1,
      next_attempt_at: null,
      last_status_code: null,
      last_error: reason,
      delivered_at: null,
    });

  /** A failed attempt: queued again with backoff, or given up after the last attempt. */
  function retry(d: Claimed, error: string, statusCode: number | null, atLeastMs = 0) {
    const last = d.attempts >= maxAttempts;
    return finish(d, {
      status: last ? 'failed' : 'pending',
      next_attempt_at: last
        ? null
        : now() + Math.max(backoffMs(d.attempts, random), Math.min(atLeastMs, MAX_DELAY_MS)),
      last_status_code: statusCode,
      last_error: last ? `${error}; gave up after ${d.attempts} attempts` : error,
      delivered_at: null,
    });
  }

  async function attempt(
    d: Claimed,
    webhook: WebhooksTable | undefined,
    event: ConnectionEventsTable | undefined,
  ): Promise<DeliveryOutcome> {
    // Claimed past the last attempt: every worker that claimed it before died before it could
    // record an outcome (attempts are counted at claim). It ends here, unsent, instead of being
    // claimed again forever.
    if (d.attempts > maxAttempts)
      return finish(d, {
        status: 'failed',
        attempts: maxAttempts,
        next_attempt_at: null,
        last_status_code: null,
        last_error: `gave up after ${maxAttempts} attempts: no worker recorded an outcome for the last one`,
        delivered_at: null,
      });
    if (webhook === undefined || webhook.deleted_at !== null || webhook.secret === null)
      return abandon(d, 'the webhook was deleted');
    if (webhook.disabled_at !== null) return abandon(d, 'the webhook is disabled');
    if (event === undefined) return abandon(d, 'the event no longer exists');
    let secret: Uint8Array;
    try {
      secret = open(ring, webhook.secret, webhookSecretBinding(webhook.id));
    } catch (error) {
      // A key this process lacks (a rotation not rolled out here yet) is no attempt of the
      // delivery's: it is left to a process that holds the key, and looked at again in a minute.
      if (isKeyNotInRing(error))
        return finish(d, {
          status: 'pending',
          attempts: d.attempts - 1,
          next_attempt_at: now() + KEY_MISSING_RETRY_MS,
          last_status_code: null,
          last_error: 'a broker lacks the key of the webhook secret (key_not_in_ring; run `nexus doctor`)',
          delivered_at: null,
        });
      return retry(d, 'the webhook secret could not be decrypted (run `nexus doctor`)', null);
    }
    const body = JSON.stringify(eventPayload(event));
    let signature: string;
    try {
      signature = signatureHeader(secret, Math.floor(now() / 1000), body);
    } finally {
      secret.fill(0);
    }
    const started = performance.now();
    try {
      const response = await deps.fetch(webhook.url, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/json',
          'Nexus-Signature': signature,
          'Nexus-Event-Id': event.id,
          'Nexus-Event-Type': event.type,
          'Nexus-Delivery-Id': d.id,
        },
        body,
      });
      metrics?.sent((performance.now() - started) / 1000);
      if (response.status >= 200 && response.status < 300) {
        return finish(d, {
          status: 'delivered',
          next_attempt_at: null,
          last_status_code: response.status,
          last_error: null,
          delivered_at: now(),
        });
      }
      const wait =
        response.status === 429 || response.status === 503
          ? retryAfterMs(response.headers['retry-after'])
          : 0;
      return retry(d, `the receiver answered ${response.status}`, response.status, wait);
    } catch (error) {
      if (!(error instanceof EgressError)) throw error;
      metrics?.sent((performance.now() - started) / 1000);
      switch (error.reason) {
        // The guard refused the target: no request was made, and retrying cannot change that.
        case 'address_not_allowed':
          return finish(d, {
            status: 'failed',
            next_attempt_at: null,
            last_status_code: null,
            last_error: `not sent: ${error.message}; allow the range with NEXUS_EGRESS_ALLOWED_CIDRS`,
            delivered_at: null,
          });
        case 'bad_url':
          return finish(d, {
            status: 'failed',
            next_attempt_at: null,
            last_status_code: null,
            last_error: `not sent: ${error.message}`,
            delivered_at: null,
          });
        case 'too_many_redirects':
          return retry(d, 'the receiver answered with a redirect; webhook redirects are not followed', null);
        default:
          return retry(d, error.message, null);
      }
    }
  }

  /** Set when the serving loop is told to stop: nothing further is claimed. */
  let stopping = false;

  /**
   * Sends what is due, up to CONCURRENCY at once and PER_WEBHOOK to one webhook, claiming more as
   * sends finish, until nothing more is due (or MAX_PER_PASS were claimed, or the loop is told to
   * stop). A failure writing a result (the database went away) ends the pass once the sends in
   * flight have finished; the lease makes the affected deliveries due again later.
   */
  async function runOnce(): Promise<DeliveryRunResult> {
    const totals: DeliveryRunResult = { delivered: 0, failed: 0, retried: 0 };
    const busy = new Map<string, number>();
    const running = new Set<Promise<void>>();
    let claimedInPass = 0;
    let broken: { reason: unknown } | undefined;
    // Whether due rows may be left that a claim could take now: the last claim was full, a
    // webhook's cap held some back, or a send ended since (its webhook has room again). Otherwise
    // the queue was drained as of that claim, and the pass ends when the sends in flight do.
    let more = true;
    // Sends ended: one that ended while a claim was in flight gave room that claim did not see.
    let ended = 0;
    const send = (
      d: Claimed,
      webhook: WebhooksTable | undefined,
      event: ConnectionEventsTable | undefined,
    ) => {
      busy.set(d.webhook_id, (busy.get(d.webhook_id) ?? 0) + 1);
      const task = attempt(d, webhook, event)
        .then(
          (outcome) => {
            if (outcome !== 'lease_lost') totals[outcome]++;
          },
          (reason: unknown) => {
            broken ??= { reason };
          },
        )
        .finally(() => {
          running.delete(task);
          const n = (busy.get(d.webhook_id) ?? 1) - 1;
          // Rows of this webhook may have been held back by its room: look again.
          more = true;
          ended++;
          if (n === 0) busy.delete(d.webhook_id);
          else busy.set(d.webhook_id, n);
        });
      running.add(task);
    };
    while (true) {
      const free = CONCURRENCY - running.size;
      if (more && free > 0 && claimedInPass < MAX_PER_PASS && !stopping && broken === undefined) {
        const seen = ended;
        let claimed: Claimed[] = [];
        try {
          claimed = await store.claim(owner, now(), deps.leaseMs, free, { perWebhook: PER_WEBHOOK, busy });
          claimedInPass += claimed.length;
          if (claimed.length > 0) {
            const [webhooks, events] = await Promise.all([
              store.webhooks([...new Set(claimed.map((d) => d.webhook_id))]),
              store.events([...new Set(claimed.map((d) => d.event_id))]),
            ]);
            for (const d of claimed) send(d, webhooks.get(d.webhook_id), events.get(d.event_id));
          }
        } catch (reason) {
          // The sends in flight still record their results before the pass ends.
          broken ??= { reason };
          continue;
        }
        // Drained as of this claim unless it was full or a webhook's cap held rows back.
        more = claimed.length === free || ended !== seen || [...busy.values()].some((n) => n >= PER_WEBHOOK);
        if (claimed.length > 0) continue;
      }
      if (running.size === 0) break;
      // A send finished: its slot (and its webhook's) may let the next claim take more.
      await Promise.race(running);
    }
    if (broken !== undefined) throw broken.reason;
    return totals;
  }

  return {
    runOnce,

    /**
     * Runs every `intervalMs` until stopped; failures are reported, never fatal. The stop function
     * claims nothing more and resolves once the deliveries being sent have recorded their results
     * (a receiver that already answered 2xx is not sent the event again by another replica).
     */
    start(intervalMs: number, onResult: (result: DeliveryRunResult | Error) => void): () => Promise<void> {
      stopping = false;
      let running: Promise<void> | undefined;
      const tick = () => {
        running ??= runOnce()
          .then(onResult, (error: unknown) => onResult(error as Error))
          .finally(() => {
            running = undefined;
          });
      };
      const timer = setInterval(tick, intervalMs);
      timer.unref();
      tick();
      return async () => {
        stopping = true;
        clearInterval(timer);
        await running;
      };
    },
  };
}

export type WebhookDelivery = ReturnType<typeof createWebhookDelivery>;
