import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createAgentWithToken, json } from './harness.ts';
import { REDIRECT, RETURN, Scenario } from './oauth-scenario.ts';

/**
 * Sessions with provider scopes get a really narrowed provider token where the provider allows
 * narrowing on refresh (RFC 6749 §6): here a real OpenID provider with rotating refresh tokens.
 */
describe('down-scoped provider tokens for agent sessions', () => {
  const s = new Scenario();
  let connectionId: string;
  let agentToken: string;

  before(async () => {
    await s.start();
    const started = json<{ authUrl: string; connection_id: string }>(
      await s.call(
        {
          method: 'POST',
          url: '/v1/request-connection',
          payload: {
            user_id: 'narrow-user',
            provider_name: 'idp-basic',
            scopes: ['api:read', 'email'],
            return_url: RETURN,
          },
        },
        200,
      ),
    );
    const callback = await s.idp.consent(started.authUrl);
    assert.equal(callback.origin + callback.pathname, REDIRECT);
    await s.call({ method: 'GET', url: callback.pathname + callback.search, key: null }, 302);
    connectionId = started.connection_id;
    agentToken = (
      await createAgentWithToken(s.broker, 'narrow-bot', {
        allowed_scopes: ['api:read', 'email'],
        allowed_providers: ['idp-basic'],
        allowed_workspaces: ['narrow-user'],
      })
    ).token;
  });
  after(() => s.close());

  it("hands out a token narrowed by the provider, keeps the rotated refresh token, and leaves the connection's own token alone", async () => {
    const granted = JSON.parse(
      (await s.broker.container.connectionsStore.find(connectionId))!.scopes,
    ) as string[];
    assert.deepEqual(granted.sort(), ['api:read', 'email']);
    const full = await s.token(connectionId);
    const before = await s.stored(connectionId);
    const base = s.idp.counts.refresh_token;
    const res = await s.call({
      method: 'POST',
      url: '/v1/agent-sessions',
      key: null,
      headers: { authorization: `Bearer ${agentToken}` },
      payload: { scopes: ['api:read'], connection_id: connectionId },
    });
    assert.equal(res.statusCode, 201, res.body);
    const session = json<{ downscoped: boolean; access_token: string; access_token_scope: string }>(res);
    assert.equal(session.downscoped, true);
    assert.equal(session.access_token_scope, 'api:read');
    assert.notEqual(session.access_token, full.access_token);
    assert.equal(s.idp.counts.refresh_token - base, 1, 'one narrowing refresh at the provider');
    assert.ok(!res.body.includes(before.refresh_token!), 'no refresh token in the answer');

    const after = await s.stored(connectionId);
    assert.equal(after.access_token, before.access_token, "the connection's own token is unchanged");
    assert.notEqual(after.refresh_token, before.refresh_token, 'the rotated refresh token was kept');
    // The kept refresh token works: the connection still refreshes (a reused one would revoke the grant).
    s.clock += 5_000;
    await s.call({ method: 'POST', url: `/v1/refresh/${connectionId}` }, 200);
    assert.equal(
      json(await s.call({ method: 'GET', url: `/v1/check-connection/${connectionId}` }, 200)).status,
      'active',
    );
  });

  it('keeps the rotated refresh token of a narrowing answer it cannot use, and hands out nothing narrowed', async () => {
    const before = await s.stored(connectionId);
    const reused = s.idp.counts.refresh_reused;
    let sent: string | undefined;
    // The provider rotates and answers without an access token.
    s.idp.setTokenResponseRewrite(({ access_token: _, ...body }) => {
      sent = body.refresh_token as string;
      return body;
    });
    let res: Awaited<ReturnType<typeof s.call>>;
    try {
      res = await s.call({
        method: 'POST',
        url: '/v1/agent-sessions',
        key: null,
        headers: { authorization: `Bearer ${agentToken}` },
        payload: { scopes: ['api:read'], connection_id: connectionId },
      });
    } finally {
      s.idp.setTokenResponseRewrite(undefined);
    }
    assert.equal(res.statusCode, 201, res.body);
    assert.equal(json<{ downscoped: boolean }>(res).downscoped, false);
    assert.ok(sent !== undefined && sent !== before.refresh_token, 'the provider rotated the token');
    assert.equal((await s.stored(connectionId)).refresh_token, sent, 'the rotated refresh token was kept');
    s.clock += 60_000;
    await s.call({ method: 'POST', url: `/v1/refresh/${connectionId}` }, 200);
    assert.equal(s.idp.counts.refresh_reused, reused, 'no refresh token presented twice');
  });
});
