/** Audit log: filters, newest first, a page at a time. */
import type { VNode } from 'preact';
import { useState } from 'preact/hooks';
import { api } from '../api.ts';
import { hashQuery } from '../route.ts';
import type { AuditEvent, AuditVerification } from '../types.ts';
import {
  ErrorBox,
  Field,
  formValues,
  html,
  Loaded,
  PageTitle,
  Table,
  useAction,
  useLoad,
  when,
} from '../ui.ts';

type Filters = Record<'event_type' | 'actor' | 'resource' | 'since' | 'until', string>;

/** A local date-time input's value as the ISO time the API expects ('' stays ''). */
const iso = (local: string | undefined): string => (local ? new Date(local).toISOString() : '');

export function AuditPage(): VNode {
  const q = hashQuery();
  const [filters, setFilters] = useState<Filters>({
    event_type: q.get('event_type') ?? '',
    actor: q.get('actor') ?? '',
    resource: q.get('resource') ?? '',
    since: '',
    until: '',
  });
  const [cursors, setCursors] = useState<string[]>([]);
  const cursor = cursors.at(-1);
  const [load] = useLoad(
    () =>
      api<{ events: AuditEvent[]; next_cursor: string | null }>('GET', '/audit', {
        query: { ...filters, since: iso(filters.since), until: iso(filters.until), cursor, limit: 50 },
      }),
    [filters, cursor],
  );
  const apply = (event: Event) => {
    const v = formValues(event);
    setCursors([]);
    setFilters({
      event_type: v.event_type?.trim() ?? '',
      actor: v.actor?.trim() ?? '',
      resource: v.resource?.trim() ?? '',
      since: v.since ?? '',
      until: v.until ?? '',
    });
  };
  return html`<${PageTitle}>Audit log</${PageTitle}>
    <${VerifyChain} />
    <form class="filters" onSubmit=${apply} aria-label="Filter audit events">
      <${Field} id="a-type" label="Event type"><input id="a-type" name="event_type" maxlength="100" placeholder="connection.revoked" value=${filters.event_type} /></${Field}>
      <${Field} id="a-actor" label="Actor"><input id="a-actor" name="actor" maxlength="200" value=${filters.actor} /></${Field}>
      <${Field} id="a-resource" label="Resource"><input id="a-resource" name="resource" maxlength="300" placeholder="connection:ID" value=${filters.resource} /></${Field}>
      <${Field} id="a-since" label="Since"><input id="a-since" name="since" type="datetime-local" value=${filters.since} /></${Field}>
      <${Field} id="a-until" label="Until"><input id="a-until" name="until" type="datetime-local" value=${filters.until} /></${Field}>
      <button type="submit" class="primary">Filter</button>
    </form>
    <${Loaded} load=${load} render=${(page: { events: AuditEvent[]; next_cursor: string | null }) => html`
      <${Table}
        caption="Audit events"
        head=${['#', 'When', 'Event', 'Outcome', 'Actor', 'Resource', 'Details']}
        rows=${page.events.map((e) => [
          String(e.seq),
          when(e.occurred_at),
          e.event_type,
          e.outcome,
          e.actor,
          e.resource_id === null ? e.resource_type : `${e.resource_type}:${e.resource_id}`,
          e.details === null ? '—' : html`<code class="details">${JSON.stringify(e.details)}</code>`,
        ])}
        empty="No event matches."
      />
      <div class="pager">
        <button type="button" disabled=${cursors.length === 0} onClick=${() => setCursors(cursors.slice(0, -1))}>Newer</button>
        <button type="button" disabled=${page.next_cursor === null} onClick=${() => page.next_cursor !== null && setCursors([...cursors, page.next_cursor])}>Older</button>
      </div>`}
    />`;
}

/** Events one press verifies; the answer says where to go on from when the log is longer. */
const VERIFY_STEP = 10_000;

/**
 * The chain's verification (`GET /audit/verify`, what `nexus audit verify` runs), a bounded step
 * at a time: "Continue" verifies the next events from where the previous step stopped.
 */
function VerifyChain(): VNode {
  const [result, setResult] = useState<AuditVerification | undefined>();
  const [total, setTotal] = useState(0);
  const action = useAction();
  const verify = (from?: number) =>
    action.run(async () => {
      const r = await api<AuditVerification>('GET', '/audit/verify', {
        query: { from_seq: from, limit: VERIFY_STEP },
      });
      setTotal(from === undefined ? r.checked : total + r.checked);
      setResult(r);
      return undefined;
    });
  const r = result;
  return html`<section class="panel" aria-labelledby="verify-title">
    <h2 id="verify-title">Chain verification</h2>
    <p class="muted">Every event is hash-chained to the one before it: verification finds an event
      changed, removed or inserted after it was written (<code>nexus audit verify</code> runs the same).</p>
    <button type="button" disabled=${action.busy} onClick=${() => verify()}>Verify the chain</button>
    ${action.busy && html` <span class="muted" role="status">Verifying…</span>`}
    <${ErrorBox} error=${action.error} />
    ${
      r !== undefined &&
      html`<div class=${r.ok ? 'notice' : 'error'} role=${r.ok ? 'status' : 'alert'}>
        ${
          !r.ok
            ? html`<strong>Chain broken at event ${r.broken_at}:</strong> ${r.reason}`
            : r.complete
              ? html`<strong>Chain intact.</strong> ${total} events verified, up to event ${r.head_seq}.`
              : html`<strong>Intact so far.</strong> ${total} events verified, up to event ${r.to_seq} of ${r.head_seq}.`
        }
        ${r.pruned_through > 0 && html` Events 1–${r.pruned_through} were removed by retention (their export files verify them).`}
        <div class="muted">Head hash: <code class="details">${r.head_hash}</code></div>
      </div>
      ${
        r.next_from_seq !== null &&
        html`<button type="button" disabled=${action.busy} onClick=${() => verify(r.next_from_seq ?? undefined)}>Continue from event ${r.next_from_seq}</button>`
      }`
    }
  </section>`;
}
