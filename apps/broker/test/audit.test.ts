import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { createAuditService } from '../src/modules/audit/audit.service.ts';
import { createAuditStore } from '../src/modules/audit/audit.store.ts';
import { json, startBroker, type TestBroker } from './harness.ts';

const ctx = { actor: 'test', ip: '127.0.0.1', requestId: 'req-1' };

describe('audit log: group commit and hash chain', () => {
  let broker: TestBroker;
  before(async () => {
    broker = await startBroker();
  });
  after(() => broker.close());

  it('writes many concurrent events in few transactions, each resolved only once committed', async () => {
    const store = createAuditStore(broker.container.db);
    let transactions = 0;
    const counted = {
      ...store,
      append: (build: Parameters<typeof store.append>[0]) => {
        transactions++;
        return store.append(build);
      },
    };
    const audit = createAuditService({ store: counted, batchMax: 200 });
    const before = (await store.head()).seq;
    await Promise.all(
      Array.from({ length: 500 }, (_, i) =>
        audit.record(ctx, { action: 'test.event', resourceType: 'test', resourceId: String(i) }),
      ),
    );
    // Each promise resolved after its batch committed, so every row is visible now.
    const head = await store.head();
    assert.equal(head.seq, before + 500);
    assert.ok(transactions >= 3 && transactions <= 10, `expected a few batches, got ${transactions}`);
    const verify = await broker.container.audit.verify();
    assert.equal(verify.ok, true);
    assert.equal(verify.checked, head.seq);
  });

  it('rejects the whole batch, not silently, when the write fails', async () => {
    const failing = createAuditService({
      store: {
        ...createAuditStore(broker.container.db),
        append: async () => Promise.reject(new Error('disk full')),
      },
      batchMax: 10,
    });
    await assert.rejects(failing.record(ctx, { action: 'x', resourceType: 'test' }), /disk full/);
  });

  it('one event the database refuses fails its own request only, not the others of its batch', async () => {
    const real = createAuditStore(broker.container.db);
    let batches = 0;
    const audit = createAuditService({
      store: {
        ...real,
        // As PostgreSQL refuses a batch whose JSON holds one value it cannot take.
        append: (build) => {
          batches++;
          return real.append((head) => {
            const rows = build(head);
            if (rows.some((r) => r.action === 'test.poison'))
              throw new Error('invalid input syntax for type json');
            return rows;
          });
        },
      },
      batchMax: 50,
    });
    const before = (await real.head()).seq;
    const outcomes = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) =>
        audit.record(ctx, {
          action: i === 4 ? 'test.poison' : 'test.neighbour',
          resourceType: 'test',
          resourceId: String(i),
        }),
      ),
    );
    assert.deepEqual(
      outcomes.map((o) => o.status),
      Array.from({ length: 10 }, (_, i) => (i === 4 ? 'rejected' : 'fulfilled')),
    );
    assert.equal((await real.head()).seq, before + 9, 'the nine others are stored');
    assert.ok(batches >= 2, 'written alone after the batch failed');
    assert.equal((await broker.container.audit.verify()).ok, true);
  });

  it('detects an edited row', async () => {
    const db = broker.container.db.kysely;
    const target = await db
      .selectFrom('audit_events')
      .select('seq')
      .orderBy('seq')
      .offset(10)
      .limit(1)
      .executeTakeFirstOrThrow();
    const original = await db
      .selectFrom('audit_events')
      .selectAll()
      .where('seq', '=', target.seq)
      .executeTakeFirstOrThrow();
    await db
      .updateTable('audit_events')
      .set({ actor: 'someone-else' })
      .where('seq', '=', target.seq)
      .execute();
    const result = await broker.container.audit.verify();
    assert.equal(result.ok, false);
    assert.equal(result.brokenAt, target.seq);
    assert.match(result.reason ?? '', /modified/);
    await db
      .updateTable('audit_events')
      .set({ actor: original.actor })
      .where('seq', '=', target.seq)
      .execute();
    assert.equal((await broker.container.audit.verify()).ok, true);
  });

  it('detects a deleted row in the middle and at the end', async () => {
    const db = broker.container.db.kysely;
    const middle = await db
      .selectFrom('audit_events')
      .selectAll()
      .orderBy('seq')
      .offset(20)
      .limit(1)
      .executeTakeFirstOrThrow();
    await db.deleteFrom('audit_events').where('seq', '=', middle.seq).execute();
    let result = await broker.container.audit.verify();
    assert.equal(result.ok, false);
    assert.equal(result.brokenAt, middle.seq);
    await db.insertInto('audit_events').values(middle).execute();

    const last = await db
      .selectFrom('audit_events')
      .selectAll()
      .orderBy('seq', 'desc')
      .limit(1)
      .executeTakeFirstOrThrow();
    await db.deleteFrom('audit_events').where('seq', '=', last.seq).execute();
    result = await broker.container.audit.verify();
    assert.equal(result.ok, false);
    assert.match(result.reason ?? '', /deleted/);
    await db.insertInto('audit_events').values(last).execute();
    assert.equal((await broker.container.audit.verify()).ok, true);
  });

  it('an actor cut mid-emoji: its event and its neighbours stored, the chain intact', async () => {
    // An actor is stored as its first 200 UTF-16 units (every text field is clipped alike): here
    // the first half of the emoji. Failed logins and admin keys are recorded meanwhile, in
    // the same audit batches.
    const actor = `agent:${'a'.repeat(193)}\u{1F600}`;
    const login = () =>
      broker.app.inject({
        method: 'POST',
        url: '/oauth/token',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams({
          grant_type: 'client_credentials',
          client_id: `${'a'.repeat(63)}\u{1F600}`,
          client_secret: 'x',
        }).toString(),
      });
    const answers = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        i % 3 === 0
          ? login().then((r) => r.statusCode)
          : i % 3 === 1
            ? broker.container.audit
                .record(
                  { ...ctx, actor },
                  { action: 'cut.actor', resourceType: 'test', resourceId: String(i) },
                )
                .then(() => 0)
            : broker
                .request({ method: 'POST', url: '/admin/v1/admin-keys', payload: { name: `batch-${i}` } })
                .then((r) => r.statusCode),
      ),
    );
    assert.deepEqual(
      answers,
      Array.from({ length: 30 }, (_, i) => [401, 0, 201][i % 3]),
    );
    const verify = json<{ ok: boolean; broken_at?: unknown }>(
      await broker.request({ method: 'GET', url: '/audit/verify' }),
    );
    assert.deepEqual(verify.ok, true, JSON.stringify(verify));
    const cut = json<{ events: { actor: string }[] }>(
      await broker.request({ method: 'GET', url: '/audit?event_type=cut.actor&limit=1' }),
    ).events;
    assert.equal(cut[0]?.actor, `agent:${'a'.repeat(193)}\ufffd`);
  });

  it('a refused client is audited by its agent id only when an agent has it; anything else as unknown', async () => {
    // Client id and secret swapped, or an admin key pasted as the client id: the audit log (read
    // by read-scope keys) must not keep it.
    const secret = `nxs_${'0'.repeat(16)}_${'S'.repeat(43)}`;
    const refused = async (clientId: string) => {
      const res = await broker.app.inject({
        method: 'POST',
        url: '/oauth/token',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams({
          grant_type: 'client_credentials',
          client_id: clientId,
          client_secret: 'wrong',
        }).toString(),
      });
      assert.equal(res.statusCode, 401, res.body);
      const events = json<{ events: { actor: string }[] }>(
        await broker.request({ method: 'GET', url: '/audit?event_type=agent.token_denied&limit=1' }),
      ).events;
      return events[0]!.actor;
    };
    assert.equal(await refused(secret), 'agent:unknown');
    assert.equal(await refused('not-an-agent'), 'agent:unknown');
    const agent = await broker.request({
      method: 'POST',
      url: '/admin/v1/agents',
      payload: { agent_id: 'audited-by-id', allowed_scopes: [] },
    });
    assert.equal(agent.statusCode, 201, agent.body);
    assert.equal(await refused('audited-by-id'), 'agent:audited-by-id');
    const all = await broker.request({ method: 'GET', url: '/audit?limit=500' });
    assert.ok(!all.body.includes(secret.slice(0, 30)), 'the pasted secret is nowhere in the audit log');
  });

  it('shortens over-long details field by field, keeping who did what', async () => {
    // A hundred scopes of 256 characters (a caller's choice) once replaced the whole details with
    // {truncated: true}, and the event no longer said which workspace or provider it was about.
    const scopes = Array.from({ length: 100 }, (_, i) => `${i}-${'s'.repeat(250)}`);
    await broker.container.audit.record(ctx, {
      action: 'long.details',
      resourceType: 'test',
      resourceId: 'r-long',
      details: { workspace_id: 'alice', provider: 'crm', scopes, note: 'n'.repeat(9000) },
    });
    const [event] = json<{ events: { details: Record<string, unknown> }[] }>(
      await broker.request({ method: 'GET', url: '/audit?event_type=long.details&limit=1' }),
    ).events;
    const details = event!.details;
    assert.equal(details.workspace_id, 'alice');
    assert.equal(details.provider, 'crm');
    assert.equal(details.truncated, true);
    assert.deepEqual(details.truncated_fields, ['scopes', 'note']);
    const kept = details.scopes as string[];
    assert.ok(kept.length > 0 && kept.length < scopes.length, `${kept.length} scopes kept`);
    assert.deepEqual(kept, scopes.slice(0, kept.length), 'the start of the list, as it was');
    assert.equal(details.note, 'n'.repeat(256));
    assert.equal(
      json<{ ok: boolean }>(await broker.request({ method: 'GET', url: '/audit/verify' })).ok,
      true,
    );
  });

  it('keeps one chain when events race from two writers (as from two replicas)', async () => {
    const a = createAuditService({ store: createAuditStore(broker.container.db), batchMax: 7 });
    const b = createAuditService({ store: createAuditStore(broker.container.db), batchMax: 7 });
    await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        (i % 2 ? a : b).record(ctx, { action: 'race', resourceType: 'test', resourceId: String(i) }),
      ),
    );
    const result = await broker.container.audit.verify();
    assert.equal(result.ok, true);
    const count = await sql<{
      n: number | string;
    }>`SELECT COUNT(*) AS n FROM audit_events WHERE action = 'race'`.execute(broker.container.db.kysely);
    assert.equal(Number(count.rows[0]?.n), 100);
  });
});

