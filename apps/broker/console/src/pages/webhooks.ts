/** Webhooks: the registered receivers, their deliveries, and redelivery. */
import type { VNode } from 'preact';
import { useState } from 'preact/hooks';
import { api, canWrite } from '../api.ts';
import { hashQuery } from '../route.ts';
import type { Webhook, WebhookDelivery } from '../types.ts';
import { ErrorBox, html, Loaded, Notice, PageTitle, Status, Table, useAction, useLoad, when } from '../ui.ts';

type DeliveryPage = { deliveries: WebhookDelivery[]; next_cursor: string | null };

function Deliveries({ webhook }: { webhook: Webhook }): VNode {
  const [status, setStatus] = useState('');
  const [cursors, setCursors] = useState<string[]>([]);
  const cursor = cursors.at(-1);
  const [load, reload] = useLoad(
    () =>
      api<DeliveryPage>('GET', `/admin/v1/webhooks/${webhook.id}/deliveries`, {
        query: { status, cursor, limit: 50 },
      }),
    [status, cursor],
  );
  const action = useAction();
  const writable = canWrite();
  const redeliver = (d: WebhookDelivery) =>
    action.run(async () => {
      await api('POST', `/admin/v1/webhook-deliveries/${d.id}/redeliver`);
      reload();
      return `Event ${d.event_type} queued again.`;
    });
  return html`<section class="panel" aria-labelledby="deliveries">
    <h2 id="deliveries">Deliveries to ${webhook.url}</h2>
    <div class="field inline">
      <label for="d-status">Status</label>
      <select id="d-status" value=${status} onChange=${(e: Event) => {
        setCursors([]);
        setStatus((e.target as HTMLSelectElement).value);
      }}>
        <option value="">any</option><option value="pending">pending</option>
        <option value="delivered">delivered</option><option value="failed">failed</option>
      </select>
    </div>
    <${Notice} message=${action.message} />
    <${ErrorBox} error=${action.error} />
    <${Loaded} load=${load} render=${(page: DeliveryPage) => html`<${Table}
        caption="Deliveries"
        head=${['Created', 'Event', 'Status', 'Attempts', 'Last answer', ...(writable ? [''] : [])]}
        rows=${page.deliveries.map((d) => [
          when(d.created_at),
          d.event_type,
          html`<${Status} value=${d.status} />`,
          String(d.attempts),
          d.last_error ?? (d.last_status_code === null ? '—' : `HTTP ${d.last_status_code}`),
          ...(writable
            ? [
                d.status === 'pending'
                  ? ''
                  : html`<button type="button" disabled=${action.busy} onClick=${() => redeliver(d)}>Redeliver<span class="sr-only"> ${d.event_type} of ${when(d.created_at)}</span></button>`,
              ]
            : []),
        ])}
        empty="No delivery yet."
      />
      <div class="pager">
        <button type="button" disabled=${cursors.length === 0} onClick=${() => setCursors(cursors.slice(0, -1))}>Newer</button>
        <button type="button" disabled=${page.next_cursor === null} onClick=${() => page.next_cursor !== null && setCursors([...cursors, page.next_cursor])}>Older</button>
      </div>`}
    />
  </section>`;
}

export function WebhooksPage(): VNode {
  const [load] = useLoad(() => api<Webhook[]>('GET', '/admin/v1/webhooks'), []);
  const [open, setOpen] = useState<string | undefined>(hashQuery().get('id') ?? undefined);
  return html`<${PageTitle}>Webhooks</${PageTitle}>
    <${Loaded} load=${load} render=${(hooks: Webhook[]) => {
      const selected = hooks.find((w) => w.id === open);
      return html`<${Table}
          caption="Webhooks"
          head=${['URL', 'Events', 'Active', 'Created', '']}
          rows=${hooks.map((w) => [
            w.url,
            w.events.join(', ') || 'every type',
            w.active ? 'yes' : 'no',
            when(w.created_at),
            html`<button type="button" aria-expanded=${open === w.id} onClick=${() => setOpen(open === w.id ? undefined : w.id)}>
              Deliveries<span class="sr-only"> to ${w.url}</span></button>`,
          ])}
          empty="No webhook registered (nexus webhooks create, or POST /admin/v1/webhooks)."
        />
        ${selected && html`<${Deliveries} key=${selected.id} webhook=${selected} />`}`;
    }}
    />`;
}
