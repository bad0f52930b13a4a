import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { StoredProfile } from './providers.schemas.ts';
import { validateProfile } from './providers.validate.ts';
import { checkQuirkParams } from './quirk-params.validate.ts';

const oauth2: StoredProfile = {
  name: 'slack',
  auth_type: 'oauth2',
  auth_header: 'client_secret_post',
  client_id: 'c',
  auth_url: 'https://slack.example.com/oauth/v2/authorize',
  token_url: 'https://slack.example.com/api/oauth.v2.access',
  enable_discovery: false,
  scopes: ['chat:write'],
  params: {},
};

const problemsOf = (params: Record<string, unknown>, base: StoredProfile = oauth2) => {
  const problems: { path: string; message: string }[] = [];
  checkQuirkParams(problems, { ...base, params });
  return problems;
};
const paths = (params: Record<string, unknown>, base?: StoredProfile) =>
  problemsOf(params, base).map((p) => p.path);

describe('quirk settings (params.pkce, scope_separator, token_response)', () => {
  it('accepts every documented value', () => {
    for (const params of [
      { pkce: false },
      { pkce: true },
      { scope_separator: ' ' },
      { scope_separator: ',' },
      { scope_separator: '+' },
      { token_response: {} },
      {
        token_response: {
          form_encoded: true,
          tokens_at: 'authed_user',
          scope_separator: ',',
          error_with_200: true,
        },
      },
      { token_response: { tokens_at: 'data.user_tokens', scope_separator: ' ' } },
    ])
      assert.deepEqual(problemsOf(params), [], JSON.stringify(params));
  });

  it('refuses other types and values, each at its own path', () => {
    assert.deepEqual(paths({ pkce: 'false' }), ['params.pkce']);
    assert.deepEqual(paths({ pkce: 0 }), ['params.pkce']);
    assert.deepEqual(paths({ scope_separator: ';' }), ['params.scope_separator']);
    assert.deepEqual(paths({ scope_separator: ['', ','] }), ['params.scope_separator']);
    assert.deepEqual(paths({ token_response: 'form' }), ['params.token_response']);
    assert.deepEqual(paths({ token_response: [] }), ['params.token_response']);
    assert.deepEqual(paths({ token_response: { form_encoded: 'yes', error_with_200: 1 } }), [
      'params.token_response.form_encoded',
      'params.token_response.error_with_200',
    ]);
    // The answer's separator is " " or "," (no provider answers with "+").
    assert.deepEqual(paths({ token_response: { scope_separator: '+' } }), [
      'params.token_response.scope_separator',
    ]);
    assert.deepEqual(paths({ token_response: { expires_in_field: 'ttl' } }), [
      'params.token_response.expires_in_field',
    ]);
  });

  it('takes tokens_at as a dotted path of field names only', () => {
    for (const bad of [
      '',
      '.x',
      'a..b',
      'a.b.',
      'a-b',
      'a[0]',
      '1st',
      'a.b.c.d.e.f.g.h.i',
      'x'.repeat(65),
      7,
    ])
      assert.deepEqual(
        paths({ token_response: { tokens_at: bad } }),
        ['params.token_response.tokens_at'],
        String(bad),
      );
    for (const bad of ['__proto__', 'a.constructor', 'prototype.x'])
      assert.match(problemsOf({ token_response: { tokens_at: bad } })[0]!.message, /not __proto__/, bad);
    assert.deepEqual(paths({ token_response: { tokens_at: 'a.b.c.d.e.f.g.h' } }), []);
  });

  it('refuses them on a static-credential provider, where they would do nothing', () => {
    const apiKey: StoredProfile = {
      name: 'openai',
      auth_type: 'api_key',
      auth_header: 'client_secret_post',
      enable_discovery: false,
      scopes: [],
      params: {},
    };
    const problems = problemsOf({ pkce: false, scope_separator: ',', token_response: {} }, apiKey);
    assert.deepEqual(
      problems.map((p) => p.path),
      ['params.pkce', 'params.scope_separator', 'params.token_response'],
    );
    assert.match(problems[0]!.message, /only for oauth2/);
  });

  it('a whole oauth2 profile with them validates, and scope_separator is not an authorize parameter', () => {
    const profile = {
      ...oauth2,
      params: {
        pkce: false,
        scope_separator: ',',
        token_response: { tokens_at: 'authed_user', scope_separator: ',', error_with_200: true },
      },
    };
    const options = { allowLoopbackHttp: false, hasClientSecret: true };
    assert.deepEqual(validateProfile(profile, options), []);
    const bad = validateProfile({ ...profile, params: { ...profile.params, pkce: 'no' } }, options);
    assert.deepEqual(
      bad.map((p) => p.path),
      ['params.pkce'],
    );
  });
});
