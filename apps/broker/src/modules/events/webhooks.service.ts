import { randomBytes, randomUUID } from 'node:crypto';
import { type Binding, sealText } from '../../crypto/envelope.ts';
import type { KeyRing } from '../../crypto/keyring.ts';
import type { WebhooksTable } from '../../db/schema.ts';
import { errorFrom } from '../../errors/nexus-error.ts';
import type { AuditContext, AuditService } from '../audit/audit.service.ts';
import { eventErrors } from './events.errors.ts';
import { type ConnectionEventType, decodeCursor, pageOf } from './events.service.ts';
import type { DeliveryRow, WebhooksStore } from './webhooks.store.ts';
import { checkWebhookUrl, type Problem } from './webhooks.validate.ts';

/** The secret is sealed to its row and column: copied to another webhook, it fails to open. */
export const webhookSecretBinding = (id: string): Binding => ({ table: 'webhooks', id, field: 'secret' });

/** Every event is queued once per webhook: a bound keeps one emit a small transaction. */
export const MAX_WEBHOOKS = 100;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface WebhookInput {
  url: string;
  description?: string | undefined;
  events?: ConnectionEventType[] | undefined;
  active?: boolean | undefined;
  secret?: string | undefined;
}

export interface WebhookPatch {
  url?: string | undefined;
  description?: string | undefined;
  events?: ConnectionEventType[] | undefined;
  active?: boolean | undefined;
  secret?: string | undefined;
  rotate_secret?: boolean | undefined;
}

export interface WebhookView {
  id: string;
  url: string;
  description: string;
  /** Empty: every event type. */
  events: string[];
  active: boolean;
  created_at: string;
  updated_at: string;
}

export interface DeliveryView {
  id: string;
  webhook_id: string;
  event_id: string;
  event_type: string;
  status: 'pending' | 'delivered' | 'failed';
  attempts: number;
  next_attempt_at: string | null;
  last_attempt_at: string | null;
  last_status_code: number | null;
  last_error: string | null;
  delivered_at: string | null;
  created_at: string;
}

/** Columns a PATCH may change, and the API field each one is (for the audit's `changed`). */
const PATCHED = {
  url: 'url',
  description: 'description',
  event_types: 'events',
  disabled_at: 'active',
} as const;

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** A new secret: 256 random bits, prefixed so it is recognisable in a secret scanner. */
const generateSecret = () => `whsec_${randomBytes(32).toString('base64url')}`;

/** Only the origin goes to the audit log: receivers often put a token in the path or query. */
const originOf = (url: string) => new URL(url).origin;

export function deliveryView(row: DeliveryRow): DeliveryView {
  return {
    id: row.id,
    webhook_id: row.webhook_id,
    event_id: row.event_id,
    event_type: row.event_type,
    status: row.status as DeliveryView['status'],
    attempts: row.attempts,
    next_attempt_at: row.status === 'pending' ? iso(row.next_attempt_at) : null,
    last_attempt_at: iso(row.last_attempt_at),
    last_status_code: row.last_status_code,
    last_error: row.last_error,
    delivered_at: iso(row.delivered_at),
    created_at: iso(row.created_at)!,
  };
}

