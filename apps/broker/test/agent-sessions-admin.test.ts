/**
 * The operator's view of agent sessions (issue #21, the console's Sessions page), through HTTP on
 * either database: `GET /admin/v1/agent-sessions` lists every agent's sessions, newest first,
 * filtered and paged, never a token; `DELETE /admin/v1/agent-sessions/{id}` closes any of them.
 * Read-only keys list; only full keys close.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { assertProblem, createAgentWithToken, json, startBroker, type TestBroker } from './harness.ts';

interface Session {
  session_id: string;
  agent_id: string;
  status: string;
  acting_for: string | null;
  scopes_granted: string[];
}

describe('GET and DELETE /admin/v1/agent-sessions', () => {
  let broker: TestBroker;
  let clock = Date.now();
  let readKey: string;
  const call = async (options: Parameters<TestBroker['request']>[0], expect?: number) => {
    const res = await broker.request(options);
    if (expect !== undefined)
      assert.equal(res.statusCode, expect, `${options.method} ${options.url}: ${res.body}`);
    return res;
  };
  after(() => broker.close());
  const list = async (query = '', key?: string) =>
    json<{ sessions: Session[]; next_cursor: string | null }>(
      await call({ method: 'GET', url: `/admin/v1/agent-sessions${query}`, key }, 200),
    );
  const opened: string[] = [];

  before(async () => {
    broker = await startBroker({ now: () => clock });
    readKey = json<{ key: string }>(
      await call(
        { method: 'POST', url: '/admin/v1/admin-keys', payload: { name: 'monitor', scope: 'read' } },
        201,
      ),
    ).key;
    await call({ method: 'POST', url: '/admin/v1/scopes', payload: { name: 'crm:read' } }, 201);
    for (const name of ['agent-a', 'agent-b']) {
      const agent = await createAgentWithToken(broker, name, { allowed_scopes: ['crm:read'] });
      for (let i = 0; i < (name === 'agent-a' ? 3 : 1); i++) {
        clock += 1000;
        const res = await call(
          {
            method: 'POST',
            url: '/v1/agent-sessions',
            key: null,
            headers: { authorization: `Bearer ${agent.token}` },
            payload: { scopes: ['crm:read'], ttl_seconds: 600 },
          },
          201,
        );
        opened.push(json<{ session_id: string; session_token: string }>(res).session_id);
      }
    }
    // An on-behalf-of session (opening one needs a trusted issuer's user token: agent-obo.test.ts).
    const a = await broker.container.db.kysely
      .selectFrom('agents')
      .select('id')
      .where('agent_id', '=', 'agent-b')
      .executeTakeFirstOrThrow();
    const t = clock + 1000;
    await broker.container.db.kysely
      .insertInto('agent_sessions')
      .values({
        id: randomUUID(),
        agent_uuid: a.id,
        connection_id: null,
        scopes: JSON.stringify(['crm:read']),
        obo: JSON.stringify({
          user_id: 'carol',
          tenant_id: 't1',
          clearance_level: null,
          issuer: 'https://idp',
        }),
        created_at: t,
        expires_at: t + 600_000,
        closed_at: null,
      })
      .execute();
  });

  it('lists every agent session newest first, never a token; filters; a read key may list', async () => {
    const res = await call({ method: 'GET', url: '/admin/v1/agent-sessions', key: readKey }, 200);
    assert.ok(!/session_token|access_token|eyJ/.test(res.body), 'no token in the list');
    const all = json<{ sessions: Session[] }>(res).sessions;
    assert.equal(all.length, 5);
    assert.deepEqual(
      all.slice(1).map((x) => x.session_id),
      [...opened].reverse(),
    );
    assert.deepEqual(all[0]!.acting_for, 'carol');
    assert.deepEqual(
      (await list('?agent=agent-a')).sessions.map((x) => x.session_id),
      opened.slice(0, 3).reverse(),
    );
    assert.deepEqual(
      (await list('?acting_for=carol')).sessions.map((x) => x.agent_id),
      ['agent-b'],
    );
    assert.equal((await list('?acting_for=nobody')).sessions.length, 0);
    assertProblem(
      await call({ method: 'GET', url: '/admin/v1/agent-sessions?agent=ghost' }),
      404,
      'agent_not_found',
    );
  });

  it('pages with the cursor, each session once', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: Awaited<ReturnType<typeof list>> = await list(
        `?limit=2${cursor ? `&cursor=${cursor}` : ''}`,
      );
      seen.push(...page.sessions.map((x) => x.session_id));
      cursor = page.next_cursor;
      pages++;
    } while (cursor !== null);
    assert.equal(pages, 3);
    assert.equal(new Set(seen).size, 5);
    assertProblem(
      await call({ method: 'GET', url: '/admin/v1/agent-sessions?cursor=bogus' }),
      400,
      'invalid_request',
    );
    // A NUL byte (which PostgreSQL refuses in text) is a bad request, never a 500.
    for (const query of ['acting_for=a%00b', 'agent=a%00b', 'cursor=%00'])
      assertProblem(
        await call({ method: 'GET', url: `/admin/v1/agent-sessions?${query}` }),
        400,
        'invalid_request',
      );
  });

  it('closes a session (full key only); status filters see it', async () => {
    const id = opened[0]!;
    assertProblem(
      await call({ method: 'DELETE', url: `/admin/v1/agent-sessions/${id}`, key: readKey }),
      403,
      'forbidden',
    );
    const closed = json<Session>(
      await call({ method: 'DELETE', url: `/admin/v1/agent-sessions/${id}` }, 200),
    );
    assert.equal(closed.status, 'closed');
    assert.deepEqual(
      (await list('?status=closed')).sessions.map((x) => x.session_id),
      [id],
    );
    assert.equal((await list('?status=active')).sessions.length, 4);
    clock += 3_600_000;
    assert.equal((await list('?status=expired')).sessions.length, 4);
    const events = json<{ events: { actor: string }[] }>(
      await call({
        method: 'GET',
        url: `/audit?event_type=agent.session_closed&resource=agent_session:${id}`,
      }),
    ).events;
    assert.deepEqual(
      events.map((e) => e.actor),
      ['admin-key:env:test'],
    );
    assertProblem(
      await call({ method: 'DELETE', url: `/admin/v1/agent-sessions/${randomUUID()}` }),
      404,
      'session_not_found',
    );
  });
});
