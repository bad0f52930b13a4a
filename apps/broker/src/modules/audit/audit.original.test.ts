import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import type { AuditEventsTable } from '../../db/schema.ts';
import {
  actionsFor,
  NEXUS_ONLY_ACTIONS,
  ORIGINAL_EVENT_MAP,
  ORIGINAL_ONLY_EVENTS,
  originalEventType,
  queryOriginal,
  toOriginal,
} from './audit.original.ts';
import type { AuditQuery, AuditStore } from './audit.store.ts';

let seq = 0;
function row(action: string, details: Record<string, unknown> | null, over: Partial<AuditEventsTable> = {}) {
  seq++;
  return {
    seq,
    id: randomUUID(),
    occurred_at: 1_800_000_000_000 + seq,
    actor: 'test',
    action,
    resource_type: 'connection',
    resource_id: randomUUID(),
    outcome: 'success',
    ip: '10.0.0.1',
    user_agent: 'curl/8',
    request_id: null,
    details: details === null ? null : JSON.stringify(details),
    prev_hash: '',
    hash: '',
    ...over,
  } satisfies AuditEventsTable;
}

/** The store's reads over an array, counting them (newest first, as the store answers). */
function memoryStore(rows: AuditEventsTable[]) {
  const reads: AuditQuery[] = [];
  const query = async (q: AuditQuery) => {
    reads.push(q);
    return rows
      .filter((r) => q.action === undefined || r.action === q.action)
      .filter((r) => q.since === undefined || r.occurred_at >= q.since)
      .filter((r) => q.beforeSeq === undefined || r.seq < q.beforeSeq)
      .sort((a, b) => b.seq - a.seq)
      .slice(0, q.limit);
  };
  const store: Pick<AuditStore, 'query' | 'queryNewest'> = {
    query,
    async queryNewest(q) {
      const each = await Promise.all((q.actions ?? [undefined]).map((action) => query({ ...q, action })));
      return each
        .flat()
        .sort((a, b) => b.seq - a.seq)
        .slice(0, q.limit);
    },
  };
  return { store, reads };
}

describe('the original audit shape: the mapping table', () => {
  it('ends every mapped action with an entry that takes all its remaining events', () => {
    const actions = new Set(ORIGINAL_EVENT_MAP.map((m) => m.action));
    for (const action of actions) {
      const entries = ORIGINAL_EVENT_MAP.filter((m) => m.action === action);
      assert.equal(entries.at(-1)?.when, undefined, action);
      assert.ok(
        entries.slice(0, -1).every((m) => m.when !== undefined),
        `${action}: an unconditional entry before the last hides the ones after it`,
      );
    }
  });

  it('keeps its documented lists true: Nexus-only actions are unmapped, original-only names never produced', () => {
    const mapped = ORIGINAL_EVENT_MAP.map((m) => m.action);
    for (const action of NEXUS_ONLY_ACTIONS) {
      const prefix = action.endsWith('.*') ? action.slice(0, -1) : undefined;
      assert.ok(
        !mapped.some((m) => (prefix === undefined ? m === action : m.startsWith(prefix))),
        `${action} is listed as Nexus-only but has a mapping`,
      );
    }
    const produced = new Set(ORIGINAL_EVENT_MAP.map((m) => m.original));
    for (const name of Object.keys(ORIGINAL_ONLY_EVENTS))
      assert.ok(!produced.has(name), `${name} is listed as never produced but is mapped`);
  });

  it('names the events as the original did, and keeps Nexus-only names', () => {
    assert.equal(originalEventType('connection.activated', { superseded: [] }), 'oauth_flow_completed');
    assert.equal(originalEventType('connection.token_read', { provider: 'x' }), 'token_retrieved');
    assert.equal(originalEventType('connection.attention_required', null), 'token_refresh_fatal');
    assert.equal(originalEventType('connection.failed', { error: 'access_denied' }), 'oauth_error');
    assert.equal(originalEventType('connection.failed', { error: 'consent_required' }), 'oauth_error');
    assert.equal(
      originalEventType('connection.failed', { error: 'id_token_invalid' }),
      'id_token_verification_failed',
    );
    assert.equal(
      originalEventType('connection.failed', { error: 'secret_backend_unavailable' }),
      'token_storage_failed',
    );
    assert.equal(
      originalEventType('connection.failed', { error: 'connection_not_pending' }),
      'connection_not_found',
    );
    for (const error of ['token_exchange_failed', 'provider_unavailable', 'vendor_specific_code'])
      assert.equal(originalEventType('connection.failed', { error }), 'token_exchange_failed', error);
    assert.equal(originalEventType('connection.failed', null), 'token_exchange_failed');
    assert.equal(originalEventType('provider.destination_changed', {}), 'provider.updated');
    assert.equal(originalEventType('connection.refreshed', {}), 'connection.refreshed');
    assert.equal(originalEventType('agent.created', {}), 'agent.created');
  });

  it('finds for a name every action that may carry it, and the name itself when no action is called so', () => {
    assert.deepEqual(actionsFor('token_retrieved'), [
      { action: 'connection.token_read', exact: true },
      { action: 'token_retrieved', exact: true },
      { action: 'original.token_retrieved', exact: true },
    ]);
    assert.deepEqual(actionsFor('provider.updated'), [
      { action: 'provider.updated', exact: true },
      { action: 'provider.destination_changed', exact: true },
      { action: 'original.provider.updated', exact: true },
    ]);
    assert.deepEqual(actionsFor('oauth_error'), [
      { action: 'connection.failed', exact: false },
      { action: 'oauth_error', exact: true },
      { action: 'original.oauth_error', exact: true },
    ]);
    // A Nexus name the original has another name for is never shown, so nothing is read for it.
    assert.deepEqual(actionsFor('connection.token_read'), []);
    // A name of either side also finds the original's history imported under it.
    assert.deepEqual(actionsFor('agent.created'), [
      { action: 'agent.created', exact: true },
      { action: 'original.agent.created', exact: true },
    ]);
  });
});

