import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { joinScopes, tokenAnswerQuirks, tolerantFetch, usesPkce } from './token-answer-quirks.ts';

const TOKEN = 'https://id.example.com/oauth/token';

/** `tolerantFetch` over a provider that answers `body` with `status` and `type`. */
async function answer(
  params: Record<string, unknown>,
  body: string,
  {
    status = 200,
    type = 'application/json',
    url = TOKEN,
    dropIdToken = false,
    grant = undefined as string | undefined,
  } = {},
) {
  const send: typeof fetch = async () =>
    new Response(body, { status, headers: { 'content-type': type, 'x-request-id': 'r1' } });
  const f = tolerantFetch(send, { quirks: tokenAnswerQuirks({ params }), tokenEndpoint: TOKEN, dropIdToken });
  const sent = grant === undefined ? undefined : new URLSearchParams({ grant_type: grant });
  const res = await f(url, { method: 'POST', ...(sent === undefined ? {} : { body: sent }) });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = text;
  }
  return { status: res.status, type: res.headers.get('content-type'), body: parsed, headers: res.headers };
}

describe('token answers put into the standard form (token-answer-quirks.ts)', () => {
  it('keeps a successful answer whose optional parts are unusable, with its rotated refresh token', async () => {
    const tokens = (extra: Record<string, unknown>) =>
      JSON.stringify({ access_token: 'a', refresh_token: 'r2', token_type: 'bearer', ...extra });
    const body = async (text: string, options = {}) =>
      (await answer({}, text, options)).body as Record<string, unknown>;
    assert.equal((await body(tokens({ token_type: undefined }))).token_type, 'bearer', 'missing');
    assert.equal((await body(tokens({ token_type: 'mac' }))).token_type, 'bearer', 'unknown');
    assert.equal((await body(tokens({ token_type: 'DPoP' }))).token_type, 'DPoP', 'known: as sent');
    assert.deepEqual(await body(tokens({ scope: null })), {
      access_token: 'a',
      refresh_token: 'r2',
      token_type: 'bearer',
    });
    const noRotation = await body(tokens({ refresh_token: null }));
    assert.equal('refresh_token' in noRotation, false, 'a null refresh token is no new one');
    assert.equal('refresh_token' in (await body(tokens({ refresh_token: '' }))), false);
    // Media types without regard to case; a JSON answer under another type is read.
    for (const type of ['Application/JSON', 'text/plain'])
      assert.deepEqual(await body(tokens({ expires_in: '3600', token_type: undefined }), { type }), {
        access_token: 'a',
        refresh_token: 'r2',
        token_type: 'bearer',
        expires_in: 3600,
      });
    // An OAuth error answer as text is read as one too (a lost grant, not a failure to retry).
    const refused = await answer({}, '{"error":"invalid_grant"}', { status: 400, type: 'text/plain' });
    assert.deepEqual(
      [refused.status, refused.type, refused.body],
      [400, 'application/json', { error: 'invalid_grant' }],
    );
    // An id_token in a refresh answer is dropped (nothing reads it); at the code exchange it stays.
    const withId = tokens({ id_token: 'garbage' });
    assert.equal('id_token' in (await body(withId, { grant: 'refresh_token' })), false);
    assert.equal((await body(withId, { grant: 'authorization_code' })).id_token, 'garbage');
  });

  it('reads a form-encoded answer as JSON for every provider', async () => {
    const res = await answer({}, 'access_token=gho_1&scope=repo%2Cgist&token_type=bearer', {
      type: 'application/x-www-form-urlencoded; charset=utf-8',
    });
    assert.equal(res.type, 'application/json');
    assert.deepEqual(res.body, { access_token: 'gho_1', scope: 'repo,gist', token_type: 'bearer' });
    assert.equal(res.headers.get('x-request-id'), 'r1', 'other headers are kept');
  });

  it('reads a form body with another content type only with form_encoded', async () => {
    const text = 'access_token=t&token_type=bearer&expires_in=3600';
    const plain = { type: 'text/plain' };
    assert.equal((await answer({}, text, plain)).body, text, 'left for oauth4webapi to refuse');
    const res = await answer({ token_response: { form_encoded: true } }, text, plain);
    assert.deepEqual(res.body, { access_token: 't', token_type: 'bearer', expires_in: 3600 });
    // Not a form either (no name=value pair): passed on as it came.
    assert.equal((await answer({ token_response: { form_encoded: true } }, 'oops', plain)).body, 'oops');
  });

  it('expires_in: whole seconds from a number or numeric string; null, empty or past ten years is an unknown lifetime', async () => {
    const read = async (value: unknown) =>
      (await answer({}, JSON.stringify({ access_token: 't', token_type: 'bearer', expires_in: value })))
        .body as Record<string, unknown>;
    assert.equal((await read('3600')).expires_in, 3600);
    assert.equal((await read(' 59.5 ')).expires_in, 59, 'a fraction dropped');
    assert.equal((await read(0.5)).expires_in, 0, 'under a second: none');
    assert.equal((await read(7200)).expires_in, 7200);
    assert.equal('expires_in' in (await read(null)), false);
    assert.equal('expires_in' in (await read('')), false);
    assert.equal('expires_in' in (await read(1e13)), false, 'past ten years');
    assert.equal('expires_in' in (await read('99999999999999999999')), false);
    assert.equal((await read(-5)).expires_in, 0, 'expired on arrival, the answer kept');
    // Text oauth4webapi would read with parseFloat (3600.5, 1e13) is no lifetime either.
    for (const text of ['soon', '3600.5s', '1e13', '0x10'])
      assert.equal('expires_in' in (await read(text)), false, text);
    assert.equal('expires_in' in (await read([3600])), false, 'an array');
  });

  it('an error in a 200 is a 400; with error_with_200 also beside a token, and ok: false', async () => {
    const refusal = JSON.stringify({ error: 'bad_refresh_token', error_description: 'expired' });
    assert.equal((await answer({}, refusal)).status, 400);
    const mixed = JSON.stringify({ access_token: 't', token_type: 'bearer', error: 'warning_only' });
    assert.equal((await answer({}, mixed)).status, 200, 'a success with an error field stays one');
    const strict = { token_response: { error_with_200: true } };
    assert.equal((await answer(strict, mixed)).status, 400);
    assert.equal((await answer(strict, JSON.stringify({ ok: false }))).status, 400);
    assert.equal((await answer({}, JSON.stringify({ ok: false }))).status, 200);
    assert.equal((await answer(strict, JSON.stringify({ ok: true, access_token: 't' }))).status, 200);
    // Real error statuses are passed on as they came.
    assert.equal((await answer({}, refusal, { status: 401 })).status, 401);
  });

  it('tokens_at takes the token fields from the nested object, and its token_type is bearer', async () => {
    const slack = JSON.stringify({
      ok: true,
      access_token: 'xoxb-bot',
      token_type: 'bot',
      scope: 'commands',
      team: { id: 'T1' },
      authed_user: { id: 'U1', access_token: 'xoxp-user', token_type: 'user', scope: 'chat:write' },
    });
    const params = { token_response: { tokens_at: 'authed_user' } };
    const res = (await answer(params, slack)).body as Record<string, unknown>;
    assert.equal(res.access_token, 'xoxp-user');
    assert.equal(res.token_type, 'bearer');
    assert.equal(res.scope, 'chat:write');
    assert.deepEqual(res.team, { id: 'T1' }, 'the answer’s other fields stay');
    // A deeper path, and an answer without the object (read at the top level).
    const deep = JSON.stringify({ data: { tokens: { access_token: 'a2', token_type: 'Bearer' } } });
    const at = (await answer({ token_response: { tokens_at: 'data.tokens' } }, deep)).body as Record<
      string,
      unknown
    >;
    assert.equal(at.access_token, 'a2');
    assert.equal(at.token_type, 'Bearer');
    const top = JSON.stringify({ access_token: 'xoxe-top', token_type: 'user' });
    assert.deepEqual((await answer(params, top)).body, { access_token: 'xoxe-top', token_type: 'bearer' });
    // Only the token endpoint's answers: other calls (revocation, key sets) are left as they are.
    const other = (await answer(params, slack, { url: 'https://id.example.com/oauth/revoke' })).body;
    assert.equal((other as Record<string, unknown>).access_token, 'xoxb-bot');
  });

  it('a comma-separated granted scope is stored space-separated', async () => {
    const github = JSON.stringify({ access_token: 't', token_type: 'bearer', scope: 'repo,gist, read:org' });
    const params = { token_response: { scope_separator: ',' } };
    assert.equal(((await answer(params, github)).body as { scope: string }).scope, 'repo gist read:org');
    assert.equal(((await answer({}, github)).body as { scope: string }).scope, 'repo,gist, read:org');
  });

  it('a granted scope given as a JSON array of strings (Twitch) is stored space-separated', async () => {
    const scoped = (scope: unknown) => JSON.stringify({ access_token: 't', token_type: 'bearer', scope });
    const read = async (params: Record<string, unknown>, body: string, url = TOKEN) =>
      ((await answer(params, body, { url })).body as { scope: unknown }).scope;
    const twitch = scoped(['user:read:email', 'chat:read']);
    assert.equal(await read({}, twitch), 'user:read:email chat:read');
    assert.equal(
      await read({ token_response: { scope_separator: ',' } }, twitch),
      'user:read:email chat:read',
    );
    assert.equal(await read({}, scoped([])), '');
    // Not only strings: absent (the answer, and its refresh token, kept). Not a token answer: left alone.
    assert.equal(await read({}, scoped(['a', 1])), undefined);
    assert.equal(await read({}, scoped(42)), undefined);
    assert.deepEqual(await read({}, twitch, 'https://id.example.com/other'), [
      'user:read:email',
      'chat:read',
    ]);
  });

  it('passes a bodyless answer (a revocation’s 204) on as it came', async () => {
    const send: typeof fetch = async () =>
      new Response(null, { status: 204, headers: { 'content-type': 'application/json' } });
    const f = tolerantFetch(send, {
      quirks: tokenAnswerQuirks({ params: {} }),
      tokenEndpoint: TOKEN,
      dropIdToken: true,
    });
    assert.equal((await f('https://id.example.com/revoke', { method: 'POST' })).status, 204);
  });

  it('keeps a JSON media type, and drops an id_token only when asked to', async () => {
    const keys = JSON.stringify({ keys: [] });
    const jwks = await answer({}, keys, {
      type: 'application/jwk-set+json',
      url: 'https://id.example.com/jwks',
    });
    assert.equal(jwks.type, 'application/jwk-set+json');
    const withId = JSON.stringify({ access_token: 't', token_type: 'bearer', id_token: 'x.y.z' });
    assert.equal('id_token' in ((await answer({}, withId)).body as object), true);
    assert.equal('id_token' in ((await answer({}, withId, { dropIdToken: true })).body as object), false);
  });

  it('joins requested scopes with the provider’s separator, and reads pkce', () => {
    const scopes = ['repo', 'read:org'];
    assert.equal(joinScopes({ params: {} }, scopes), 'repo read:org');
    assert.equal(joinScopes({ params: { scope_separator: ',' } }, scopes), 'repo,read:org');
    // "+" is a space that URL encoding writes as a literal "+".
    const url = new URL('https://id.example.com/authorize');
    url.searchParams.set('scope', joinScopes({ params: { scope_separator: '+' } }, scopes));
    assert.equal(url.search, '?scope=repo+read%3Aorg');
    assert.equal(usesPkce({ params: {} }), true);
    assert.equal(usesPkce({ params: { pkce: true } }), true);
    assert.equal(usesPkce({ params: { pkce: false } }), false);
  });
});