describe('GET /audit', () => {
  let broker: TestBroker;
  const providerIds: string[] = [];
  before(async () => {
    broker = await startBroker();
    for (const name of ['alpha', 'beta', 'gamma']) {
      const res = await broker.request({
        method: 'POST',
        url: '/providers',
        headers: { 'user-agent': 'audit-test/1.0' },
        payload: { profile: { name, auth_type: 'api_key' } },
      });
      assert.equal(res.statusCode, 201, res.body);
      providerIds.push(json<{ id: string }>(res).id);
    }
    await broker.request({ method: 'DELETE', url: `/providers/${providerIds[0]}` });
  });
  after(() => broker.close());

  type Page = {
    events: {
      seq: number;
      event_type: string;
      actor: string;
      resource_id: string;
      ip: string;
      user_agent: string;
      request_id: string;
      details: Record<string, unknown>;
    }[];
    next_cursor: string | null;
  };

  it('lists events newest first with who, what, where', async () => {
    const res = await broker.request({ method: 'GET', url: '/audit' });
    assert.equal(res.statusCode, 200);
    const page = json<Page>(res);
    const seqs = page.events.map((e) => e.seq);
    assert.deepEqual(
      seqs,
      [...seqs].sort((x, y) => y - x),
    );
    const created = page.events.find(
      (e) => e.event_type === 'provider.created' && e.resource_id === providerIds[1],
    );
    assert.ok(created);
    assert.equal(created.actor, 'admin-key:env:test');
    assert.equal(created.ip, '127.0.0.1');
    assert.equal(created.user_agent, 'audit-test/1.0');
    assert.equal(typeof created.request_id, 'string');
    assert.deepEqual(created.details, { name: 'beta', auth_type: 'api_key' });
  });

  it('filters by event type, actor, resource and time', async () => {
    const byType = json<Page>(
      await broker.request({ method: 'GET', url: '/audit?event_type=provider.deleted' }),
    );
    assert.deepEqual(
      byType.events.map((e) => e.resource_id),
      [providerIds[0]],
    );
    const byResource = json<Page>(
      await broker.request({ method: 'GET', url: `/audit?resource=provider:${providerIds[2]}` }),
    );
    assert.deepEqual(
      byResource.events.map((e) => e.event_type),
      ['provider.created'],
    );
    const byActor = json<Page>(await broker.request({ method: 'GET', url: '/audit?actor=nobody' }));
    assert.equal(byActor.events.length, 0);
    const future = new Date(Date.now() + 3_600_000).toISOString();
    assert.equal(
      json<Page>(await broker.request({ method: 'GET', url: `/audit?since=${encodeURIComponent(future)}` }))
        .events.length,
      0,
    );
    assert.equal(
      json<Page>(
        await broker.request({
          method: 'GET',
          url: `/audit?until=${encodeURIComponent(future)}&event_type=provider.created`,
        }),
      ).events.length,
      3,
    );
  });

  it('pages with a cursor without gaps or repeats', async () => {
    const seen: number[] = [];
    let url = '/audit?limit=2';
    for (let i = 0; i < 10; i++) {
      const page = json<Page>(await broker.request({ method: 'GET', url }));
      seen.push(...page.events.map((e) => e.seq));
      if (page.next_cursor === null) break;
      url = `/audit?limit=2&cursor=${page.next_cursor}`;
    }
    const all = json<Page>(await broker.request({ method: 'GET', url: '/audit?limit=500' })).events.map(
      (e) => e.seq,
    );
    assert.deepEqual(seen, all);
  });

  it('rejects bad parameters with 400 and a stable code', async () => {
    for (const query of [
      'limit=0',
      'limit=501',
      'since=yesterday',
      'cursor=bm90LWEtY3Vyc29y',
      'resource=BAD TYPE',
      'colour=red',
    ]) {
      const res = await broker.request({ method: 'GET', url: `/audit?${query}` });
      assert.equal(res.statusCode, 400, query);
      assert.ok(['invalid_request', 'invalid_cursor'].includes(json(res).error as string), query);
    }
  });

  it('requires an admin key', async () => {
    assert.equal((await broker.request({ method: 'GET', url: '/audit', key: null })).statusCode, 401);
  });
});
