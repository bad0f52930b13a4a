/** Overview: counts, connections by status, and what needs attention. */
import type { VNode } from 'preact';
import { api, canWrite } from '../api.ts';
import {
  CONNECTION_STATUSES,
  type ConnectionEvent,
  type ConnectionList,
  type Webhook,
  type WebhookDelivery,
} from '../types.ts';
import { html, Loaded, PageTitle, Status, Table, useLoad, when } from '../ui.ts';

/** Counted one page of this size at a time; more shows as "500+". */
const COUNT_PAGE = 500;

interface Overview {
  byStatus: { status: string; count: string }[];
  providers: number;
  agents: number;
  /** Undefined for a read-only key. */
  webhooks: number | undefined;
  attention: ConnectionList['connections'];
  refreshFailures: ConnectionEvent[];
  failingWebhooks: { webhook: Webhook; failed: WebhookDelivery[] }[] | undefined;
}

async function loadOverview(): Promise<Overview> {
  const [pages, providers, agents, webhooks, refreshFailures] = await Promise.all([
    Promise.all(
      CONNECTION_STATUSES.map((status) =>
        api<ConnectionList>('GET', '/connections', { query: { status, limit: COUNT_PAGE } }),
      ),
    ),
    api<unknown[]>('GET', '/providers'),
    api<{ agents: unknown[] }>('GET', '/admin/v1/agents'),
    // Listing webhooks needs a full key (a receiver's URL may carry a token).
    canWrite() ? api<Webhook[]>('GET', '/admin/v1/webhooks') : undefined,
    api<{ events: ConnectionEvent[] }>('GET', '/admin/v1/events', {
      query: { type: 'connection.refresh_failed', limit: 10 },
    }),
  ]);
  const failed = await Promise.all(
    (webhooks ?? []).slice(0, 50).map(async (webhook) => ({
      webhook,
      failed: (
        await api<{ deliveries: WebhookDelivery[] }>('GET', `/admin/v1/webhooks/${webhook.id}/deliveries`, {
          query: { status: 'failed', limit: 5 },
        })
      ).deliveries,
    })),
  );
  const attentionPage = pages[CONNECTION_STATUSES.indexOf('attention_required')]!;
  return {
    byStatus: CONNECTION_STATUSES.map((status, i) => {
      const page = pages[i]!;
      return { status, count: `${page.connections.length}${page.next_cursor === null ? '' : '+'}` };
    }),
    providers: providers.length,
    agents: agents.agents.length,
    webhooks: webhooks?.length,
    attention: attentionPage.connections.slice(0, 20),
    refreshFailures: refreshFailures.events,
    failingWebhooks: webhooks === undefined ? undefined : failed.filter((f) => f.failed.length > 0),
  };
}

const connectionLink = (id: string) => html`<a href=${`#/connections/${id}`}>${id.slice(0, 8)}</a>`;

export function OverviewPage(): VNode {
  const [load] = useLoad(loadOverview, []);
  return html`<${PageTitle}>Overview</${PageTitle}>
    <${Loaded} load=${load} render=${(o: Overview) => html`
      <section aria-labelledby="counts">
        <h2 id="counts">Connections by status</h2>
        <ul class="cards">
          ${o.byStatus.map(
            (s) => html`<li class="card"><a href=${`#/connections?status=${s.status}`}>
              <span class="count">${s.count}</span> <${Status} value=${s.status} /></a></li>`,
          )}
        </ul>
        <ul class="cards">
          <li class="card"><a href="#/providers"><span class="count">${o.providers}</span> providers</a></li>
          <li class="card"><a href="#/agents"><span class="count">${o.agents}</span> agents</a></li>
          ${o.webhooks !== undefined && html`<li class="card"><a href="#/webhooks"><span class="count">${o.webhooks}</span> webhooks</a></li>`}
        </ul>
      </section>
      <section aria-labelledby="attention">
        <h2 id="attention">Needs attention</h2>
        <h3>Connections in attention_required</h3>
        <${Table}
          caption="Connections that need attention"
          head=${['Connection', 'User', 'Provider', 'Last error', 'Updated']}
          rows=${o.attention.map((c) => [connectionLink(c.id), c.workspace_id, c.provider_name, c.last_error ?? '—', when(c.updated_at)])}
          empty="None: every connection that was active can still be refreshed."
        />
        <h3>Recent failed refreshes</h3>
        <${Table}
          caption="Recent failed refreshes"
          head=${['When', 'Connection', 'User', 'Reason']}
          rows=${o.refreshFailures.map((e) => [when(e.created_at), connectionLink(e.connection_id), e.workspace_id, String(e.details.reason ?? e.details.error ?? '—')])}
          empty="No failed refresh recorded."
        />
        <h3>Webhooks with failed deliveries</h3>
        ${
          o.failingWebhooks === undefined
            ? html`<p class="muted">Webhooks are listed for keys of scope “full” only.</p>`
            : html`<${Table}
          caption="Webhooks with failed deliveries"
          head=${['Webhook', 'Latest failure', 'Why']}
          rows=${o.failingWebhooks.map((f) => [
            html`<a href=${`#/webhooks?id=${f.webhook.id}`}>${f.webhook.url}</a>`,
            when(f.failed[0]?.last_attempt_at ?? f.failed[0]?.created_at),
            f.failed[0]?.last_error ?? `HTTP ${f.failed[0]?.last_status_code ?? '?'}`,
          ])}
          empty="No webhook has a failed delivery."
        />`
        }
      </section>`}
    />`;
}