describe('the original audit shape: one event', () => {
  it('has the original’s seven fields, with event_data as JSON text', () => {
    const r = row('provider.created', { name: 'github', auth_type: 'oauth2' }, { resource_type: 'provider' });
    const e = toOriginal(r);
    assert.deepEqual(e, {
      id: r.id,
      connection_id: null,
      event_type: 'provider.created',
      event_data: JSON.stringify({ name: 'github', auth_type: 'oauth2', provider_id: r.resource_id }),
      ip_address: '10.0.0.1',
      user_agent: 'curl/8',
      created_at: new Date(r.occurred_at).toISOString(),
    });
  });

  it('adds the original’s keys where Nexus knows them', () => {
    const fatal = toOriginal(row('connection.attention_required', { reason: 'invalid_grant' }));
    assert.deepEqual(JSON.parse(fatal.event_data!), { reason: 'invalid_grant', error: 'invalid_grant' });
    const denied = toOriginal(row('connection.failed', { error: 'access_denied', detail: 'user said no' }));
    assert.deepEqual(JSON.parse(denied.event_data!), {
      error: 'access_denied',
      detail: 'user said no',
      description: 'user said no',
    });
    assert.equal(toOriginal(row('connection.token_read', null)).event_data, '{}');
  });

  it('gives connection_id only as a UUID: the original’s clients decode it as one', () => {
    const r = row('connection.token_read', {});
    assert.equal(toOriginal(r).connection_id, r.resource_id);
    assert.equal(toOriginal(row('proxy.request', {}, { resource_id: 'not-a-uuid' })).connection_id, null);
    const session = randomUUID();
    const opened = row(
      'agent.session_opened',
      { connection_id: session },
      { resource_type: 'agent_session' },
    );
    assert.equal(toOriginal(opened).connection_id, session);
  });

  it('drops any key that would name a secret, however deep', () => {
    const e = toOriginal(
      row('future.event', {
        provider: 'x',
        access_token: 'at-1',
        nested: { refresh_token: 'rt-1', client_secret: 'cs-1', kept: 1, list: [{ password: 'pw' }] },
      }),
    );
    assert.deepEqual(JSON.parse(e.event_data!), { provider: 'x', nested: { kept: 1, list: [{}] } });
    assert.ok(!/at-1|rt-1|cs-1|pw/.test(e.event_data!));
  });

  it('survives details that are not an object', () => {
    const e = toOriginal({ ...row('connection.token_read', null), details: '"text"' });
    assert.equal(e.event_data, '{}');
  });
});

describe('the original audit shape: reading', () => {
  it('merges the actions of a name newest first and stops at the limit', async () => {
    const rows = [
      row('provider.updated', {}),
      row('provider.destination_changed', {}),
      row('provider.created', {}),
      row('provider.updated', {}),
    ];
    const { store } = memoryStore(rows);
    const found = await queryOriginal(store, { eventType: 'provider.updated', limit: 2 });
    assert.deepEqual(
      found.map((e) => e.id),
      [rows[3]!.id, rows[1]!.id],
    );
  });

  it('pages through an action only some of whose events carry the name', async () => {
    const denied = row('connection.failed', { error: 'access_denied' });
    const rows = [denied, ...Array.from({ length: 250 }, () => row('connection.failed', { error: 'x' }))];
    const { store, reads } = memoryStore(rows);
    const found = await queryOriginal(store, { eventType: 'oauth_error', limit: 5 });
    assert.deepEqual(
      found.map((e) => e.id),
      [denied.id],
    );
    const pages = reads.filter((q) => q.action === 'connection.failed');
    assert.deepEqual(
      pages.map((q) => q.beforeSeq !== undefined),
      [false, true, true],
    );
    assert.equal(
      (await queryOriginal(store, { eventType: 'token_exchange_failed', limit: 1000 })).length,
      250,
    );
  });

  it('answers an unknown name with nothing', async () => {
    const { store } = memoryStore([row('connection.token_read', {})]);
    assert.deepEqual(await queryOriginal(store, { eventType: 'no_such_event', limit: 50 }), []);
    assert.deepEqual(await queryOriginal(store, { eventType: 'connection.token_read', limit: 50 }), []);
  });
});
