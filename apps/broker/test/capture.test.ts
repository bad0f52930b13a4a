import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { json, startBroker, type TestBroker } from './harness.ts';

const RETURN = 'http://localhost:3000/done';

describe('static-credential capture', () => {
  let broker: TestBroker;
  before(async () => {
    broker = await startBroker();
    const providers = [
      { name: 'stripe-like', auth_type: 'api_key', description: 'Payments API' },
      {
        name: 'aws-like',
        auth_type: 'aws_sigv4',
        params: { auth_strategy: { type: 'aws_sigv4', config: { service: 's3', region: 'eu-west-1' } } },
      },
      {
        name: 'custom-schema',
        auth_type: 'header',
        params: {
          auth_strategy: { type: 'header', config: { header_name: 'X-Token', credential_field: 'token' } },
          credential_schema: {
            type: 'object',
            properties: {
              token: { type: 'string', title: 'API token', format: 'password' },
              account: { type: 'string', title: 'Account' },
            },
            required: ['token'],
          },
        },
      },
      {
        name: 'oauthy',
        client_id: 'c',
        client_secret: 's',
        auth_url: 'https://a.example/auth',
        token_url: 'https://a.example/token',
      },
    ];
    for (const profile of providers) {
      const res = await broker.request({ method: 'POST', url: '/providers', payload: { profile } });
      assert.equal(res.statusCode, 201, res.body);
    }
  });
  after(() => broker.close());

  async function start(provider: string) {
    const res = await broker.request({
      method: 'POST',
      url: '/v1/request-connection',
      payload: { user_id: 'u1', provider_name: provider, return_url: RETURN },
    });
    assert.equal(res.statusCode, 200, res.body);
    return json<{ state: string; connection_id: string; authUrl: string }>(res);
  }

  it('describes the fields, captures once, and serves the credential with the strategy', async () => {
    const { state, connection_id } = await start('stripe-like');
    const schema = await broker.request({
      method: 'GET',
      url: `/v1/capture-schema?state=${encodeURIComponent(state)}`,
      key: null,
    });
    assert.equal(schema.statusCode, 200, schema.body);
    const body = json<{
      provider: { name: string };
      fields: { name: string; secret: boolean; required: boolean }[];
    }>(schema);
    assert.equal(body.provider.name, 'stripe-like');
    assert.deepEqual(
      body.fields.map((f) => [f.name, f.secret, f.required]),
      [['api_key', true, true]],
    );

    const captured = await broker.request({
      method: 'POST',
      url: '/v1/capture-credential',
      key: null,
      payload: { state, credentials: { api_key: 'sk_live_captured_123' } },
    });
    assert.equal(captured.statusCode, 200, captured.body);
    const result = json<{ connection_id: string; status: string; redirect_url: string }>(captured);
    assert.equal(result.connection_id, connection_id);
    assert.equal(result.status, 'active');
    const redirect = new URL(result.redirect_url);
    assert.equal(redirect.searchParams.get('status'), 'success');
    assert.equal(redirect.searchParams.get('connection_id'), connection_id);

    const token = json<{
      strategy: { type: string; config: Record<string, string> };
      credentials: Record<string, string>;
      expires_at: null;
    }>(await broker.request({ method: 'GET', url: `/v1/token/${connection_id}` }));
    assert.deepEqual(token.strategy, {
      type: 'header',
      // The original's default for api_key (issue #25).
      config: { header_name: 'X-API-Key', credential_field: 'api_key' },
    });
    assert.deepEqual(token.credentials, { api_key: 'sk_live_captured_123' });
    assert.equal(token.expires_at, null);

    const again = await broker.request({
      method: 'POST',
      url: '/v1/capture-credential',
      key: null,
      payload: { state, credentials: { api_key: 'other' } },
    });
    assert.equal(again.statusCode, 404);
    assert.equal(json(again).error, 'capture_not_available');
  });

  it('honours the provider strategy config and custom schema', async () => {
    const aws = await start('aws-like');
    const fields = json<{ fields: { name: string; required: boolean }[] }>(
      await broker.request({
        method: 'GET',
        url: `/v1/capture-schema?state=${encodeURIComponent(aws.state)}`,
        key: null,
      }),
    ).fields;
    assert.deepEqual(
      fields.map((f) => [f.name, f.required]),
      [
        ['access_key', true],
        ['secret_key', true],
        ['session_token', false],
      ],
    );
    await broker.request({
      method: 'POST',
      url: '/v1/capture-credential',
      key: null,
      payload: { state: aws.state, credentials: { access_key: 'AKIA1', secret_key: 'sek' } },
    });
    const token = json<{ strategy: { type: string; config: Record<string, string> } }>(
      await broker.request({ method: 'GET', url: `/v1/token/${aws.connection_id}` }),
    );
    assert.deepEqual(token.strategy, { type: 'aws_sigv4', config: { region: 'eu-west-1', service: 's3' } });

    const custom = await start('custom-schema');
    const bad = await broker.request({
      method: 'POST',
      url: '/v1/capture-credential',
      key: null,
      payload: { state: custom.state, credentials: { account: 'a', extra: 'x' } },
    });
    assert.equal(bad.statusCode, 400);
    assert.equal(json(bad).error, 'invalid_credentials');
    const paths = (json(bad).details as { path: string }[]).map((d) => d.path).sort();
    assert.deepEqual(paths, ['credentials.extra', 'credentials.token']);
    // A rejected submission does not use up the link.
    const good = await broker.request({
      method: 'POST',
      url: '/v1/capture-credential',
      key: null,
      payload: { state: custom.state, credentials: { token: 't0k', account: 'acme' } },
    });
    assert.equal(good.statusCode, 200, good.body);
  });

  it('refuses OAuth providers, tampered states and expired links', async () => {
    const oauth = await start('oauthy');
    assert.equal(
      (
        await broker.request({
          method: 'GET',
          url: `/v1/capture-schema?state=${encodeURIComponent(oauth.state)}`,
          key: null,
        })
      ).statusCode,
      404,
    );
    const keyed = await start('stripe-like');
    // Flip one character in the middle: a trailing base64url character can carry unused bits, so
    // changing the end may decode to the same bytes.
    const mid = Math.floor(keyed.state.length / 2);
    const tampered = `${keyed.state.slice(0, mid)}${keyed.state[mid] === 'A' ? 'B' : 'A'}${keyed.state.slice(mid + 1)}`;
    assert.equal(
      (
        await broker.request({
          method: 'GET',
          url: `/v1/capture-schema?state=${encodeURIComponent(tampered)}`,
          key: null,
        })
      ).statusCode,
      404,
    );
  });

  it('serves a scriptless HTML form with a strict CSP and accepts its submission', async () => {
    const { state, connection_id } = await start('custom-schema');
    const page = await broker.request({
      method: 'GET',
      url: `/connect/capture?state=${encodeURIComponent(state)}`,
      key: null,
    });
    assert.equal(page.statusCode, 200);
    const csp = page.headers['content-security-policy'] as string;
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /form-action 'self' http:\/\/localhost:3000/);
    assert.ok(!/<script/i.test(page.body));
    assert.match(page.body, /name="token" type="password"/);
    assert.match(page.body, /name="account" type="text"/);
    assert.equal(page.headers['referrer-policy'], 'no-referrer');

    const missing = await broker.request({
      method: 'POST',
      url: '/connect/capture',
      key: null,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({ state, account: 'acme' }).toString(),
    });
    assert.equal(missing.statusCode, 400);
    assert.match(missing.body, /token: required/);

    const submitted = await broker.request({
      method: 'POST',
      url: '/connect/capture',
      key: null,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({ state, token: 'form-token', account: 'acme' }).toString(),
    });
    assert.equal(submitted.statusCode, 303);
    assert.equal(
      new URL(submitted.headers.location as string).searchParams.get('connection_id'),
      connection_id,
    );
    const gone = await broker.request({
      method: 'GET',
      url: `/connect/capture?state=${encodeURIComponent(state)}`,
      key: null,
    });
    assert.equal(gone.statusCode, 404);
    assert.match(gone.body, /expired/);
  });

  it('never accepts form bodies on JSON routes', async () => {
    const res = await broker.request({
      method: 'POST',
      url: '/providers',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'profile=x',
    });
    assert.equal(res.statusCode, 415);
  });
});
