/** `GET /connections`: the admin list, paged by cursor, filtered, never with credentials. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CompiledQuery, type KyselyPlugin, sql } from 'kysely';
import { createConnectionsStore } from '../src/modules/connections/connections.store.ts';
import { DIALECT, json, startBroker, type TestBroker } from './harness.ts';

const RETURN = 'http://localhost:3000/done';

describe('GET /connections', () => {
  let broker: TestBroker;
  const ids: Record<string, string> = {};

  async function capture(provider: string, workspace: string, key: string) {
    const started = json<{ state: string; connection_id: string }>(
      await broker.request({
        method: 'POST',
        url: '/v1/request-connection',
        payload: { user_id: workspace, provider_name: provider, return_url: RETURN },
      }),
    );
    const res = await broker.request({
      method: 'POST',
      url: '/v1/capture-credential',
      key: null,
      payload: { state: started.state, credentials: { api_key: key } },
    });
    assert.equal(res.statusCode, 200, res.body);
    return started.connection_id;
  }

  before(async () => {
    broker = await startBroker();
    for (const name of ['crm', 'erp'])
      await broker.request({
        method: 'POST',
        url: '/providers',
        payload: { profile: { name, auth_type: 'api_key' } },
      });
    ids.alice = await capture('crm', 'alice', 'secret-alice-key');
    ids.bob = await capture('crm', 'bob', 'secret-bob-key');
    ids.carol = await capture('erp', 'carol', 'secret-carol-key');
    ids.pending = json<{ connection_id: string }>(
      await broker.request({
        method: 'POST',
        url: '/v1/request-connection',
        payload: { user_id: 'dave', provider_name: 'erp', return_url: RETURN },
      }),
    ).connection_id;
    await broker.request({ method: 'DELETE', url: `/connections/${ids.bob}` });
  });
  after(async () => broker.close());

  const list = async (query: string) => {
    const res = await broker.request({ method: 'GET', url: `/connections${query}` });
    assert.equal(res.statusCode, 200, res.body);
    assert.ok(!res.body.includes('secret-'), 'no credential in a list');
    return json<{
      connections: { id: string; status: string; workspace_id: string; provider_name: string }[];
      next_cursor: string | null;
    }>(res);
  };

  it('pages through every connection with the cursor, each exactly once', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: Awaited<ReturnType<typeof list>> = await list(
        `?limit=3${cursor ? `&cursor=${cursor}` : ''}`,
      );
      seen.push(...page.connections.map((c) => c.id));
      cursor = page.next_cursor;
      pages += 1;
    } while (cursor !== null);
    assert.equal(pages, 2);
    assert.deepEqual([...seen].sort(), Object.values(ids).sort());
  });

  it('filters by status, workspace and provider (name or alias)', async () => {
    assert.deepEqual(
      (await list('?status=revoked')).connections.map((c) => c.id),
      [ids.bob],
    );
    assert.deepEqual(
      (await list('?status=pending')).connections.map((c) => c.id),
      [ids.pending],
    );
    assert.deepEqual(
      (await list('?workspace_id=carol')).connections.map((c) => c.provider_name),
      ['erp'],
    );
    const crmActive = await list('?provider=crm&status=active');
    assert.deepEqual(
      crmActive.connections.map((c) => c.workspace_id),
      ['alice'],
    );
    assert.deepEqual((await list('?status=attention_required')).connections, []);
  });

  it('refuses bad filters and agents', async () => {
    for (const q of ['?status=sleepy', '?cursor=not-an-id', '?limit=0', '?colour=red']) {
      const res = await broker.request({ method: 'GET', url: `/connections${q}` });
      assert.equal(res.statusCode, 400, q);
    }
    const unknown = await broker.request({ method: 'GET', url: '/connections?provider=nope' });
    assert.equal(unknown.statusCode, 404);
    assert.equal((await broker.request({ method: 'GET', url: '/connections', key: null })).statusCode, 401);
  });

  it('reads a filtered page through an index in id order: no table scan, no sort', async () => {
    const db = broker.container.db;
    const captured: CompiledQuery[] = [];
    const capture: KyselyPlugin = {
      transformQuery(args) {
        captured.push(db.kysely.getExecutor().compileQuery(args.node, args.queryId));
        return args.node;
      },
      transformResult: async (args) => args.result,
    };
    const store = createConnectionsStore({ ...db, kysely: db.kysely.withPlugin(capture) });
    const providerId = (await broker.container.connectionsStore.find(ids.alice!))!.provider_id;
    captured.length = 0; // what the store prepared when it was built
    await store.listPage({ status: 'active' }, undefined, 50);
    await store.listPage({ status: 'active' }, ids.alice, 50);
    await store.listPage({ providerId }, undefined, 50);
    await store.listPage({ providerId, status: 'active' }, ids.alice, 50);
    const pages = [...new Map(captured.map((q) => [q.sql + JSON.stringify(q.parameters), q])).values()];
    assert.equal(pages.length, 4, pages.map((q) => q.sql).join('\n'));
    for (const query of pages) {
      // PostgreSQL would scan a table this small whatever its indexes: told not to, it shows
      // whether an index serves the filter in the page's order.
      const plan = await db.kysely.transaction().execute(async (trx) => {
        if (DIALECT === 'postgres') await sql`SET LOCAL enable_seqscan = off`.execute(trx);
        const explain = DIALECT === 'postgres' ? 'EXPLAIN ' : 'EXPLAIN QUERY PLAN ';
        const { rows } = await trx.executeQuery<Record<string, unknown>>(
          CompiledQuery.raw(explain + query.sql, [...query.parameters]),
        );
        return rows.map((r) => String(r['QUERY PLAN'] ?? r.detail)).join('\n');
      });
      assert.doesNotMatch(
        plan,
        /Seq Scan on connections|SCAN connections\b|TEMP B-TREE|\bSort\b/,
        `${query.sql}\n${plan}`,
      );
    }
  });
});
