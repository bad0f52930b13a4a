import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, test } from 'node:test';
import { applyStrategy, StrategyNotApplicable } from './apply.ts';

const base = {
  url: new URL('https://api.example/v1/items?page=2'),
  headers: { accept: 'application/json' },
  body: '{"a":1}',
};

describe('applyStrategy', () => {
  test('oauth2 sends a bearer token', () => {
    const out = applyStrategy({ type: 'oauth2', config: {} }, { access_token: 'at-1' }, base);
    assert.equal(out.headers.authorization, 'Bearer at-1');
    assert.equal(out.headers.accept, 'application/json', 'other headers kept');
  });

  test('header puts value_prefix verbatim before the credential field', () => {
    const out = applyStrategy(
      {
        type: 'header',
        config: { header_name: 'X-Token', credential_field: 'token', value_prefix: 'Token ' },
      },
      { token: 't-1' },
      base,
    );
    assert.equal(out.headers['x-token'], 'Token t-1');
  });

  test('query_param adds the parameter and keeps the others', () => {
    const out = applyStrategy(
      { type: 'query_param', config: { param_name: 'key' } },
      { api_key: 'k-1' },
      base,
    );
    assert.equal(out.url.searchParams.get('key'), 'k-1');
    assert.equal(out.url.searchParams.get('page'), '2');
    assert.equal(base.url.searchParams.get('key'), null, 'the input request is not changed');
  });

  test('basic_auth encodes user and password', () => {
    const out = applyStrategy({ type: 'basic_auth', config: {} }, { username: 'u', password: 'p:w' }, base);
    assert.equal(out.headers.authorization, `Basic ${Buffer.from('u:p:w').toString('base64')}`);
  });

  test('hmac_payload signs the body with the configured algorithm and encoding', () => {
    const out = applyStrategy(
      { type: 'hmac_payload', config: { header_name: 'X-Sig', algo: 'sha1', encoding: 'base64' } },
      { api_secret: 's-1' },
      base,
    );
    assert.equal(out.headers['x-sig'], createHmac('sha1', 's-1').update('{"a":1}').digest('base64'));
  });

  test('headers sets every header, each template filled from the credential fields', () => {
    const out = applyStrategy(
      {
        type: 'headers',
        config: {
          'DD-API-KEY': '{api_key}',
          'DD-APPLICATION-KEY': '{application_key}',
          'X-Both': 'k={api_key}; app={application_key}; v=2',
        },
      },
      { api_key: 'k-1', application_key: 'a-$&-1' },
      { ...base, headers: { accept: 'application/json', 'dd-api-key': 'stale' } },
    );
    assert.deepEqual(out.headers, {
      accept: 'application/json',
      'dd-api-key': 'k-1',
      'dd-application-key': 'a-$&-1',
      'x-both': 'k=k-1; app=a-$&-1; v=2',
    });
  });

  test('headers names the missing field, never a value, and refuses an empty config', () => {
    assert.throws(
      () =>
        applyStrategy(
          { type: 'headers', config: { 'x-api-key': '{api_key}', 'x-app': '{app_key}' } },
          { api_key: 'secret-value' },
          base,
        ),
      (e: unknown) =>
        e instanceof StrategyNotApplicable && e.message.includes('app_key') && !e.message.includes('secret'),
    );
    assert.throws(() => applyStrategy({ type: 'headers', config: {} }, {}, base), StrategyNotApplicable);
  });

  test('a missing credential field or aws_sigv4 is refused, naming no value', () => {
    assert.throws(
      () => applyStrategy({ type: 'header', config: {} }, { other: 'x' }, base),
      (e: unknown) => e instanceof StrategyNotApplicable && e.message.includes('api_key'),
    );
    assert.throws(
      () => applyStrategy({ type: 'aws_sigv4', config: { service: 's3' } }, {}, base),
      StrategyNotApplicable,
    );
  });
});
