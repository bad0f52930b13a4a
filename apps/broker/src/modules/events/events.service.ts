import { randomUUID } from 'node:crypto';
import { keysetPage } from '../../db/page.ts';
import type { ConnectionEventsTable } from '../../db/schema.ts';
import { errorFrom } from '../../errors/nexus-error.ts';
import { auditErrors } from '../audit/audit.errors.ts';
import type { EventsStore, PagePosition } from './events.store.ts';

/** Connection state changes that are stored and delivered to webhooks. */
export const CONNECTION_EVENT_TYPES = [
  'connection.active',
  'connection.attention_required',
  'connection.expired',
  'connection.revoked',
  'connection.refresh_failed',
  'connection.refresh_recovered',
] as const;
export type ConnectionEventType = (typeof CONNECTION_EVENT_TYPES)[number];

export interface ConnectionEventInput {
  connectionId: string;
  workspaceId: string;
  providerId: string;
  type: ConnectionEventType;
  /**
   * Caller-safe facts about the change (`{ reason: 'invalid_grant' }`, `{ failures: 3 }`). They are
   * stored in plain text and sent to every matching webhook, so they must NEVER hold a secret:
   * no token, key, password, client secret, verifier or credential field, and no text copied from
   * a provider response that could contain one. Keys that look like secrets are refused.
   */
  details?: Record<string, unknown>;
}

export interface EventView {
  id: string;
  type: string;
  connection_id: string;
  workspace_id: string;
  provider_id: string;
  details: Record<string, unknown>;
  created_at: string;
}

/** The JSON body a webhook receives. */
export interface EventPayload {
  id: string;
  type: string;
  created_at: string;
  data: Record<string, unknown>;
}

const MAX_DETAILS_BYTES = 4 * 1024;
/** Detail keys that name a secret: refused, so a slip in a caller cannot ship a token to a receiver. */
const SECRET_KEY =
  /token|secret|password|passwd|credential|private|api_?key|^key$|verifier|assertion|cookie|authorization/i;
const RESERVED_KEYS = new Set(['connection_id', 'workspace_id', 'provider_id']);
const EVENT_TYPES: ReadonlySet<string> = new Set(CONNECTION_EVENT_TYPES);

/** `[]` (or an absent filter) means every type. */
export function wantsEvent(eventTypes: readonly string[], type: string): boolean {
  return eventTypes.length === 0 || eventTypes.includes(type);
}

export function eventPayload(row: ConnectionEventsTable): EventPayload {
  return {
    id: row.id,
    type: row.type,
    created_at: new Date(row.created_at).toISOString(),
    data: {
      connection_id: row.connection_id,
      workspace_id: row.workspace_id,
      provider_id: row.provider_id,
      ...(JSON.parse(row.details) as Record<string, unknown>),
    },
  };
}

/** Opaque keyset cursors for newest-first listings. */
export const encodeCursor = (p: PagePosition) => Buffer.from(`${p.createdAt}.${p.id}`).toString('base64url');
export function decodeCursor(cursor: string): PagePosition {
  const match = /^(\d{1,15})\.([0-9a-f-]{36})$/.exec(Buffer.from(cursor, 'base64url').toString());
  if (!match) throw errorFrom(auditErrors, 'invalid_cursor');
  return { createdAt: Number(match[1]), id: match[2]! };
}

/** One page from rows fetched with `limit + 1`, its cursor after the last row kept. */
export function pageOf<R extends { created_at: number; id: string }>(
  rows: readonly R[],
  limit: number,
): { page: R[]; next_cursor: string | null } {
  return keysetPage(rows, limit, (last) => encodeCursor({ createdAt: last.created_at, id: last.id }));
}

/** Programming errors of a caller of `emit`: thrown as plain errors, they fail loudly in tests. */
function checkInput(event: ConnectionEventInput): string {
  if (!EVENT_TYPES.has(event.type)) throw new Error(`unknown connection event type ${String(event.type)}`);
  for (const field of ['connectionId', 'workspaceId', 'providerId'] as const) {
    const value = event[field];
    if (typeof value !== 'string' || value === '' || value.length > 256)
      throw new Error(`connection event ${field} must be a non-empty string of at most 256 characters`);
  }
  const details = event.details ?? {};
  for (const key of Object.keys(details)) {
    if (SECRET_KEY.test(key)) throw new Error(`connection event details may not carry "${key}": no secrets`);
    if (RESERVED_KEYS.has(key)) throw new Error(`connection event details may not override "${key}"`);
  }
  const json = JSON.stringify(details);
  if (Buffer.byteLength(json) > MAX_DETAILS_BYTES)
    throw new Error(`connection event details exceed ${MAX_DETAILS_BYTES} bytes`);
  return json;
}

export function createEventsService(deps: { store: EventsStore; now?: () => number }) {
  const { store } = deps;
  const now = deps.now ?? Date.now;

  const view = (row: ConnectionEventsTable): EventView => ({
    id: row.id,
    type: row.type,
    connection_id: row.connection_id,
    workspace_id: row.workspace_id,
    provider_id: row.provider_id,
    details: JSON.parse(row.details) as Record<string, unknown>,
    created_at: new Date(row.created_at).toISOString(),
  });

  return {
    /**
     * Records a connection event and queues one delivery per active webhook whose filter matches,
     * in one short transaction (the delivery worker sends them later). `details` must never hold
     * a secret (see `ConnectionEventInput`).
     */
    async emit(event: {
      connectionId: string;
      workspaceId: string;
      providerId: string;
      type: ConnectionEventType;
      details?: Record<string, unknown>;
    }): Promise<void> {
      const details = checkInput(event);
      const t = now();
      const row: ConnectionEventsTable = {
        id: randomUUID(),
        connection_id: event.connectionId,
        workspace_id: event.workspaceId,
        provider_id: event.providerId,
        type: event.type,
        details,
        created_at: t,
      };
      await store.append(row, (webhook) =>
        wantsEvent(JSON.parse(webhook.event_types) as string[], row.type)
          ? {
              id: randomUUID(),
              webhook_id: webhook.id,
              event_id: row.id,
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
            }
          : undefined,
      );
    },

    /** Stored events, newest first, with cursor paging. */
    async list(query: {
      connectionId?: string | undefined;
      type?: ConnectionEventType | undefined;
      cursor?: string | undefined;
      limit: number;
    }): Promise<{ events: EventView[]; next_cursor: string | null }> {
      const rows = await store.list({
        connectionId: query.connectionId,
        type: query.type,
        before: query.cursor === undefined ? undefined : decodeCursor(query.cursor),
        limit: query.limit + 1,
      });
      const { page, next_cursor } = pageOf(rows, query.limit);
      return { events: page.map(view), next_cursor };
    },
  };
}

export type EventsService = ReturnType<typeof createEventsService>;
