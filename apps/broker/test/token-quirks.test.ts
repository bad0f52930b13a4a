/**
 * Provider quirks are settings (decision 0015, issue #20): each handler tested once against a real
 * OpenID provider (oidc-provider) made to behave like the providers that have it. The token
 * endpoint's own answers are reshaped on their way out (oidc-fixture.ts, setTokenResponseRewrite),
 * so the tokens are still the provider's, and a refresh works only with the refresh token it
 * issued. Runs on SQLite and on PostgreSQL (DIALECT).
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import type { Logger } from 'pino';
import { startBackgroundJobs } from '../src/modules/worker/runner.ts';
import { assertProblem, DIALECT, json } from './harness.ts';
import { RETURN, Scenario, type Token } from './oauth-scenario.ts';

type Answer = Record<string, unknown>;

describe(`provider quirks against a real OpenID provider (${DIALECT})`, () => {
  const s = new Scenario();
  // PKCE optional and comma-separated scopes read, as GitHub and Slack do; refresh tokens not
  // rotated, so that one kept by the broker stays valid.
  before(() => s.start({ rotate: false, idp: { pkceRequired: false, readsCommaScopes: true } }));
  afterEach(() => s.idp.setTokenResponseRewrite(undefined));
  after(() => s.close());

  /** An oauth2 provider on the fixture with explicit URLs and these quirk settings. */
  const register = async (name: string, params: Answer, scopes = ['api:read']) => {
    await s.call(
      {
        method: 'POST',
        url: '/providers',
        payload: {
          profile: {
            name,
            client_id: 'client-post',
            client_secret: 'client-post-secret',
            auth_url: s.idp.endpoints.authorization,
            token_url: s.idp.endpoints.token,
            scopes,
            params,
          },
        },
      },
      201,
    );
  };

  /** request-connection, then the provider's pages; the return URL the broker sent the user to. */
  const consent = async (provider: string, workspace: string) => {
    const started = json<{ authUrl: string; connection_id: string }>(
      await s.call(
        {
          method: 'POST',
          url: '/v1/request-connection',
          payload: { user_id: workspace, provider_name: provider, return_url: RETURN },
        },
        200,
      ),
    );
    const callback = await s.idp.consent(started.authUrl);
    const res = await s.call({ method: 'GET', url: callback.pathname + callback.search, key: null }, 302);
    return {
      id: started.connection_id,
      authUrl: new URL(started.authUrl),
      back: new URL(res.headers.location as string),
    };
  };

  const connect = async (provider: string, workspace: string) => {
    const { id, back } = await consent(provider, workspace);
    assert.equal(back.searchParams.get('status'), 'success', back.href);
    return id;
  };

  /** The provider's answers as it gave them (before reshaping), newest last. */
  const answers: Answer[] = [];
  const reshape = (change: (body: Answer) => Answer) => (body: Answer) => {
    answers.push(body);
    return change(body);
  };
  const lastAnswer = () => answers.at(-1)!;

  const status = async (id: string) =>
    json<{ status: string }>(await s.call({ method: 'GET', url: `/v1/check-connection/${id}` }, 200)).status;
  const refresh = async (id: string) => {
    // Forced refreshes of one connection are at least 30 s apart (decision 0012).
    s.clock += 31_000;
    return json<Token>(await s.call({ method: 'POST', url: `/v1/refresh/${id}` }, 200));
  };
  const expiresIn = (seconds: number) => new Date(s.clock + seconds * 1000).toISOString();
  const listed = async (provider: string) =>
    json<{ connections: { id: string; scopes: string[]; access_expires_at: string | null }[] }>(
      await s.call({ method: 'GET', url: `/connections?provider=${provider}` }, 200),
    ).connections;

  it('pkce: false leaves the challenge out of the authorize URL and the verifier out of the exchange', async () => {
    await register('quirk-no-pkce', { pkce: false });
    const { id, authUrl, back } = await consent('quirk-no-pkce', 'user-pkce');
    assert.equal(authUrl.searchParams.get('code_challenge'), null);
    assert.equal(authUrl.searchParams.get('code_challenge_method'), null);
    // The provider refuses a code_verifier for a code issued without a challenge.
    assert.equal(back.searchParams.get('status'), 'success', back.href);
    assert.equal(await status(id), 'active');
    assert.ok((await s.token(id)).access_token);
  });

  it('form-encoded answers (GitHub without Accept: application/json) at consent and refresh', async () => {
    await register('quirk-form', { token_response: { form_encoded: true } });
    s.idp.setTokenResponseRewrite(
      reshape((b) => b),
      { form: true },
    );
    const id = await connect('quirk-form', 'user-form');
    const issued = lastAnswer();
    const token = await s.token(id);
    assert.equal(token.access_token, issued.access_token);
    assert.equal(token.expires_at, expiresIn(3600), 'expires_in read from the form text');
    // A form body whatever its content type says (form_encoded: true).
    s.idp.setTokenResponseRewrite(
      reshape((b) => b),
      { form: true, contentType: 'text/plain; charset=utf-8' },
    );
    const refreshed = await refresh(id);
    assert.equal(refreshed.access_token, lastAnswer().access_token);
    assert.notEqual(refreshed.access_token, issued.access_token);
    assert.equal(refreshed.expires_at, expiresIn(3600));
    assert.equal((await s.stored(id)).refresh_token, issued.refresh_token);
  });

  it('tokens under authed_user (Slack user tokens): the user’s token, not the bot’s, and its refresh token', async () => {
    await register('quirk-slack', { token_response: { tokens_at: 'authed_user' } });
    const slack = (b: Answer): Answer => ({
      ok: true,
      app_id: 'A0001',
      access_token: 'xoxb-bot-token-not-the-users',
      token_type: 'bot',
      scope: 'commands',
      authed_user: {
        id: 'U0001',
        access_token: b.access_token,
        token_type: 'user',
        scope: b.scope,
        expires_in: b.expires_in,
        refresh_token: b.refresh_token,
      },
    });
    s.idp.setTokenResponseRewrite(reshape(slack));
    const id = await connect('quirk-slack', 'user-slack');
    const issued = lastAnswer();
    const token = await s.token(id);
    assert.equal(token.access_token, issued.access_token);
    assert.equal(token.expires_at, expiresIn(3600));
    assert.equal((await s.stored(id)).refresh_token, issued.refresh_token);
    const [row] = await listed('quirk-slack');
    assert.deepEqual(row!.scopes, String(issued.scope).split(' '), 'the user’s scopes');
    // The refresh spends the nested refresh token: the provider accepts it.
    const nested = await refresh(id);
    assert.equal(nested.access_token, lastAnswer().access_token);
    // A refresh answered at the top level (token_type "user") is read as it is.
    s.idp.setTokenResponseRewrite(reshape((b) => ({ ...b, token_type: 'user' })));
    const top = await refresh(id);
    assert.equal(top.access_token, lastAnswer().access_token);
    assert.equal(top.expires_at, expiresIn(3600));
    assert.equal(await status(id), 'active');
  });

  it('scope_separator joins the requested scopes; comma-separated granted scopes are stored one by one', async () => {
    await register('quirk-commas', { scope_separator: ',', token_response: { scope_separator: ',' } }, [
      'openid',
      'api:read',
    ]);
    s.idp.setTokenResponseRewrite(reshape((b) => ({ ...b, scope: String(b.scope).split(' ').join(',') })));
    const { id, authUrl, back } = await consent('quirk-commas', 'user-commas');
    assert.equal(authUrl.searchParams.get('scope'), 'openid,api:read');
    assert.equal(back.searchParams.get('status'), 'success', back.href);
    const granted = String(lastAnswer().scope).split(' ');
    assert.ok(granted.length >= 2, `the provider granted several scopes: ${granted}`);
    const [row] = await listed('quirk-commas');
    assert.equal(row!.id, id);
    assert.deepEqual(row!.scopes, granted);
    assert.ok((await s.token(id)).access_token);
  });

  it('expires_in as a string ("3600") gives the same expiry as a number, at consent and refresh', async () => {
    await register('quirk-string-expiry', {});
    s.idp.setTokenResponseRewrite(reshape((b) => ({ ...b, expires_in: String(b.expires_in) })));
    const id = await connect('quirk-string-expiry', 'user-string');
    assert.equal(typeof lastAnswer().expires_in, 'number');
    assert.equal((await s.token(id)).expires_at, expiresIn(3600));
    const refreshed = await refresh(id);
    assert.equal(refreshed.access_token, lastAnswer().access_token);
    assert.equal(refreshed.expires_at, expiresIn(3600));
    const [row] = await listed('quirk-string-expiry');
    assert.equal(row!.access_expires_at, expiresIn(3600));
  });

  it('without expires_in the token has no known expiry: served as it is, refreshed on demand only', async () => {
    await register('quirk-no-expiry', {});
    s.idp.setTokenResponseRewrite(reshape(({ expires_in: _, ...b }) => b));
    const id = await connect('quirk-no-expiry', 'user-no-expiry');
    const issued = lastAnswer();
    const token = await s.token(id);
    assert.equal(token.access_token, issued.access_token);
    assert.equal(token.expires_at, null);
    assert.equal((await s.broker.container.connectionsStore.find(id))!.refresh_due_at, null, 'not scheduled');
    // Hours later the token is still served, and the provider was not asked.
    const base = s.idp.counts.refresh_token;
    s.clock += 5 * 3600_000;
    assert.equal((await s.token(id)).access_token, issued.access_token);
    assert.equal(s.idp.counts.refresh_token, base);
    // An explicit refresh works, and its answer (also without expires_in) is stored.
    const refreshed = await refresh(id);
    assert.equal(refreshed.access_token, lastAnswer().access_token);
    assert.equal(refreshed.expires_at, null);
    assert.equal(s.idp.counts.refresh_token, base + 1);
    // Forced refreshes of it are 30 s apart, as for a token that lives an hour (an API that keeps
    // answering 401 must not turn every retry through the proxy into a rotation).
    s.clock += 10_000;
    const again = json<Token>(await s.call({ method: 'POST', url: `/v1/refresh/${id}` }, 200));
    assert.equal(again.access_token, refreshed.access_token, 'the token refreshed 10 s ago');
    assert.equal(s.idp.counts.refresh_token, base + 1);
    assert.equal(await status(id), 'active');
  });

  it('expires_in with a fraction, or past ten years (or past what a date holds): whole seconds, or no known expiry', async () => {
    await register('quirk-odd-expiry', {});
    s.idp.setTokenResponseRewrite(reshape((b) => ({ ...b, expires_in: 3600.75 })));
    const id = await connect('quirk-odd-expiry', 'user-odd-expiry');
    assert.equal((await s.token(id)).expires_at, expiresIn(3600), 'the fraction dropped');
    // 1e13 s would be ~300,000 years from now: past what a Date (and SQLite's integers) hold.
    // Text and arrays oauth4webapi would read with parseFloat: no known expiry either.
    for (const odd of [3600.0001, 1e13, '99999999999999999999', 1e300, '3600.0001s', [3600.0001], '1e13']) {
      s.idp.setTokenResponseRewrite(reshape((b) => ({ ...b, expires_in: odd })));
      const refreshed = await refresh(id);
      assert.equal(
        refreshed.access_token,
        lastAnswer().access_token,
        `expires_in ${odd}: the new token stored`,
      );
      assert.equal(refreshed.expires_at, odd === 3600.0001 ? expiresIn(3600) : null, `expires_in ${odd}`);
      assert.equal((await s.token(id)).access_token, lastAnswer().access_token);
      const [row] = await listed('quirk-odd-expiry');
      assert.equal(row!.access_expires_at, refreshed.expires_at, 'the connection lists');
    }
    assert.equal(await status(id), 'active');
  });

  it('a refresh that returns no refresh token keeps the stored one, which keeps working', async () => {
    await register('quirk-no-new-refresh', {});
    const id = await connect('quirk-no-new-refresh', 'user-keep');
    const kept = (await s.stored(id)).refresh_token;
    assert.ok(kept);
    s.idp.setTokenResponseRewrite(reshape(({ refresh_token: _, ...b }) => b));
    const base = s.idp.counts.refresh_token;
    const first = await refresh(id);
    assert.equal(first.access_token, lastAnswer().access_token);
    assert.equal(lastAnswer().refresh_token, kept, 'the provider did send one; the rewrite dropped it');
    assert.equal((await s.stored(id)).refresh_token, kept);
    const second = await refresh(id);
    assert.notEqual(second.access_token, first.access_token);
    assert.equal(s.idp.counts.refresh_token, base + 2, 'both refreshes reached the provider and succeeded');
    assert.equal((await s.stored(id)).refresh_token, kept);
    assert.equal(await status(id), 'active');
  });

  it('an error in a 200 answer (error_with_200) fails the consent, and at refresh needs the user again', async () => {
    await register('quirk-error-200', { token_response: { error_with_200: true } });
    // Slack's shape: 200 {"ok": false, "error": …}.
    s.idp.setTokenResponseRewrite(() => ({ ok: false, error: 'invalid_code' }), { status: 200 });
    const refused = await consent('quirk-error-200', 'user-error-200');
    assert.equal(refused.back.searchParams.get('status'), 'failed');
    assert.equal(refused.back.searchParams.get('error'), 'token_exchange_failed');
    assert.equal(await status(refused.id), 'failed');
    s.idp.setTokenResponseRewrite(undefined);
    const id = await connect('quirk-error-200', 'user-error-200');
    // GitHub's refusal of a spent refresh token: 200 {"error": "bad_refresh_token"}.
    s.idp.setTokenResponseRewrite(
      () => ({ error: 'bad_refresh_token', error_description: 'The refresh token passed is incorrect.' }),
      { status: 200 },
    );
    s.clock += 31_000;
    assertProblem(await s.call({ method: 'POST', url: `/v1/refresh/${id}` }), 409, 'attention_required');
    assert.equal(await status(id), 'attention_required');
    assert.equal((await s.call({ method: 'GET', url: `/v1/token/${id}` })).statusCode, 409);
  });

  it('an error answer carrying new tokens (Slack: ok false) leaves them out of every log line', async () => {
    await register('quirk-error-tokens', { token_response: { error_with_200: true } });
    const id = await connect('quirk-error-tokens', 'user-error-tokens');
    s.idp.setTokenResponseRewrite(reshape((b) => ({ ...b, ok: false, error: 'ratelimited' })));
    s.clock += 31_000;
    assertProblem(await s.call({ method: 'POST', url: `/v1/refresh/${id}` }), 502, 'provider_unavailable');
    const issued = lastAnswer();
    assert.ok(typeof issued.access_token === 'string' && typeof issued.refresh_token === 'string');
    assert.ok(
      s.broker.logs.some((l) => l.includes('"code":"provider_unavailable"')),
      'the failure is logged',
    );
    for (const token of [issued.access_token, issued.refresh_token])
      assert.ok(!s.broker.logs.some((l) => l.includes(String(token))), 'a token in the log');
  });

  it('a background refresh that fails unexpectedly is logged with its connection and code', async () => {
    await register('quirk-damaged', {});
    const id = await connect('quirk-damaged', 'user-damaged');
    // One byte of the stored ciphertext changed: the worker cannot open it.
    const row = (await s.broker.container.connectionsStore.find(id))!;
    const damaged = Uint8Array.from(row.credentials as Uint8Array);
    damaged[damaged.length - 1]! ^= 1;
    await s.broker.container.db.kysely
      .updateTable('connections')
      .set({ credentials: damaged })
      .where('id', '=', id)
      .execute();
    s.clock = row.refresh_due_at! + 1;
    const stop = startBackgroundJobs(s.broker.container, s.broker.app.log as Logger);
    const failed = () => s.broker.logs.find((l) => l.includes('background refresh failed') && l.includes(id));
    try {
      for (let i = 0; i < 100 && failed() === undefined; i++) await new Promise((r) => setTimeout(r, 50));
    } finally {
      await stop();
    }
    const line = JSON.parse(failed() ?? '{}') as { level?: number; code?: string; connection_id?: string };
    assert.equal(line.level, 40, 'logged as a warning');
    assert.equal(line.code, 'decryption_failed');
    assert.equal(line.connection_id, id);
    await s.call({ method: 'DELETE', url: `/v1/connections/${id}` });
  });
});
