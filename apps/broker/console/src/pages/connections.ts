/** Connections: filtered by status, user and provider, a page at a time. */
import type { VNode } from 'preact';
import { useState } from 'preact/hooks';
import { api } from '../api.ts';
import { hashQuery } from '../route.ts';
import { CONNECTION_STATUSES, type ConnectionList } from '../types.ts';
import { Field, formValues, html, Loaded, PageTitle, Status, Table, useLoad, when } from '../ui.ts';

interface Filters {
  status: string;
  workspace_id: string;
  provider: string;
}

export function ConnectionsPage(): VNode {
  const q = hashQuery();
  const [filters, setFilters] = useState<Filters>({
    status: q.get('status') ?? '',
    workspace_id: q.get('user') ?? '',
    provider: q.get('provider') ?? '',
  });
  // The cursors of the pages before this one, to go back.
  const [cursors, setCursors] = useState<string[]>([]);
  const cursor = cursors.at(-1);
  const [load] = useLoad(
    () => api<ConnectionList>('GET', '/connections', { query: { ...filters, cursor, limit: 50 } }),
    [filters, cursor],
  );
  const apply = (event: Event) => {
    const v = formValues(event);
    setCursors([]);
    setFilters({
      status: v.status ?? '',
      workspace_id: v.workspace_id?.trim() ?? '',
      provider: v.provider?.trim() ?? '',
    });
  };
  return html`<${PageTitle}>Connections</${PageTitle}>
    <form class="filters" onSubmit=${apply} aria-label="Filter connections">
      <${Field} id="f-status" label="Status">
        <select id="f-status" name="status" value=${filters.status}>
          <option value="">any</option>
          ${CONNECTION_STATUSES.map((s) => html`<option value=${s}>${s}</option>`)}
        </select>
      </${Field}>
      <${Field} id="f-user" label="User (workspace)">
        <input id="f-user" name="workspace_id" maxlength="200" value=${filters.workspace_id} />
      </${Field}>
      <${Field} id="f-provider" label="Provider">
        <input id="f-provider" name="provider" maxlength="64" value=${filters.provider} />
      </${Field}>
      <button type="submit" class="primary">Filter</button>
    </form>
    <${Loaded} load=${load} render=${(page: ConnectionList) => html`
      <${Table}
        caption="Connections"
        head=${['Connection', 'User', 'Provider', 'Status', 'Last refreshed', 'Created']}
        rows=${page.connections.map((c) => [
          html`<a href=${`#/connections/${c.id}`}><code>${c.id.slice(0, 8)}</code><span class="sr-only"> (open connection ${c.id})</span></a>`,
          c.workspace_id,
          c.provider_name,
          html`<${Status} value=${c.status} />`,
          when(c.last_refreshed_at),
          when(c.created_at),
        ])}
        empty="No connection matches."
      />
      <div class="pager">
        <button type="button" disabled=${cursors.length === 0} onClick=${() => setCursors(cursors.slice(0, -1))}>Previous page</button>
        <button type="button" disabled=${page.next_cursor === null} onClick=${() => page.next_cursor !== null && setCursors([...cursors, page.next_cursor])}>Next page</button>
      </div>`}
    />`;
}
