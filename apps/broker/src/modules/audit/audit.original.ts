import type { AuditEventsTable } from '../../db/schema.ts';
import { AUTHORIZATION_ERRORS } from '../../errors/authorization-errors.ts';
import type { AuditStore } from './audit.store.ts';

/**
 * The original Go broker's audit read shape (`GET /audit?format=original`): a plain array of
 * `{id, connection_id, event_type, event_data, ip_address, user_agent, created_at}`, newest first,
 * with the original's event names. `event_data` is a string of JSON text, as the original's Go
 * struct (`*string` over a jsonb column) wrote it, so an original client decodes it unchanged.
 */
export interface OriginalAuditEvent {
  id: string;
  connection_id: string | null;
  event_type: string;
  event_data: string | null;
  ip_address: string | null;
  user_agent: string | null;
  created_at: string;
}

type Details = Readonly<Record<string, unknown>> | null;

export interface OriginalMapping {
  /** The Nexus audit action. */
  readonly action: string;
  /** The original's `event_type` for it. */
  readonly original: string;
  /** Only the events of `action` whose details pass; the last entry of an action has none. */
  readonly when?: (details: Details) => boolean;
  /** Keys of the original's `event_data` that Nexus knows, added to the event's own details. */
  readonly data?: (row: { resource_id: string | null; details: Details }) => Record<string, unknown>;
}

const errorOf = (details: Details) => (typeof details?.error === 'string' ? details.error : '');

/**
 * Codes an authorization server sends back in the redirect: the user or the provider refused; the
 * original logged these as `oauth_error`. `authorization_failed` is Nexus's code for an error
 * answer that is not one of them, or a redirect that could not be accepted (RFC 9207 `iss` of
 * another issuer, a repeated `state`).
 */
const OAUTH_ERRORS: ReadonlySet<string> = new Set([...AUTHORIZATION_ERRORS, 'authorization_failed']);

const providerId = (row: { resource_id: string | null }) =>
  row.resource_id === null ? {} : { provider_id: row.resource_id };

/**
 * Nexus action → the original's event_type: the one table (docs/migrating.md reproduces it).
 * Entries of one action are tried in order; an action with no entry keeps its Nexus name.
 */
export const ORIGINAL_EVENT_MAP: readonly OriginalMapping[] = [
  // OAuth callback or static-credential capture completed: the connection is active.
  { action: 'connection.activated', original: 'oauth_flow_completed' },
  // GET /v1/token, /connections/{id}/token, refresh and resolve: a credential was handed out.
  { action: 'connection.token_read', original: 'token_retrieved' },
  // A refresh the provider refused for good; the user must consent again.
  {
    action: 'connection.attention_required',
    original: 'token_refresh_fatal',
    data: (row) => (typeof row.details?.reason === 'string' ? { error: row.details.reason } : {}),
  },
  // Callback failures: Nexus records one action whose `error` says which step failed.
  {
    action: 'connection.failed',
    original: 'oauth_error',
    when: (d) => OAUTH_ERRORS.has(errorOf(d)),
    data: (row) => (typeof row.details?.detail === 'string' ? { description: row.details.detail } : {}),
  },
  {
    action: 'connection.failed',
    original: 'id_token_verification_failed',
    when: (d) => errorOf(d) === 'id_token_invalid',
  },
  {
    action: 'connection.failed',
    original: 'token_storage_failed',
    when: (d) => errorOf(d).startsWith('secret_'),
  },
  {
    action: 'connection.failed',
    original: 'connection_not_found',
    when: (d) => errorOf(d) === 'connection_not_pending',
  },
  { action: 'connection.failed', original: 'token_exchange_failed' },
  // Same names as the original's (connection.revoked is in its audit reference).
  { action: 'connection.revoked', original: 'connection.revoked' },
  { action: 'provider.created', original: 'provider.created', data: providerId },
  { action: 'provider.updated', original: 'provider.updated', data: providerId },
  // The original had no separate event for a change of where a provider's secrets go.
  { action: 'provider.destination_changed', original: 'provider.updated', data: providerId },
  { action: 'provider.deleted', original: 'provider.deleted', data: providerId },
];

