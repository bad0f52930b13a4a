/**
 * The admin endpoints the console needed (issue #21), through HTTP on either database: the calling
 * key (`GET /admin/v1/admin-keys/current`), one connection (`GET /connections/{id}`), a refresh
 * that answers no credential (`POST /admin/v1/connections/{id}/refresh`), the audit chain's
 * verification in bounded steps (`GET /audit/verify`); every agent's sessions are in
 * agent-sessions-admin.test.ts. Read-only keys read; only full keys change.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { assertProblem, json } from './harness.ts';
import { Scenario } from './oauth-scenario.ts';

interface ConnectionView {
  id: string;
  workspace_id: string;
  provider_name: string;
  status: string;
  scopes: string[];
  last_refreshed_at: string | null;
  access_expires_at: string | null;
}
interface Verification {
  ok: boolean;
  checked: number;
  from_seq: number;
  to_seq: number;
  complete: boolean;
  next_from_seq: number | null;
  head_seq: number;
  broken_at: number | null;
  reason: string | null;
}

describe('admin API for the console', { timeout: 120_000 }, () => {
  const s = new Scenario();
  let readKey: string;
  let oauthId: string;
  let staticId: string;

  before(async () => {
    await s.start();
    const created = await s.call(
      { method: 'POST', url: '/admin/v1/admin-keys', payload: { name: 'monitor', scope: 'read' } },
      201,
    );
    readKey = json<{ key: string }>(created).key;
    oauthId = await s.connect('idp-discovered', 'alice');
    await s.call(
      { method: 'POST', url: '/providers', payload: { profile: { name: 'crm', auth_type: 'api_key' } } },
      201,
    );
    const started = json<{ state: string; connection_id: string }>(
      await s.call(
        {
          method: 'POST',
          url: '/v1/request-connection',
          payload: { user_id: 'bob', provider_name: 'crm', return_url: 'http://localhost:3000/done' },
        },
        200,
      ),
    );
    await s.call(
      {
        method: 'POST',
        url: '/v1/capture-credential',
        key: null,
        payload: { state: started.state, credentials: { api_key: 'secret-bob-key' } },
      },
      200,
    );
    staticId = started.connection_id;
  });
  after(() => s.close());

  describe('GET /admin/v1/admin-keys/current', () => {
    it('names the calling key and its scope, for environment and stored keys alike', async () => {
      assert.deepEqual(json(await s.call({ method: 'GET', url: '/admin/v1/admin-keys/current' }, 200)), {
        id: 'env:test',
        name: 'env:test',
        scope: 'full',
        source: 'environment',
      });
      const me = json<{ id: string; name: string; scope: string; source: string }>(
        await s.call({ method: 'GET', url: '/admin/v1/admin-keys/current', key: readKey }, 200),
      );
      assert.equal(me.name, 'monitor');
      assert.equal(me.scope, 'read');
      assert.equal(me.source, 'stored');
      assert.equal(me.id, readKey.slice(4, 20), 'the stored id (nxa_<id>_<secret>), never the key');
      assert.ok(!JSON.stringify(me).includes(readKey.slice(21)));
    });

    it('refuses an agent-scope key, and the name "current" for a new key', async () => {
      const agentKey = json<{ key: string }>(
        await s.call(
          { method: 'POST', url: '/admin/v1/admin-keys', payload: { name: 'robot', scope: 'agent' } },
          201,
        ),
      ).key;
      assertProblem(
        await s.call({ method: 'GET', url: '/admin/v1/admin-keys/current', key: agentKey }),
        403,
        'forbidden',
      );
      assertProblem(
        await s.call({ method: 'POST', url: '/admin/v1/admin-keys', payload: { name: 'current' } }),
        409,
        'admin_key_name_taken',
      );
      assertProblem(
        await s.call({ method: 'GET', url: '/admin/v1/admin-keys/current', key: null }),
        401,
        'unauthorized',
      );
    });
  });

  describe('GET /connections/{id}', () => {
    it('answers the connection as the list does, never its credential; a read key may read it', async () => {
      const listed = json<{ connections: ConnectionView[] }>(
        await s.call({ method: 'GET', url: '/connections?workspace_id=alice' }, 200),
      ).connections;
      const res = await s.call({ method: 'GET', url: `/connections/${oauthId}`, key: readKey }, 200);
      assert.deepEqual(json(res), listed[0]);
      const stored = await s.stored(oauthId);
      assert.ok(!res.body.includes(stored.access_token));
      assert.ok(!res.body.includes(stored.refresh_token!));
      const other = await s.call({ method: 'GET', url: `/connections/${staticId}` }, 200);
      assert.equal(json<ConnectionView>(other).provider_name, 'crm');
      assert.ok(!other.body.includes('secret-bob-key'));
    });

    it('404 connection_not_found for an unknown id, 400 for a malformed one', async () => {
      assertProblem(
        await s.call({ method: 'GET', url: `/connections/${randomUUID()}` }),
        404,
        'connection_not_found',
      );
      assertProblem(await s.call({ method: 'GET', url: '/connections/not-a-uuid' }), 400, 'invalid_request');
    });
  });

  describe('POST /admin/v1/connections/{id}/refresh', () => {
    it('refreshes at the provider and answers the connection without the new credential', async () => {
      const before = await s.stored(oauthId);
      const reads = async () =>
        json<{ events: unknown[] }>(
          await s.call({
            method: 'GET',
            url: `/audit?event_type=connection.token_read&resource=connection:${oauthId}`,
          }),
        ).events.length;
      const readsBefore = await reads();
      s.clock += 5_000;
      const res = await s.call({ method: 'POST', url: `/admin/v1/connections/${oauthId}/refresh` }, 200);
      const after = await s.stored(oauthId);
      assert.notEqual(after.access_token, before.access_token, 'the provider issued a new token');
      const view = json<ConnectionView>(res);
      assert.equal(view.id, oauthId);
      assert.equal(view.status, 'active');
      assert.equal(view.last_refreshed_at, new Date(s.clock).toISOString());
      for (const token of [after.access_token, after.refresh_token!, before.access_token])
        assert.ok(!res.body.includes(token), 'no credential in the answer');
      assert.ok(!('access_token' in view) && !('credentials' in view));
      assert.equal(await reads(), readsBefore, 'no credential was read, so no token_read event');
      const asked = json<{ events: { actor: string }[] }>(
        await s.call({
          method: 'GET',
          url: `/audit?event_type=connection.refresh_requested&resource=connection:${oauthId}`,
        }),
      ).events;
      assert.deepEqual(
        asked.map((e) => e.actor),
        ['admin-key:env:test'],
        'who asked for the refresh is audited',
      );
    });

    it('needs a full key; refuses what cannot be refreshed like the token route', async () => {
      assertProblem(
        await s.call({ method: 'POST', url: `/admin/v1/connections/${oauthId}/refresh`, key: readKey }),
        403,
        'forbidden',
      );
      assertProblem(
        await s.call({ method: 'POST', url: `/admin/v1/connections/${staticId}/refresh` }),
        409,
        'refresh_not_supported',
      );
      assertProblem(
        await s.call({ method: 'POST', url: `/admin/v1/connections/${randomUUID()}/refresh` }),
        404,
        'connection_not_found',
      );
    });
  });

  describe('GET /audit/verify', () => {
    const verify = async (query = '', key?: string) =>
      json<Verification>(await s.call({ method: 'GET', url: `/audit/verify${query}`, key }, 200));

    it('verifies the whole chain, or a bounded step at a time until complete', async () => {
      const all = await verify('', readKey);
      assert.equal(all.ok, true);
      assert.equal(all.complete, true);
      assert.equal(all.from_seq, 1);
      assert.equal(all.to_seq, all.head_seq);
      assert.equal(all.checked, all.head_seq);
      assert.equal(all.next_from_seq, null);
      assert.ok(all.head_seq > 5, `${all.head_seq} events`);

      let step = await verify('?limit=2');
      assert.deepEqual(
        [step.ok, step.complete, step.checked, step.to_seq, step.next_from_seq],
        [true, false, 2, 2, 3],
      );
      let checked = step.checked;
      while (step.next_from_seq !== null) {
        step = await verify(`?from_seq=${step.next_from_seq}&limit=3`);
        assert.equal(step.ok, true);
        checked += step.checked;
      }
      assert.equal(step.complete, true);
      assert.ok(checked >= all.checked, 'the steps covered the chain (and events written since)');
      const beyond = await verify(`?from_seq=${step.head_seq + 1000}`);
      assert.deepEqual([beyond.ok, beyond.checked, beyond.complete], [true, 0, true]);
    });

    it('reports the first modified event, in a step that covers it and not in one that stops before', async () => {
      const db = s.broker.container.db.kysely;
      const target = await db
        .selectFrom('audit_events')
        .select(['seq', 'actor'])
        .where('seq', '=', 4)
        .executeTakeFirstOrThrow();
      await db.updateTable('audit_events').set({ actor: 'someone-else' }).where('seq', '=', 4).execute();
      try {
        const broken = await verify();
        assert.deepEqual([broken.ok, broken.broken_at, broken.complete], [false, 4, false]);
        assert.match(broken.reason ?? '', /modified/);
        assert.equal(broken.next_from_seq, null);
        assert.equal((await verify('?limit=3')).ok, true, 'events 1-3 are intact');
        assert.equal((await verify('?from_seq=2&limit=5')).broken_at, 4);
      } finally {
        await db.updateTable('audit_events').set({ actor: target.actor }).where('seq', '=', 4).execute();
      }
      assert.equal((await verify()).ok, true);
    });

    it('refuses a limit over its bound', async () => {
      assertProblem(
        await s.call({ method: 'GET', url: '/audit/verify?limit=100001' }),
        400,
        'invalid_request',
      );
      assertProblem(await s.call({ method: 'GET', url: '/audit/verify?from_seq=0' }), 400, 'invalid_request');
    });
  });

  describe('GET /admin/v1/user-secrets and …/{name}/versions', () => {
    it("lists one user's secrets and their versions for a full key, never a value", async () => {
      for (const value of ['first-value-91f3', 'second-value-77a1'])
        await s.call(
          { method: 'POST', url: '/api/v2/secrets?user_id=carol', payload: { name: 'stripe', value } },
          201,
        );
      const listed = await s.call({ method: 'GET', url: '/admin/v1/user-secrets?user_id=carol' }, 200);
      assert.deepEqual(
        json<{ secrets: { name: string; current_version: number }[] }>(listed).secrets.map((x) => [
          x.name,
          x.current_version,
        ]),
        [['stripe', 2]],
      );
      const versions = await s.call(
        { method: 'GET', url: '/admin/v1/user-secrets/stripe/versions?user_id=carol' },
        200,
      );
      assert.deepEqual(
        json<{ versions: { version: number }[] }>(versions).versions.map((v) => v.version),
        [2, 1],
      );
      for (const res of [listed, versions]) assert.doesNotMatch(res.body, /value-/);
      assert.equal(
        json<{ secrets: unknown[] }>(
          await s.call({ method: 'GET', url: '/admin/v1/user-secrets?user_id=nobody' }, 200),
        ).secrets.length,
        0,
      );
      assertProblem(
        await s.call({ method: 'GET', url: '/admin/v1/user-secrets/stripe/versions?user_id=nobody' }),
        404,
        'user_secret_not_found',
      );
      assertProblem(await s.call({ method: 'GET', url: '/admin/v1/user-secrets' }), 400, 'invalid_request');
      assertProblem(
        await s.call({ method: 'GET', url: '/admin/v1/user-secrets?user_id=carol', key: readKey }),
        403,
        'forbidden',
      );
    });
  });
});
