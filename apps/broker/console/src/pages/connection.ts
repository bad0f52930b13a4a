/** One connection: its state, its timeline (connection events and audit events), refresh and revoke. */
import type { VNode } from 'preact';
import { ApiError, api, canWrite } from '../api.ts';
import type { AuditEvent, Connection, ConnectionEvent } from '../types.ts';
import {
  ConfirmButton,
  ErrorBox,
  html,
  Loaded,
  Notice,
  PageTitle,
  Status,
  Table,
  useAction,
  useLoad,
  when,
} from '../ui.ts';

/** The connection (`GET /connections/{id}`, never a credential), or undefined when there is none. */
async function findConnection(id: string): Promise<Connection | undefined> {
  try {
    return await api<Connection>('GET', `/connections/${encodeURIComponent(id)}`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return undefined;
    throw error;
  }
}

interface Entry {
  at: string;
  source: 'event' | 'audit';
  what: string;
  who: string;
  detail: string;
}

/** What an event carries, as one line; credentials are never in events or audit rows. */
const summary = (details: Record<string, unknown> | null): string =>
  details === null
    ? ''
    : Object.entries(details)
        .map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`)
        .join(', ');

async function loadConnection(id: string) {
  const [connection, events, audit] = await Promise.all([
    findConnection(id),
    api<{ events: ConnectionEvent[] }>('GET', '/admin/v1/events', {
      query: { connection_id: id, limit: 200 },
    }),
    api<{ events: AuditEvent[] }>('GET', '/audit', { query: { resource: `connection:${id}`, limit: 200 } }),
  ]);
  const timeline: Entry[] = [
    ...events.events.map((e) => ({
      at: e.created_at,
      source: 'event' as const,
      what: e.type,
      who: '',
      detail: summary(e.details),
    })),
    ...audit.events.map((e) => ({
      at: e.occurred_at,
      source: 'audit' as const,
      what: `${e.event_type} (${e.outcome})`,
      who: e.actor,
      detail: summary(e.details),
    })),
  ].sort((a, b) => b.at.localeCompare(a.at));
  return { connection, timeline };
}

export function ConnectionPage({ id }: { id: string }): VNode {
  const [load, reload] = useLoad(() => loadConnection(id), [id]);
  const action = useAction();
  const writable = canWrite();
  const refresh = () =>
    action.run(async () => {
      // The admin refresh answers the connection's state, never its new credential.
      await api('POST', `/admin/v1/connections/${encodeURIComponent(id)}/refresh`);
      reload();
      return 'Refreshed.';
    });
  const revoke = () =>
    action.run(async () => {
      await api('DELETE', `/connections/${encodeURIComponent(id)}`);
      reload();
      return 'Revoked.';
    });
  return html`<p><a href="#/connections">← Connections</a></p>
    <${PageTitle}>Connection <code>${id}</code></${PageTitle}>
    <${Loaded} load=${load} render=${({
      connection: c,
      timeline,
    }: Awaited<ReturnType<typeof loadConnection>>) => html`
      ${
        c === undefined
          ? html`<p class="muted">No connection has this id (any events recorded about it are below).</p>`
          : html`<dl class="facts">
          <dt>Status</dt><dd><${Status} value=${c.status} /></dd>
          <dt>User</dt><dd>${c.workspace_id}</dd>
          <dt>Provider</dt><dd>${c.provider_name}</dd>
          <dt>Scopes</dt><dd>${c.scopes.join(' ') || '—'}</dd>
          <dt>Access expires</dt><dd>${when(c.access_expires_at)}</dd>
          <dt>Last refreshed</dt><dd>${when(c.last_refreshed_at)}</dd>
          <dt>Last error</dt><dd>${c.last_error ?? '—'}</dd>
          <dt>Created</dt><dd>${when(c.created_at)}</dd>
        </dl>`
      }
      ${
        writable
          ? html`<div class="actions">
          <button type="button" disabled=${action.busy || c?.status !== 'active'} onClick=${refresh}>Refresh now</button>
          <${ConfirmButton} label="Revoke" confirmLabel="Yes, revoke this connection" disabled=${action.busy || c?.status === 'revoked'} onConfirm=${revoke} />
        </div>`
          : html`<p class="muted">Read-only key: refresh and revoke need a key of scope “full”.</p>`
      }
      <${Notice} message=${action.message} />
      <${ErrorBox} error=${action.error} />
      <h2>Timeline</h2>
      <${Table}
        caption="Timeline of the connection"
        head=${['When', 'Source', 'What', 'Who', 'Details']}
        rows=${timeline.map((e) => [when(e.at), e.source, e.what, e.who || '—', e.detail || '—'])}
        empty="Nothing recorded yet."
      />`}
    />`;
}