export function createWebhooksService(deps: {
  store: WebhooksStore;
  ring: KeyRing;
  audit: Pick<AuditService, 'record'>;
  allowLoopbackHttp: boolean;
  now?: () => number;
}) {
  const { store, ring, audit } = deps;
  const now = deps.now ?? Date.now;

  function view(row: WebhooksTable): WebhookView {
    return {
      id: row.id,
      url: row.url,
      description: row.description,
      events: JSON.parse(row.event_types) as string[],
      active: row.disabled_at === null,
      created_at: iso(row.created_at)!,
      updated_at: iso(row.updated_at)!,
    };
  }

  async function mustFind(id: string): Promise<WebhooksTable> {
    const row = UUID.test(id) ? await store.findLive(id) : undefined;
    if (row === undefined) throw errorFrom(eventErrors, 'webhook_not_found');
    return row;
  }

  function check(problems: Problem[]): void {
    if (problems.length > 0) throw errorFrom(eventErrors, 'invalid_webhook', { details: problems });
  }

  const eventTypes = (events: readonly string[] | undefined) => JSON.stringify([...new Set(events ?? [])]);

  return {
    /** Creates a webhook; the returned `secret` is the only time it leaves the broker. */
    async create(ctx: AuditContext, input: WebhookInput): Promise<WebhookView & { secret: string }> {
      check(checkWebhookUrl(input.url, deps.allowLoopbackHttp));
      if ((await store.countLive()) >= MAX_WEBHOOKS) throw errorFrom(eventErrors, 'too_many_webhooks');
      const id = randomUUID();
      const secret = input.secret ?? generateSecret();
      const t = now();
      const row: WebhooksTable = {
        id,
        url: input.url,
        description: input.description ?? '',
        event_types: eventTypes(input.events),
        secret: sealText(ring, secret, webhookSecretBinding(id)),
        disabled_at: input.active === false ? t : null,
        created_at: t,
        updated_at: t,
        deleted_at: null,
      };
      await store.insert(row);
      const result = view(row);
      await audit.record(ctx, {
        action: 'webhook.created',
        resourceType: 'webhook',
        resourceId: id,
        details: {
          origin: originOf(row.url),
          events: result.events,
          active: result.active,
          secret: input.secret === undefined ? 'generated' : 'supplied',
        },
      });
      return { ...result, secret };
    },

    async list(): Promise<WebhookView[]> {
      return (await store.listLive(MAX_WEBHOOKS)).map(view);
    },

    async get(id: string): Promise<WebhookView> {
      return view(await mustFind(id));
    },

    /** Changes some fields; `rotate_secret: true` (or a `secret`) replaces the secret, returned once. */
    async update(
      ctx: AuditContext,
      id: string,
      patch: WebhookPatch,
    ): Promise<WebhookView & { secret?: string }> {
      const row = await mustFind(id);
      const problems = patch.url === undefined ? [] : checkWebhookUrl(patch.url, deps.allowLoopbackHttp);
      if (patch.rotate_secret === true && patch.secret !== undefined)
        problems.push({ path: 'rotate_secret', message: 'give either secret or rotate_secret, not both' });
      check(problems);
      const t = now();
      const next: WebhooksTable = { ...row };
      if (patch.url !== undefined) next.url = patch.url;
      if (patch.description !== undefined) next.description = patch.description;
      if (patch.events !== undefined) next.event_types = eventTypes(patch.events);
      if (patch.active !== undefined) next.disabled_at = patch.active ? null : (row.disabled_at ?? t);
      const secret = patch.rotate_secret === true ? generateSecret() : patch.secret;
      const changed: string[] = (Object.keys(PATCHED) as (keyof typeof PATCHED)[])
        .filter((column) => next[column] !== row[column])
        .map((column) => PATCHED[column]);
      if (secret !== undefined) changed.push('secret');
      if (changed.length === 0) return view(row);
      next.updated_at = t;
      // Only the columns this patch changes are written: a concurrent PATCH of other fields keeps
      // its change (writing the whole row read above would silently undo it).
      const updated = await store.update(id, {
        ...(next.url === row.url ? {} : { url: next.url }),
        ...(next.description === row.description ? {} : { description: next.description }),
        ...(next.event_types === row.event_types ? {} : { event_types: next.event_types }),
        ...(next.disabled_at === row.disabled_at ? {} : { disabled_at: next.disabled_at }),
        updated_at: t,
        ...(secret === undefined ? {} : { secret: sealText(ring, secret, webhookSecretBinding(id)) }),
      });
      if (!updated) throw errorFrom(eventErrors, 'webhook_not_found');
      const current = (await store.findLive(id)) ?? next;
      await audit.record(ctx, {
        action: 'webhook.updated',
        resourceType: 'webhook',
        resourceId: id,
        details: { origin: originOf(next.url), changed: changed.sort() },
      });
      return secret === undefined ? view(current) : { ...view(current), secret };
    },

    /** Soft delete: the secret is erased and queued deliveries end as failed. */
    async remove(ctx: AuditContext, id: string): Promise<void> {
      const row = await mustFind(id);
      if (!(await store.softDelete(id, now()))) throw errorFrom(eventErrors, 'webhook_not_found');
      await audit.record(ctx, {
        action: 'webhook.deleted',
        resourceType: 'webhook',
        resourceId: id,
        details: { origin: originOf(row.url) },
      });
    },

    /** The delivery log of a webhook, newest first, with cursor paging. */
    async deliveries(
      id: string,
      query: { status?: DeliveryView['status'] | undefined; cursor?: string | undefined; limit: number },
    ): Promise<{ deliveries: DeliveryView[]; next_cursor: string | null }> {
      await mustFind(id);
      const rows = await store.deliveries({
        webhookId: id,
        status: query.status,
        before: query.cursor === undefined ? undefined : decodeCursor(query.cursor),
        limit: query.limit + 1,
      });
      const { page, next_cursor } = pageOf(rows, query.limit);
      return { deliveries: page.map(deliveryView), next_cursor };
    },

    /**
     * Queues the event of a finished delivery (delivered or failed) again, as a new delivery with
     * its own log entry; the receiver sees the same `Nexus-Event-Id`.
     */
    async redeliver(ctx: AuditContext, deliveryId: string): Promise<DeliveryView> {
      const original = UUID.test(deliveryId) ? await store.findDelivery(deliveryId) : undefined;
      if (original === undefined) throw errorFrom(eventErrors, 'webhook_delivery_not_found');
      const webhook = await mustFind(original.webhook_id);
      if (webhook.disabled_at !== null) throw errorFrom(eventErrors, 'webhook_inactive');
      if (original.status === 'pending') throw errorFrom(eventErrors, 'webhook_delivery_pending');
      const t = now();
      const row = {
        id: randomUUID(),
        webhook_id: original.webhook_id,
        event_id: original.event_id,
        status: 'pending',
        attempts: 0,
        next_attempt_at: t,
        last_attempt_at: null,
        last_status_code: null,
        last_error: null,
        delivered_at: null,
        lease_owner: null,
        lease_until: null,
        created_at: t,
        updated_at: t,
      };
      try {
        await store.insertDelivery(row);
      } catch (cause) {
        // Retention removed the event (with its finished deliveries) since it was read: there is
        // nothing left to send, as if it had gone a moment earlier.
        if ((await store.findDelivery(original.id)) === undefined)
          throw errorFrom(eventErrors, 'webhook_delivery_not_found', {
            cause,
            message: 'No webhook delivery with that id: its event was removed by retention.',
          });
        throw cause;
      }
      await audit.record(ctx, {
        action: 'webhook.redelivery_requested',
        resourceType: 'webhook',
        resourceId: original.webhook_id,
        details: { delivery_id: row.id, original_delivery_id: original.id, event_id: original.event_id },
      });
      return deliveryView({ ...row, event_type: original.event_type });
    },
  };
}

export type WebhooksService = ReturnType<typeof createWebhooksService>;
