/** Agent sessions: every agent's, filtered and a page at a time; close one (never a token). */
import type { VNode } from 'preact';
import { useState } from 'preact/hooks';
import { api, canWrite } from '../api.ts';
import { hashQuery } from '../route.ts';
import type { AgentSession } from '../types.ts';
import {
  ConfirmButton,
  ErrorBox,
  Field,
  formValues,
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

type Filters = Record<'agent' | 'status' | 'acting_for', string>;
interface Page {
  sessions: AgentSession[];
  next_cursor: string | null;
}

export function SessionsPage(): VNode {
  const q = hashQuery();
  const [filters, setFilters] = useState<Filters>({
    agent: q.get('agent') ?? '',
    status: q.get('status') ?? '',
    acting_for: q.get('acting_for') ?? '',
  });
  const [cursors, setCursors] = useState<string[]>([]);
  const cursor = cursors.at(-1);
  const [load, reload] = useLoad(
    () => api<Page>('GET', '/admin/v1/agent-sessions', { query: { ...filters, cursor, limit: 50 } }),
    [filters, cursor],
  );
  const action = useAction();
  const writable = canWrite();
  const apply = (event: Event) => {
    const v = formValues(event);
    setCursors([]);
    setFilters({
      agent: v.agent?.trim() ?? '',
      status: v.status ?? '',
      acting_for: v.acting_for?.trim() ?? '',
    });
  };
  const close = (s: AgentSession) =>
    action.run(async () => {
      await api('DELETE', `/admin/v1/agent-sessions/${s.session_id}`);
      reload();
      return `Session ${s.session_id.slice(0, 8)} closed: its session tokens no longer work.`;
    });
  return html`<${PageTitle}>Sessions</${PageTitle}>
    <p class="muted">Sessions agents opened: the scopes granted, for whom, until when. Their tokens
      are never shown here.</p>
    <form class="filters" onSubmit=${apply} aria-label="Filter sessions">
      <${Field} id="s-agent" label="Agent"><input id="s-agent" name="agent" maxlength="64" value=${filters.agent} /></${Field}>
      <${Field} id="s-status" label="Status">
        <select id="s-status" name="status" value=${filters.status}>
          <option value="">any</option>
          ${['active', 'closed', 'expired'].map((s) => html`<option value=${s}>${s}</option>`)}
        </select>
      </${Field}>
      <${Field} id="s-user" label="Acting for (user)"><input id="s-user" name="acting_for" maxlength="200" value=${filters.acting_for} /></${Field}>
      <button type="submit" class="primary">Filter</button>
    </form>
    <${Notice} message=${action.message} />
    <${ErrorBox} error=${action.error} />
    <${Loaded} load=${load} render=${(page: Page) => html`
      <${Table}
        caption="Agent sessions"
        head=${['Session', 'Agent', 'Acting for', 'Connection', 'Scopes', 'Status', 'Created', 'Expires', ...(writable ? [''] : [])]}
        rows=${page.sessions.map((s) => [
          html`<code>${s.session_id.slice(0, 8)}</code>`,
          s.agent_id || '—',
          s.acting_for === null ? '—' : `${s.acting_for}${s.tenant_id ? ` (${s.tenant_id})` : ''}`,
          s.connection_id === null
            ? '—'
            : html`<a href=${`#/connections/${s.connection_id}`}><code>${s.connection_id.slice(0, 8)}</code><span class="sr-only"> (open connection ${s.connection_id})</span></a>`,
          s.scopes_granted.join(' '),
          html`<${Status} value=${s.status} />`,
          when(s.created_at),
          when(s.expires_at),
          ...(writable
            ? [
                s.status === 'active'
                  ? html`<${ConfirmButton} label=${`Close session ${s.session_id.slice(0, 8)}`} confirmLabel="Yes, close it" disabled=${action.busy} onConfirm=${() => close(s)} />`
                  : '',
              ]
            : []),
        ])}
        empty="No session matches."
      />
      <div class="pager">
        <button type="button" disabled=${cursors.length === 0} onClick=${() => setCursors(cursors.slice(0, -1))}>Newer</button>
        <button type="button" disabled=${page.next_cursor === null} onClick=${() => page.next_cursor !== null && setCursors([...cursors, page.next_cursor])}>Older</button>
      </div>`}
    />`;
}
