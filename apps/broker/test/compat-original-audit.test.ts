/**
 * `GET /audit?format=original` (issue #25): the original broker's audit read shape, a plain array
 * of `{id, connection_id, event_type, event_data, ip_address, user_agent, created_at}` newest first,
 * with its event names, after a real consent against a real OpenID provider, token reads, a
 * refused consent, a failed code exchange and a refresh the provider refuses for good. Runs on
 * SQLite, and on PostgreSQL under `npm run test:pg`.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { CompiledQuery, type KyselyPlugin } from 'kysely';
import { queryOriginal } from '../src/modules/audit/audit.original.ts';
import { createAuditStore } from '../src/modules/audit/audit.store.ts';
import { DIALECT, json } from './harness.ts';
import { RETURN, Scenario } from './oauth-scenario.ts';

type Original = {
  id: string;
  connection_id: string | null;
  event_type: string;
  event_data: string | null;
  ip_address: string | null;
  user_agent: string | null;
  created_at: string;
};

const FIELDS = ['connection_id', 'created_at', 'event_data', 'event_type', 'id', 'ip_address', 'user_agent'];
const UA = 'original-dashboard/1.0';
/** Synthetic callback failures recorded after the refused consent: more than one page of the index. */
const FAILED_AFTER = 150;

describe('GET /audit?format=original: the original broker’s audit shape', { timeout: 120_000 }, () => {
  const s = new Scenario();
  /** Every secret value the run saw: none may appear in an answer of this route. */
  const secrets = new Set<string>(['client-post-secret', 'client-basic-secret']);
  const providers: Record<string, string> = {};
  let connected: string;
  let denied: string;
  let exchangeFailed: string;
  let fatal: string;
  let startedAt: number;
  let beforeTokenReads: number;
  let afterFirstTokenRead: number;
  let readKey: string;
  let agentKey: string;

  const original = async (query: string, key?: string | null): Promise<LightMyRequestResponse> =>
    s.broker.request({
      method: 'GET',
      url: `/audit?format=original${query ? `&${query}` : ''}`,
      headers: { 'user-agent': 'audit-reader/1.0' },
      ...(key === undefined ? {} : { key }),
    });
  const events = async (query = ''): Promise<Original[]> => {
    const res = await original(query);
    assert.equal(res.statusCode, 200, `${query}: ${res.body}`);
    for (const secret of secrets) assert.ok(!res.body.includes(secret), `${query}: a secret in the answer`);
    return json<Original[]>(res);
  };
  const data = (e: Original) => JSON.parse(e.event_data ?? 'null') as Record<string, unknown>;
  const iso = (ms: number) => encodeURIComponent(new Date(ms).toISOString());

  /** request-connection with a user agent, the provider's own pages, then the callback. */
  async function connect(provider: string, user: string, account?: string): Promise<string> {
    const started = json<{ authUrl: string; connection_id: string }>(
      await s.call(
        {
          method: 'POST',
          url: '/v1/request-connection',
          headers: { 'user-agent': UA },
          payload: { user_id: user, provider_name: provider, return_url: RETURN },
        },
        200,
      ),
    );
    const callback = await s.idp.consent(started.authUrl, account);
    secrets.add(callback.searchParams.get('code')!);
    const res = await s.call(
      {
        method: 'GET',
        url: callback.pathname + callback.search,
        key: null,
        headers: { 'user-agent': 'Mozilla/5.0 (browser)' },
      },
      302,
    );
    assert.equal(new URL(res.headers.location as string).searchParams.get('status'), 'success');
    const stored = await s.stored(started.connection_id);
    secrets.add(stored.access_token);
    if (stored.refresh_token) secrets.add(stored.refresh_token);
    return started.connection_id;
  }

  /** A consent the browser comes back from with `query` instead of an approval. */
  async function callbackWith(user: string, query: (state: string) => string): Promise<string> {
    const started = json<{ state: string; connection_id: string }>(
      await s.call(
        {
          method: 'POST',
          url: '/v1/request-connection',
          payload: { user_id: user, provider_name: 'idp-basic', return_url: RETURN },
        },
        200,
      ),
    );
    const res = await s.call(
      { method: 'GET', url: `/auth/callback?${query(started.state)}`, key: null },
      302,
    );
    assert.equal(new URL(res.headers.location as string).searchParams.get('status'), 'failed');
    return started.connection_id;
  }

  before(async () => {
    await s.start();
    secrets.add(s.broker.adminKey);
    for (const p of json<{ id: string; name: string }[]>(
      await s.call({ method: 'GET', url: '/providers' }, 200),
    ))
      providers[p.name] = p.id;
    for (const scope of ['read', 'agent'] as const) {
      const created = json<{ key: string }>(
        await s.call(
          { method: 'POST', url: '/admin/v1/admin-keys', payload: { name: `audit-${scope}`, scope } },
          201,
        ),
      );
      secrets.add(created.key);
      if (scope === 'read') readKey = created.key;
      else agentKey = created.key;
    }
    // History enough for the query planners to prefer an index, an hour before the rest.
    startedAt = s.clock;
    await Promise.all(
      Array.from({ length: 3000 }, (_, i) =>
        s.broker.container.audit.record(
          { actor: 'test' },
          { action: 'test.filler', resourceType: 'test', resourceId: String(i) },
        ),
      ),
    );
    s.clock += 3_600_000;

    connected = await connect('idp-discovered', 'user-1');
    s.clock += 1_000;
    beforeTokenReads = s.clock;
    for (let i = 0; i < 2; i++) {
      const token = json<{ access_token: string }>(
        await s.call({ method: 'GET', url: `/v1/token/${connected}`, headers: { 'user-agent': UA } }, 200),
      );
      secrets.add(token.access_token);
      s.clock += 1_000;
      if (i === 0) afterFirstTokenRead = s.clock;
    }

    denied = await callbackWith(
      'user-2',
      (state) => `state=${encodeURIComponent(state)}&error=access_denied`,
    );
    s.clock += 1_000;
    for (let i = 0; i < FAILED_AFTER; i++)
      await s.broker.container.audit.record(
        { actor: 'user:consent' },
        {
          action: 'connection.failed',
          resourceType: 'connection',
          resourceId: randomUUID(),
          outcome: 'failure',
          details: { error: 'token_exchange_failed' },
        },
      );
    exchangeFailed = await callbackWith(
      'user-3',
      (state) => `state=${encodeURIComponent(state)}&code=not-a-code-the-provider-issued`,
    );
    s.clock += 1_000;

    fatal = await connect('idp-basic', 'user-4', 'account-4');
    await s.idp.revokeAllGrants('account-4');
    s.clock += 3_000;
    assert.equal((await s.call({ method: 'POST', url: `/v1/refresh/${fatal}` })).statusCode, 409);
    s.clock += 1_000;
  });
  after(() => s.close());

  it('answers a plain array of exactly the original’s fields, newest first', async () => {
    const all = await events('limit=1000');
    assert.equal(all.length, 1000);
    for (const e of all) {
      assert.deepEqual(Object.keys(e).sort(), FIELDS);
      assert.equal(typeof e.event_data, 'string', 'event_data is JSON text, as the original wrote it');
      assert.equal(typeof data(e), 'object');
      assert.ok(!Number.isNaN(Date.parse(e.created_at)));
    }
    const times = all.map((e) => Date.parse(e.created_at));
    assert.deepEqual(
      times,
      [...times].sort((a, b) => b - a),
    );
    assert.equal(new Set(all.map((e) => e.id)).size, all.length);
    // The default page is the original's: 50.
    assert.deepEqual(
      (await events()).map((e) => e.id),
      all.slice(0, 50).map((e) => e.id),
    );
  });

  it('tells a connection’s story under the original’s names', async () => {
    const story = (await events('limit=1000')).filter((e) => e.connection_id === connected);
    assert.deepEqual(
      story.map((e) => e.event_type),
      ['token_retrieved', 'token_retrieved', 'oauth_flow_completed', 'connection.requested'],
    );
    const [read, , completed, requested] = story as [Original, Original, Original, Original];
    assert.equal(read.ip_address, '127.0.0.1');
    assert.equal(read.user_agent, UA);
    assert.equal(data(read).provider, 'idp-discovered');
    assert.equal(completed.user_agent, 'Mozilla/5.0 (browser)');
    assert.equal(requested.user_agent, UA);
    assert.equal(data(requested).workspace_id, 'user-1');

    const [refusal] = await events('event_type=oauth_error');
    assert.equal(refusal?.connection_id, denied);
    assert.equal(data(refusal!).error, 'access_denied');
    const [failure] = await events('event_type=token_exchange_failed&limit=1');
    assert.equal(failure?.connection_id, exchangeFailed);
    assert.equal(data(failure!).error, 'token_exchange_failed');
    const [dead] = await events('event_type=token_refresh_fatal');
    assert.equal(dead?.connection_id, fatal);
    assert.equal(typeof data(dead!).error, 'string', 'why the provider refused');
    // The background refresher has no caller: where it came from is unknown, not invented.
    assert.equal(dead?.ip_address, null);
    assert.equal(dead?.user_agent, null);

    const created = await events('event_type=provider.created');
    assert.deepEqual(
      created.map((e) => [data(e).provider_id, data(e).name, e.connection_id]),
      [
        [providers['idp-basic'], 'idp-basic', null],
        [providers['idp-discovered'], 'idp-discovered', null],
      ],
    );
  });

  it('filters by an original name, selecting exactly the Nexus events it stands for', async () => {
    const nexus = async (type: string) =>
      json<{ events: { id: string }[] }>(
        await s.broker.request({ method: 'GET', url: `/audit?event_type=${type}&limit=500` }),
      ).events.map((e) => e.id);
    const ids = async (query: string) => (await events(query)).map((e) => e.id);

    assert.deepEqual(await ids('event_type=token_retrieved'), await nexus('connection.token_read'));
    assert.equal((await ids('event_type=token_retrieved')).length, 2);
    assert.deepEqual(await ids('event_type=oauth_flow_completed'), await nexus('connection.activated'));
    assert.deepEqual(
      await ids('event_type=token_refresh_fatal'),
      await nexus('connection.attention_required'),
    );
    // One Nexus action, two original names: each selects its own, and together they are all of it.
    const refusals = await ids('event_type=oauth_error&limit=1000');
    const exchanges = await ids('event_type=token_exchange_failed&limit=1000');
    assert.equal(refusals.length, 1);
    assert.equal(exchanges.length, FAILED_AFTER + 1);
    assert.deepEqual([...refusals, ...exchanges].sort(), [...(await nexus('connection.failed'))].sort());
    // The refusal is older than a page of the index's newer failures and is still found first.
    assert.deepEqual(await ids('event_type=oauth_error&limit=1'), refusals);

    // Nexus-only events keep their Nexus name; a Nexus name the original has another name for,
    // and names nobody writes, find nothing (as the original answered for an unknown type).
    assert.equal((await events('event_type=connection.requested')).length, 4);
    for (const type of ['connection.token_read', 'token_retrieval_failed', 'no_such_event'])
      assert.deepEqual(await events(`event_type=${type}`), [], type);

    // since: RFC 3339, inclusive, with any offset.
    assert.deepEqual((await events(`event_type=token_retrieved&since=${iso(beforeTokenReads)}`)).length, 2);
    assert.deepEqual(
      (await events(`event_type=token_retrieved&since=${iso(afterFirstTokenRead)}`)).length,
      1,
    );
    const offset = new Date(afterFirstTokenRead + 2 * 3_600_000).toISOString().replace('Z', '+02:00');
    assert.deepEqual(
      (await events(`event_type=token_retrieved&since=${encodeURIComponent(offset)}`)).length,
      1,
    );
    const recent = await events(`since=${iso(beforeTokenReads)}&limit=1000`);
    assert.ok(recent.every((e) => Date.parse(e.created_at) >= beforeTokenReads));
    assert.ok(!recent.some((e) => e.event_type === 'oauth_flow_completed' && e.connection_id === connected));
    assert.deepEqual(await events(`since=${iso(s.clock + 60_000)}`), []);
    // More events since than the store probes on the time index: it walks from the newest.
    assert.deepEqual(
      (await events(`since=${iso(startedAt)}&limit=7`)).map((e) => e.id),
      (await events('limit=7')).map((e) => e.id),
    );
  });

  it('bounds limit and since, answering 400 with Nexus’s error envelope', async () => {
    assert.deepEqual(
      (await events('limit=1')).map((e) => e.id),
      (await events('limit=2')).slice(0, 1).map((e) => e.id),
    );
    assert.equal((await events('limit=1000')).length, 1000);
    const refused: [string, string][] = [
      ['limit=1001', 'querystring.limit'],
      ['limit=0', 'querystring.limit'],
      ['limit=-5', 'querystring.limit'],
      ['limit=ten', 'querystring.limit'],
      ['limit=2.5', 'querystring.limit'],
      ['since=yesterday', 'querystring.since'],
      ['since=2026-05-01', 'querystring.since'],
      ['since=2026-05-01T00:00:00', 'querystring.since'],
      [`event_type=${'x'.repeat(101)}`, 'querystring.event_type'],
      // Nexus's own filters and paging belong to its own shape.
      ['cursor=c2VxOjE', 'querystring.cursor'],
      ['actor=admin-key:env:test', 'querystring.actor'],
      ['until=2030-01-01T00:00:00Z', 'querystring.until'],
      ['colour=red', 'querystring.colour'],
    ];
    for (const [query, path] of refused) {
      const res = await original(query);
      assert.equal(res.statusCode, 400, query);
      const body = json<{ error: string; code: string; details: { path: string }[] }>(res);
      assert.equal(body.error, 'invalid_request', query);
      assert.equal(body.code, 'invalid_request', query);
      assert.ok(
        body.details.some((d) => d.path === path),
        `${query}: ${res.body}`,
      );
    }
    const unknownFormat = await s.broker.request({ method: 'GET', url: '/audit?format=v0' });
    assert.equal(unknownFormat.statusCode, 400);
    // Nexus's shape keeps its own bounds.
    assert.equal((await s.broker.request({ method: 'GET', url: '/audit?limit=501' })).statusCode, 400);
    const page = json<{ events: unknown[] }>(
      await s.broker.request({ method: 'GET', url: '/audit?limit=2' }),
    );
    assert.equal(page.events.length, 2);
  });

  it('needs an admin key that may read', async () => {
    assert.equal((await original('', null)).statusCode, 401);
    assert.equal((await original('', 'not-a-key')).statusCode, 401);
    const agent = await original('', agentKey);
    assert.equal(agent.statusCode, 403);
    assert.equal(json(agent).error, 'forbidden');
    assert.equal((await original('limit=3', readKey)).statusCode, 200);
  });

  it('never shows a secret', async () => {
    assert.ok(secrets.size >= 8, 'the scan looks for real tokens, codes and keys');
    for (const query of ['limit=1000', `since=${iso(beforeTokenReads)}&limit=1000`])
      for (const secret of secrets) assert.ok(!(await original(query)).body.includes(secret));
  });

  it('reads through indexes only, on this database', async () => {
    const db = s.broker.container.db;
    const k = db.kysely;
    await k.executeQuery(CompiledQuery.raw(DIALECT === 'postgres' ? 'ANALYZE audit_events' : 'ANALYZE'));
    const captured: CompiledQuery[] = [];
    const capture: KyselyPlugin = {
      transformQuery(args) {
        captured.push(k.getExecutor().compileQuery(args.node, args.queryId));
        return args.node;
      },
      transformResult: async (args) => args.result,
    };
    const store = createAuditStore({ ...db, kysely: k.withPlugin(capture) });
    const read = (since?: number, eventType?: string) =>
      queryOriginal(store, { since, eventType, limit: 50 });
    await read();
    await read(beforeTokenReads);
    await read(undefined, 'token_retrieved');
    await read(beforeTokenReads, 'token_retrieved');
    await read(undefined, 'provider.updated');
    await read(undefined, 'oauth_error');
    assert.ok(captured.length >= 7, 'the reads went through the capture');
    for (const query of captured) {
      const explain = DIALECT === 'postgres' ? 'EXPLAIN ' : 'EXPLAIN QUERY PLAN ';
      const { rows } = await k.executeQuery<Record<string, unknown>>(
        CompiledQuery.raw(explain + query.sql, [...query.parameters]),
      );
      const plan = rows.map((r) => String(r['QUERY PLAN'] ?? r.detail)).join('\n');
      assert.doesNotMatch(plan, /Seq Scan|^SCAN audit_events$/m, `${query.sql}\n${plan}`);
      // A filter is served by its index, not by walking the whole table in seq order.
      if (/"action" = /.test(query.sql))
        assert.match(plan, /Index Cond: \(+action = |USING INDEX audit_events_action \(action=/, plan);
      else if (/"occurred_at" >= /.test(query.sql))
        assert.match(
          plan,
          /Index Cond: \(+occurred_at >= |USING INDEX audit_events_time \(occurred_at>/,
          plan,
        );
    }
  });
});
