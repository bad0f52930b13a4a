/**
 * Hosted connect sessions (issue #21) over HTTP, on SQLite and PostgreSQL: creation and its
 * validation (stable codes), the grants of the caller, the token stored hashed, single use,
 * expiry, the pages' CSP, and a finish page that believes the database, never its query.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../src/config/load.ts';
import { assertProblem, createAgentWithToken, json, startBroker, type TestBroker } from './harness.ts';

const RETURN = 'http://localhost:3000/back';

interface Session {
  id: string;
  url: string;
  token: string;
  expires_at: string;
  providers: { id: string; name: string }[];
}

describe('connect sessions (POST /v1/connect-sessions and the hosted pages)', () => {
  let broker: TestBroker;
  let keyId = '';
  const create = (payload: Record<string, unknown>, key?: string | null) =>
    broker.request({
      method: 'POST',
      url: '/v1/connect-sessions',
      payload,
      ...(key === undefined ? {} : { key }),
    });
  const page = (url: string) => broker.request({ method: 'GET', url, key: null });
  const local = (absolute: string) => {
    const u = new URL(absolute);
    return `${u.pathname}${u.search}`;
  };

  before(async () => {
    broker = await startBroker();
    const provider = (name: string, extra: Record<string, unknown> = {}) =>
      broker.request({
        method: 'POST',
        url: '/providers',
        payload: {
          profile: {
            name,
            auth_type: 'api_key',
            description: `${name} API`,
            params: {
              capture_help: `Create a key in ${name}'s settings.`,
              docs_url: `https://docs.example/${name}`,
            },
            ...extra,
          },
        },
      });
    const keyed = await provider('keyed');
    assert.equal(keyed.statusCode, 201, keyed.body);
    keyId = json<{ id: string }>(keyed).id;
    assert.equal((await provider('other')).statusCode, 201);
    const tenant = await broker.request({
      method: 'POST',
      url: '/providers',
      payload: {
        profile: {
          name: 'tenanted',
          auth_type: 'api_key',
          api_base_url: 'https://api.tenanted.example/{tenant}',
          params: { connection_parameters: { tenant: { title: 'Tenant', pattern: '^[a-z]{1,20}$' } } },
        },
      },
    });
    assert.equal(tenant.statusCode, 201, tenant.body);
  });
  after(() => broker?.close());

  it('creates a session whose token is stored only as a hash, and offers every provider the caller may connect', async () => {
    const res = await create({ user_id: 'alice', return_url: RETURN });
    assert.equal(res.statusCode, 201, res.body);
    const s = json<Session>(res);
    assert.match(s.token, /^ncs_[A-Za-z0-9_-]{43}$/);
    assert.equal(new URL(s.url).pathname, '/connect/session');
    assert.equal(new URL(s.url).searchParams.get('token'), s.token);
    const ttl = Date.parse(s.expires_at) - Date.now();
    assert.ok(ttl > 14 * 60_000 && ttl <= 15 * 60_000, `15 minutes by default, got ${ttl} ms`);
    // A provider with a required per-connection value cannot be offered without connection_config.
    assert.deepEqual(s.providers.map((p) => p.name).sort(), ['keyed', 'other']);
    const rows = await broker.container.db.kysely.selectFrom('connect_sessions').selectAll().execute();
    const row = rows.find((r) => r.id === s.id)!;
    assert.ok(row.token_hash.length === 64 && row.token_hash !== s.token);
    assert.ok(!JSON.stringify(rows).includes(s.token), 'the token itself is never stored');

    const shown = await page(local(s.url));
    assert.equal(shown.statusCode, 200);
    const csp = shown.headers['content-security-policy'] as string;
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /img-src 'none'/);
    assert.doesNotMatch(csp, /script-src/, 'the offer page has no script at all');
    assert.equal(shown.headers['x-frame-options'], 'DENY');
    assert.doesNotMatch(shown.body, /<script/);
    assert.match(shown.body, /keyed API/);
    // A link opened from a mail or chat client that added its own parameters still works.
    const tracked = await page(`${local(s.url)}&utm_source=mail&fbclid=x1`);
    assert.equal(tracked.statusCode, 200, tracked.body);
    assert.match(tracked.body, /keyed API/);
    assert.match(shown.body, /<strong>other<\/strong>/);

    // Cancel on the offer page: a form post that uses the session up; the finish page says
    // 'denied' to the opener and 'cancelled' to the app.
    assert.match(csp, /form-action 'self'/);
    const field =
      /<form method="post" action="\/connect\/session\/cancel"><input type="hidden" name="token" value="([^"]+)">/.exec(
        shown.body,
      );
    assert.equal(field?.[1], s.token);
    const posted = await broker.request({
      method: 'POST',
      url: '/connect/session/cancel',
      key: null,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({ token: s.token }).toString(),
    });
    assert.equal(posted.statusCode, 303, posted.body);
    const cancelled = await page(posted.headers.location as string);
    assert.equal(cancelled.statusCode, 200);
    assert.match(cancelled.body, /<h1>Not connected<\/h1>/);
    assert.match(cancelled.body, /href="http:\/\/localhost:3000\/back\?status=failed&amp;error=cancelled"/);
    assert.match(cancelled.body, /&quot;reason&quot;:&quot;denied&quot;/);
    // Used up: nothing can be picked from it any more.
    assert.match((await page(local(s.url))).body, /This link has expired/);
    const picked = await page(`/connect/session/pick?token=${s.token}&provider=${keyId}`);
    assert.match(picked.body, /error=session_expired/);
  });

  it('cancel on the capture form fails the connection and uses the link up', async () => {
    const s = json<Session>(await create({ user_id: 'frank', return_url: RETURN, providers: ['keyed'] }));
    const picked = await page(`/connect/session/pick?token=${s.token}&provider=${keyId}&fbclid=x2`);
    assert.equal(picked.statusCode, 303, picked.body);
    const capture = new URL(picked.headers.location as string);
    const form = await page(local(capture.toString()));
    const state = capture.searchParams.get('state')!;
    assert.match(form.body, /<form method="post" action="\/connect\/capture\/cancel" class="cancel">/);
    const posted = await broker.request({
      method: 'POST',
      url: '/connect/capture/cancel',
      key: null,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({ state }).toString(),
    });
    assert.equal(posted.statusCode, 303, posted.body);
    const finish = new URL(posted.headers.location as string);
    assert.equal(finish.pathname, '/connect/finish');
    assert.equal(finish.searchParams.get('error'), 'cancelled');
    assert.match((await page(local(finish.toString()))).body, /<h1>Not connected<\/h1>/);
    const [row] = await broker.container.db.kysely
      .selectFrom('connections')
      .select(['status', 'last_error'])
      .where('workspace_id', '=', 'frank')
      .execute();
    assert.deepEqual({ ...row }, { status: 'failed', last_error: 'cancelled' });
    // The link is used up: the form is gone, and a submission or a second cancel finds nothing.
    assert.equal((await page(local(capture.toString()))).statusCode, 404);
    const again = await broker.request({
      method: 'POST',
      url: '/connect/capture',
      key: null,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({ state, api_key: 'k-after-cancel' }).toString(),
    });
    assert.equal(again.statusCode, 404, again.body);
  });

  it('refuses bad input with stable codes, and writes nothing', async () => {
    const before = (await broker.container.db.kysely.selectFrom('connect_sessions').select('id').execute())
      .length;
    assertProblem(await create({ return_url: RETURN }), 400, 'invalid_request', 'no user_id');
    assertProblem(
      await create({ user_id: 'a', return_url: RETURN, extra: 1 }),
      400,
      'invalid_request',
      'unknown key',
    );
    assertProblem(await create({ user_id: 'a', return_url: RETURN, providers: [] }), 400, 'invalid_request');
    assertProblem(await create({ user_id: 'a', return_url: 'javascript:alert(1)' }), 400, 'invalid_request');
    assertProblem(
      await create({ user_id: 'a', return_url: 'https://evil.example/x' }),
      400,
      'return_url_not_allowed',
    );
    assertProblem(
      await create({ user_id: 'a', return_url: RETURN, providers: ['no-such'] }),
      404,
      'provider_not_found',
    );
    assertProblem(
      await create({ user_id: 'a', return_url: RETURN, providers: ['tenanted'] }),
      400,
      'invalid_connection_config',
      'a required per-connection value is missing',
    );
    assertProblem(
      await create({
        user_id: 'a',
        return_url: RETURN,
        providers: ['keyed'],
        connection_config: { tenant: 'x' },
      }),
      400,
      'invalid_connection_config',
      'a value the provider does not declare',
    );
    assertProblem(await create({ user_id: 'a', return_url: RETURN }, null), 401, 'unauthorized');
    const after = (await broker.container.db.kysely.selectFrom('connect_sessions').select('id').execute())
      .length;
    assert.equal(after, before);
    // With the value it needs, the provider is offered (and the session carries the value).
    const ok = await create({
      user_id: 'a',
      return_url: RETURN,
      providers: ['tenanted'],
      connection_config: { tenant: 'acme' },
    });
    assert.equal(ok.statusCode, 201, ok.body);
  });

  it("follows the agent's grant: its users only, its providers only", async () => {
    const agent = await createAgentWithToken(broker, 'connect-agent', {
      allowed_providers: ['keyed'],
      allowed_workspaces: ['alice'],
    });
    const as = (payload: Record<string, unknown>) =>
      broker.request({
        method: 'POST',
        url: '/v1/connect-sessions',
        payload,
        key: null,
        headers: { authorization: `Bearer ${agent.token}` },
      });
    const mine = await as({ user_id: 'alice', return_url: RETURN });
    assert.equal(mine.statusCode, 201, mine.body);
    assert.deepEqual(json<Session>(mine).providers, [{ id: keyId, name: 'keyed' }]);
    assertProblem(await as({ user_id: 'bob', return_url: RETURN }), 403, 'forbidden');
    assertProblem(
      await as({ user_id: 'alice', return_url: RETURN, providers: ['other'] }),
      404,
      'provider_not_found',
    );

    const none = await createAgentWithToken(broker, 'connect-agent-none', {
      allowed_providers: [],
      allowed_workspaces: ['*'],
    });
    const refused = await broker.request({
      method: 'POST',
      url: '/v1/connect-sessions',
      payload: { user_id: 'alice', return_url: RETURN },
      key: null,
      headers: { authorization: `Bearer ${none.token}` },
    });
    assertProblem(refused, 400, 'connect_no_providers');
  });

  it('works once: the pick starts the capture flow; another pick or a reload finds it used', async () => {
    const s = json<Session>(
      await create({ user_id: 'carol', return_url: RETURN, providers: ['keyed', 'other'] }),
    );
    const otherId = s.providers.find((p) => p.name === 'other')!.id;
    const pickUrl = `/connect/session/pick?token=${s.token}&provider=${keyId}`;
    // A double click: two picks at once start one connection, and both go to its capture page.
    const [picked, twice] = await Promise.all([page(pickUrl), page(pickUrl)]);
    assert.equal(picked.statusCode, 303, picked.body);
    assert.equal(twice.statusCode, 303, twice.body);
    assert.equal(twice.headers.location, picked.headers.location);
    const capture = new URL(picked.headers.location as string);
    assert.equal(capture.pathname, '/connect/capture');
    const started = await broker.container.db.kysely
      .selectFrom('connections')
      .select('id')
      .where('workspace_id', '=', 'carol')
      .execute();
    assert.equal(started.length, 1, 'one pending connection');

    // The capture page: the provider's help and docs link, and a cancel button (its own test below).
    const form = await page(local(capture.toString()));
    assert.equal(form.statusCode, 200);
    assert.match(form.body, /Create a key in keyed&#39;s settings\./);
    assert.match(form.body, /href="https:\/\/docs\.example\/keyed"/);
    assert.match(
      form.body,
      /<button type="submit" class="secondary">Cancel and return to the application<\/button>/,
    );

    for (const again of [`/connect/session/pick?token=${s.token}&provider=${otherId}`, local(s.url)]) {
      const used = await page(again);
      assert.equal(used.statusCode, 200);
      assert.match(used.body, /This link has expired/);
      assert.match(used.body, /status=failed&amp;error=session_expired/);
    }

    // The finish page does not believe a forged success in its query.
    const forged = await page(`/connect/finish?session=${s.id}&status=success&connection_id=forged`);
    assert.doesNotMatch(forged.body, /Connected/);
    assert.doesNotMatch(forged.body, /forged/);

    const submitted = await broker.request({
      method: 'POST',
      url: '/connect/capture',
      key: null,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({
        state: capture.searchParams.get('state')!,
        api_key: 'k-123456',
      }).toString(),
    });
    assert.equal(submitted.statusCode, 303, submitted.body);
    const finish = new URL(submitted.headers.location as string);
    assert.equal(finish.pathname, '/connect/finish');
    const done = await page(local(finish.toString()));
    assert.equal(done.statusCode, 200);
    assert.match(done.body, /<h1>Connected<\/h1>/);
    const connectionId = finish.searchParams.get('connection_id')!;
    assert.match(
      done.body,
      new RegExp(
        `href="http://localhost:3000/back\\?status=success&amp;connection_id=${connectionId}&amp;provider=keyed"`,
      ),
    );
    assert.match(done.headers['content-security-policy'] as string, /script-src 'nonce-[^']+'/);
    assert.match(done.body, /<script nonce="[^"]+" src="\/connect\/assets\/finish\.js"><\/script>/);
    assert.match(done.body, /data-origin="http:\/\/localhost:3000"/);
    const repeated = await page(pickUrl);
    assert.match(repeated.body, /error=session_expired/, 'once connected, the pick is used up');
    const check = await broker.request({ method: 'GET', url: `/v1/check-connection/${connectionId}` });
    assert.equal(json<{ status: string }>(check).status, 'active');
    const script = await page('/connect/assets/finish.js');
    assert.equal(script.statusCode, 200);
    assert.match(script.headers['content-type'] as string, /javascript/);
  });

  it('works whatever the spelling of BASE_URL (host case, default port)', async () => {
    const spelled = await startBroker({ env: { BASE_URL: 'http://Nexus.Example.test:80' } });
    try {
      const made = await spelled.request({
        method: 'POST',
        url: '/providers',
        payload: { profile: { name: 'keyed', auth_type: 'api_key' } },
      });
      assert.equal(made.statusCode, 201, made.body);
      const created = await spelled.request({
        method: 'POST',
        url: '/v1/connect-sessions',
        payload: { user_id: 'erin', return_url: RETURN },
      });
      assert.equal(created.statusCode, 201, created.body);
      const s = json<Session>(created);
      const picked = await spelled.request({
        method: 'GET',
        url: `/connect/session/pick?token=${s.token}&provider=${s.providers[0]!.id}`,
        key: null,
      });
      assert.equal(picked.statusCode, 303, `the pick starts the capture flow: ${picked.body.slice(0, 300)}`);
      assert.equal(new URL(picked.headers.location as string).pathname, '/connect/capture');
    } finally {
      await spelled.close();
    }
  });

  it('checks the branding variables when the broker starts', () => {
    const problems = (env: Record<string, string>) => {
      try {
        loadConfig(env, '/srv');
        return [];
      } catch (error) {
        assert.ok(error instanceof ConfigError);
        return error.problems.map((p) => p.split(':')[0]);
      }
    };
    assert.deepEqual(problems({ NEXUS_CONNECT_BRAND_COLOR: 'purple' }), ['NEXUS_CONNECT_BRAND_COLOR']);
    assert.deepEqual(problems({ NEXUS_CONNECT_SESSION_TTL_SECONDS: '5' }), [
      'NEXUS_CONNECT_SESSION_TTL_SECONDS',
    ]);
    assert.deepEqual(problems({ NEXUS_CONNECT_BRAND_LOGO_URL: 'ftp://x.example/l.png' }), [
      'NEXUS_CONNECT_BRAND_LOGO_URL',
    ]);
    const production = {
      NEXUS_ENV: 'production',
      BASE_URL: 'https://nexus.example.com',
      NEXUS_CONNECT_BRAND_LOGO_URL: 'http://cdn.example.com/logo.png',
    };
    assert.ok(problems(production).includes('NEXUS_CONNECT_BRAND_LOGO_URL'), 'https in production');
    const config = loadConfig({ NEXUS_CONNECT_BRAND_COLOR: '#AABBCC' }, '/srv');
    assert.deepEqual(config.connect, {
      sessionTtlMs: 900_000,
      brand: { name: 'Nexus', logoUrl: undefined, color: '#aabbcc' },
    });
  });

  it('expires: an old session shows the expired page and cannot be used', async () => {
    const s = json<Session>(await create({ user_id: 'dave', return_url: RETURN }));
    await broker.container.db.kysely
      .updateTable('connect_sessions')
      .set({ expires_at: Date.now() - 1000 })
      .where('id', '=', s.id)
      .execute();
    const shown = await page(local(s.url));
    assert.match(shown.body, /This link has expired/);
    const picked = await page(`/connect/session/pick?token=${s.token}&provider=${keyId}`);
    assert.equal(picked.statusCode, 200);
    assert.match(picked.body, /error=session_expired/);
    const row = await broker.container.db.kysely
      .selectFrom('connect_sessions')
      .select(['used_at', 'connection_id'])
      .where('id', '=', s.id)
      .executeTakeFirstOrThrow();
    assert.deepEqual({ ...row }, { used_at: null, connection_id: null });
    assert.equal((await page('/connect/session?token=ncs_unknown')).statusCode, 404);
  });
});