/** Nexus actions the original had no event for: they keep their Nexus name (documented list). */
export const NEXUS_ONLY_ACTIONS: readonly string[] = [
  'connection.requested',
  'connection.refreshed',
  'connection.refresh_discarded',
  'connection.imported',
  'connection.import_updated',
  'provider.alias_added',
  'provider.alias_removed',
  'proxy.request',
  'admin_key.created',
  'admin_key.revoked',
  'agent.*',
  'scope.*',
  'trusted_issuer.*',
  'webhook.*',
  'secret.*',
  'key_accessed',
];

/** The original's events that Nexus never writes, and why (docs/migrating.md reproduces it). */
export const ORIGINAL_ONLY_EVENTS: Readonly<Record<string, string>> = {
  state_verification_failed:
    'a callback whose state does not verify is answered with an error page and not audited (nothing is known about it)',
  provider_not_found:
    'deleting a provider revokes its connections (connection.revoked), so a callback never finds it missing',
  status_update_failed:
    'activation is one conditional update; when it finds the connection no longer pending, that is connection_not_found',
  invalid_return_url:
    'return URLs are checked against the allow-list when the connection is requested, and the callback fails closed without an event',
  token_retrieval_failed:
    'refused token reads (401, 403, 404, 409) are not audit events; they are in the access log and metrics',
  'connection.created':
    'listed in the original audit reference but never written by its code; see oauth_flow_completed',
};

const BY_ACTION = new Map<string, OriginalMapping[]>();
for (const m of ORIGINAL_EVENT_MAP) BY_ACTION.set(m.action, [...(BY_ACTION.get(m.action) ?? []), m]);

function mappingOf(action: string, details: Details): OriginalMapping | undefined {
  return BY_ACTION.get(action)?.find((m) => m.when === undefined || m.when(details));
}

/** The original's name of a Nexus event (its own name when the original had none). */
export function originalEventType(action: string, details: Details): string {
  return mappingOf(action, details)?.original ?? action;
}

/**
 * The Nexus actions whose events may carry `eventType` in the original shape, and whether all of
 * them do (`exact`) or only those whose details say so. The name itself is always one of them
 * when no mapping claims it as a Nexus action: an event of the original imported under its own
 * name, or a Nexus-only event, is found by its name. An unknown name finds nothing.
 */
export function actionsFor(eventType: string): { action: string; exact: boolean }[] {
  const out: { action: string; exact: boolean }[] = [];
  for (const [action, entries] of BY_ACTION) {
    if (!entries.some((m) => m.original === eventType)) continue;
    out.push({ action, exact: entries.every((m) => m.original === eventType) });
  }
  if (!BY_ACTION.has(eventType)) out.push({ action: eventType, exact: true });
  // The original's own history, brought over by `nexus import original --with-audit`.
  if (out.length > 0 && IMPORTED_TYPE.test(eventType))
    out.push({ action: `${IMPORTED}${eventType.toLowerCase()}`, exact: true });
  return out;
}

/** Imported history (modules/import/audit-step.ts): action `original.<event_type>`. */
const IMPORTED = 'original.';
const IMPORTED_TYPE = /^[a-z0-9_.-]{1,64}$/i;

/** An imported event as the original wrote it: its own type, data and time. */
function importedAsOriginal(row: AuditEventsTable, details: Details): OriginalAuditEvent {
  const type = details?.original_event_type;
  const at = details?.original_created_at;
  return {
    id: typeof details?.original_id === 'string' ? details.original_id : row.id,
    connection_id: uuidOrNull(row.resource_id),
    event_type: typeof type === 'string' ? type : row.action.slice(IMPORTED.length),
    event_data: JSON.stringify(withoutSecrets(details?.event_data ?? {})),
    ip_address: row.ip,
    user_agent: row.user_agent,
    created_at: typeof at === 'string' ? at : new Date(row.occurred_at).toISOString(),
  };
}

/**
 * Keys that would name a secret. Nexus never puts one in an audit row (house rule 8); the original
 * shape drops such keys anyway, so a future event cannot leak one through this route.
 */
const SECRET_KEY =
  /^(access_token|refresh_token|id_token|token|client_secret|secret|password|api_key|private_key|code|code_verifier|verifier|credentials|authorization|value)$/i;

function withoutSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutSecrets);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value)
      .filter(([key]) => !SECRET_KEY.test(key))
      .map(([key, v]) => [key, withoutSecrets(v)]),
  );
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const uuidOrNull = (value: unknown) => (typeof value === 'string' && UUID.test(value) ? value : null);

function parseDetails(text: string | null): Details {
  if (text === null) return null;
  try {
    const parsed: unknown = JSON.parse(text);
    return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}

/**
 * One stored event in the original shape. `connection_id` is the connection the event is about
 * (its resource, or the `connection_id` its details name), and only when it is a UUID: the
 * original's column was one, and its clients decode it as such.
 */
export function toOriginal(row: AuditEventsTable): OriginalAuditEvent {
  const details = parseDetails(row.details);
  if (row.action.startsWith(IMPORTED) && row.actor === 'original') return importedAsOriginal(row, details);
  const mapping = mappingOf(row.action, details);
  const data = { ...(details ?? {}), ...(mapping?.data?.({ resource_id: row.resource_id, details }) ?? {}) };
  return {
    id: row.id,
    connection_id:
      row.resource_type === 'connection' ? uuidOrNull(row.resource_id) : uuidOrNull(details?.connection_id),
    event_type: mapping?.original ?? row.action,
    event_data: JSON.stringify(withoutSecrets(data)),
    ip_address: row.ip,
    user_agent: row.user_agent,
    created_at: new Date(row.occurred_at).toISOString(),
  };
}

export interface OriginalQuery {
  /** An original name, or a Nexus-only one; unknown names find nothing (as with the original). */
  eventType?: string | undefined;
  since?: number | undefined;
  limit: number;
}

/**
 * The newest `limit` events in the original shape. Every read is one of the store's index reads:
 * without a type, newest first on `seq` (the time index first with `since`); with one, the same
 * per Nexus action on `(action, seq)`. An action only some of whose events carry the name
 * (`connection.failed`) is read in pages of that index until `limit` match or it has no older event.
 */
export async function queryOriginal(
  store: Pick<AuditStore, 'query' | 'queryNewest'>,
  q: OriginalQuery,
): Promise<OriginalAuditEvent[]> {
  if (q.eventType === undefined)
    return (await store.queryNewest({ since: q.since, limit: q.limit })).map(toOriginal);
  const wanted = q.eventType;
  const sources = actionsFor(wanted);
  const exact = sources.filter((s) => s.exact).map((s) => s.action);
  const perAction = await Promise.all([
    exact.length === 0 ? [] : store.queryNewest({ actions: exact, since: q.since, limit: q.limit }),
    ...sources
      .filter((s) => !s.exact)
      .map(async ({ action }) => {
        const batch = Math.max(q.limit, 100);
        const found: AuditEventsTable[] = [];
        let beforeSeq: number | undefined;
        for (;;) {
          const rows = await store.query({ action, since: q.since, beforeSeq, limit: batch });
          for (const row of rows) {
            if (originalEventType(row.action, parseDetails(row.details)) !== wanted) continue;
            found.push(row);
            if (found.length === q.limit) return found;
          }
          if (rows.length < batch) return found;
          beforeSeq = rows[rows.length - 1]!.seq;
        }
      }),
  ]);
  return perAction
    .flat()
    .sort((a, b) => b.seq - a.seq)
    .slice(0, q.limit)
    .map(toOriginal);
}
