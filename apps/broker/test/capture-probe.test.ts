import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { capture, startCapture, statusOf } from './capture-helpers.ts';
import { json, startBroker, type TestBroker } from './harness.ts';

/**
 * The optional validation probe of captured credentials, against a real HTTP API on loopback that
 * checks them. Loopback is special-purpose, so the broker reaches it only because these tests allow
 * 127.0.0.1/32 with NEXUS_EGRESS_ALLOWED_CIDRS; one broker without that allowance shows the refusal.
 */

const GOOD_KEY = 'probe-good-key-6f1d2c';
const HMAC_SECRET = 'probe-hmac-secret-91ab';

interface Api {
  server: Server;
  base: string;
  seen: { url: string; headers: IncomingMessage['headers'] }[];
}

async function startApi(): Promise<Api> {
  const seen: Api['seen'] = [];
  const server = createServer((req, res) => {
    seen.push({ url: req.url ?? '', headers: req.headers });
    const url = new URL(req.url ?? '/', 'http://api.invalid');
    const status = (ok: boolean) => {
      res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json' });
      res.end(JSON.stringify(ok ? { id: 'me' } : { error: 'unauthorized' }));
    };
    switch (url.pathname) {
      case '/me':
        return status(req.headers['x-api-key'] === GOOD_KEY);
      case '/query':
        return status(url.searchParams.get('key') === GOOD_KEY);
      case '/basic':
        return status(req.headers.authorization === `Basic ${Buffer.from('alice:pw-1').toString('base64')}`);
      case '/hmac':
        return status(
          req.headers['x-signature'] === createHmac('sha256', HMAC_SECRET).update('').digest('hex'),
        );
      case '/down':
        res.writeHead(503);
        return res.end();
      case '/to-metadata':
        res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' });
        return res.end();
      default:
        res.writeHead(404);
        return res.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

async function register(broker: TestBroker, profile: Record<string, unknown>) {
  return broker.request({ method: 'POST', url: '/providers', payload: { profile } });
}

const start = (broker: TestBroker, provider: string) => startCapture(broker, provider, 'u1');

describe('validation probe of captured credentials', () => {
  let api: Api;
  let broker: TestBroker;
  before(async () => {
    api = await startApi();
    broker = await startBroker({ env: { NEXUS_EGRESS_ALLOWED_CIDRS: '127.0.0.1/32' } });
    const profiles = [
      {
        name: 'probed-header',
        auth_type: 'header',
        api_base_url: api.base,
        params: {
          auth_strategy: { type: 'header', config: { header_name: 'X-Api-Key' } },
          validation: { url: '/me' },
        },
      },
      {
        name: 'probed-query',
        auth_type: 'query_param',
        api_base_url: api.base,
        user_info_endpoint: `${api.base}/query`,
        params: { auth_strategy: { type: 'query_param', config: { param_name: 'key' } }, validation: {} },
      },
      {
        name: 'probed-basic',
        auth_type: 'basic_auth',
        api_base_url: api.base,
        params: { validation: { url: '/basic' } },
      },
      {
        name: 'probed-hmac',
        auth_type: 'hmac_payload',
        api_base_url: api.base,
        params: {
          auth_strategy: { type: 'hmac_payload', config: { header_name: 'X-Signature' } },
          validation: { url: '/hmac' },
        },
      },
      {
        name: 'probed-down',
        auth_type: 'api_key',
        api_base_url: api.base,
        params: { validation: { url: '/down' } },
      },
      {
        name: 'probed-redirect',
        auth_type: 'api_key',
        api_base_url: api.base,
        params: { validation: { url: '/to-metadata' } },
      },
    ];
    for (const profile of profiles) {
      const res = await register(broker, profile);
      assert.equal(res.statusCode, 201, res.body);
    }
  });
  after(async () => {
    await broker.close();
    api.server.close();
  });

  it('refuses credentials the API rejects, stores nothing, and accepts the right ones on the same link', async () => {
    const { state, connection_id } = await start(broker, 'probed-header');
    const refused = await capture(broker, state, { api_key: 'wrong-key-0000' });
    assert.equal(refused.statusCode, 422, refused.body);
    assert.equal(json(refused).error, 'credentials_rejected');
    assert.equal(await statusOf(broker, connection_id), 'pending');
    const token = await broker.request({ method: 'GET', url: `/v1/token/${connection_id}` });
    assert.equal(token.statusCode, 409, 'a pending connection serves no credential');

    api.seen.length = 0;
    const accepted = await capture(broker, state, { api_key: GOOD_KEY });
    assert.equal(accepted.statusCode, 200, accepted.body);
    assert.equal(api.seen.length, 1);
    assert.equal(api.seen[0]!.url, '/me');
    assert.equal(api.seen[0]!.headers['x-api-key'], GOOD_KEY, 'applied with the provider strategy');
    assert.equal(await statusOf(broker, connection_id), 'active');

    const audit = await broker.request({ method: 'GET', url: `/audit?resource=connection:${connection_id}` });
    assert.ok(audit.body.includes('"probe_status":200'), audit.body);
    for (const text of [audit.body, ...broker.logs]) {
      assert.ok(!text.includes(GOOD_KEY), 'the key never reaches audit or logs');
      assert.ok(!text.includes('wrong-key-0000'), 'nor does a refused one');
    }
  });

  it('applies query_param (via user_info_endpoint), basic_auth and hmac_payload strategies', async () => {
    for (const [provider, good, bad] of [
      ['probed-query', { api_key: GOOD_KEY }, { api_key: 'nope' }],
      ['probed-basic', { username: 'alice', password: 'pw-1' }, { username: 'alice', password: 'pw-2' }],
      ['probed-hmac', { api_secret: HMAC_SECRET }, { api_secret: 'other-secret' }],
    ] as const) {
      const { state, connection_id } = await start(broker, provider);
      const refused = await capture(broker, state, bad);
      assert.equal(refused.statusCode, 422, `${provider}: ${refused.body}`);
      const accepted = await capture(broker, state, good);
      assert.equal(accepted.statusCode, 200, `${provider}: ${accepted.body}`);
      assert.equal(await statusOf(broker, connection_id), 'active');
    }
  });

  it('answers 502 when the API cannot vouch for the credentials, leaving the link usable', async () => {
    const { state, connection_id } = await start(broker, 'probed-down');
    const res = await capture(broker, state, { api_key: GOOD_KEY });
    assert.equal(res.statusCode, 502, res.body);
    assert.equal(json(res).error, 'credentials_unverifiable');
    assert.equal(await statusOf(broker, connection_id), 'pending');
    const schema = await broker.request({
      method: 'GET',
      url: `/v1/capture-schema?state=${encodeURIComponent(state)}`,
      key: null,
    });
    assert.equal(schema.statusCode, 200, 'the link was not consumed');
  });

  it('does not follow a redirect to the cloud metadata address', async () => {
    const { state, connection_id } = await start(broker, 'probed-redirect');
    api.seen.length = 0;
    const res = await capture(broker, state, { api_key: GOOD_KEY });
    assert.equal(res.statusCode, 502, res.body);
    assert.equal(json(res).error, 'credentials_unverifiable');
    assert.equal(api.seen.length, 1, 'only the first hop was requested');
    assert.equal(await statusOf(broker, connection_id), 'pending');
    assert.ok(!res.body.includes('169.254'), 'the error does not describe the network');
  });

  it('allows a capture link only a bounded number of probes', async () => {
    const { state, connection_id } = await start(broker, 'probed-header');
    for (let i = 0; i < 10; i++)
      assert.equal((await capture(broker, state, { api_key: `guess-${i}` })).statusCode, 422);
    const more = await capture(broker, state, { api_key: GOOD_KEY });
    assert.equal(more.statusCode, 429, more.body);
    assert.equal(await statusOf(broker, connection_id), 'pending');
  });

  it('shows the hosted form again with the reason when the API refuses', async () => {
    const { state } = await start(broker, 'probed-header');
    const res = await broker.request({
      method: 'POST',
      url: '/connect/capture',
      key: null,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({ state, api_key: 'wrong-key-0000' }).toString(),
    });
    assert.equal(res.statusCode, 422);
    assert.match(res.headers['content-type'] as string, /^text\/html/);
    assert.ok(res.body.includes('The provider refused these credentials'), res.body);
    assert.ok(res.body.includes('<form'), 'the form is shown again');
    assert.ok(!res.body.includes('wrong-key-0000'), 'the typed secret is not echoed');
  });

  it('answers every failure of the hosted form with a page of its own, never JSON', async () => {
    const { state, connection_id } = await start(broker, 'probed-header');
    const submit = (apiKey: string) =>
      broker.request({
        method: 'POST',
        url: '/connect/capture',
        key: null,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams({ state, api_key: apiKey }).toString(),
      });
    // Refused before the handler (a NUL in a field, a form without its state): pages too.
    for (const res of [
      await submit('a\u0000b'),
      await broker.request({ method: 'GET', url: '/connect/capture', key: null }),
    ]) {
      assert.equal(res.statusCode, 400, res.body);
      assert.match(res.headers['content-type'] as string, /^text\/html/);
      assert.match(String(res.headers['content-security-policy']), /default-src 'none'/);
    }
    for (let i = 0; i < 10; i++) assert.equal((await submit(`guess-${i}`)).statusCode, 422);
    // The eleventh probe of the link is refused: a page saying so, with the page's headers.
    const limited = await submit(GOOD_KEY);
    assert.equal(limited.statusCode, 429, limited.body);
    assert.match(limited.headers['content-type'] as string, /^text\/html/);
    assert.match(String(limited.headers['content-security-policy']), /default-src 'none'/);
    assert.ok(limited.body.includes('Too many attempts'), limited.body);
    assert.equal(await statusOf(broker, connection_id), 'pending');
  });

  it('rejects validation settings it cannot honour when the provider is registered', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [
        {
          name: 'bad-oauth-probe',
          client_id: 'c',
          client_secret: 's',
          auth_url: 'https://a.example/auth',
          token_url: 'https://a.example/token',
          params: { validation: { url: 'https://a.example/me' } },
        },
        'params.validation',
      ],
      [
        {
          name: 'bad-aws-probe',
          auth_type: 'aws_sigv4',
          params: {
            auth_strategy: { type: 'aws_sigv4', config: { service: 's3' } },
            validation: { url: 'https://s3.example/' },
          },
        },
        'params.validation',
      ],
      [
        { name: 'bad-path-probe', auth_type: 'api_key', params: { validation: { url: '/me' } } },
        'params.validation.url',
      ],
      [
        { name: 'bad-empty-probe', auth_type: 'api_key', params: { validation: {} } },
        'params.validation.url',
      ],
      [
        {
          name: 'bad-key-probe',
          auth_type: 'api_key',
          params: { validation: { url: 'https://x.example', verb: 'GET' } },
        },
        'params.validation.verb',
      ],
      [
        {
          name: 'bad-method-probe',
          auth_type: 'api_key',
          params: { validation: { url: 'https://x.example', method: 'DELETE' } },
        },
        'params.validation.method',
      ],
      [
        {
          name: 'bad-status-probe',
          auth_type: 'api_key',
          params: { validation: { url: 'https://x.example', expect_status: [99] } },
        },
        'params.validation.expect_status',
      ],
      [
        {
          name: 'bad-scheme-probe',
          auth_type: 'api_key',
          params: { validation: { url: 'ftp://x.example/' } },
        },
        'params.validation.url',
      ],
    ];
    for (const [profile, path] of cases) {
      const res = await register(broker, profile);
      assert.equal(res.statusCode, 400, `${profile.name}: ${res.body}`);
      const body = json<{ error: string; details: { path: string }[] }>(res);
      assert.ok(
        body.details.some((d) => d.path === path),
        `${profile.name} names ${path}: ${res.body}`,
      );
      const get = await broker.request({ method: 'GET', url: `/providers/${profile.name}` });
      assert.equal(get.statusCode, 404, `${profile.name} was not created`);
    }
  });
});

describe('validation probe without an egress allowance', () => {
  let api: Api;
  let broker: TestBroker;
  before(async () => {
    api = await startApi();
    broker = await startBroker();
    const res = await register(broker, {
      name: 'probed-loopback',
      auth_type: 'header',
      api_base_url: api.base,
      params: {
        auth_strategy: { type: 'header', config: { header_name: 'X-Api-Key' } },
        validation: { url: '/me' },
      },
    });
    assert.equal(res.statusCode, 201, res.body);
  });
  after(async () => {
    await broker.close();
    api.server.close();
  });

  it('refuses to probe a loopback API: no request leaves, nothing is stored', async () => {
    const { state, connection_id } = await start(broker, 'probed-loopback');
    const res = await capture(broker, state, { api_key: GOOD_KEY });
    assert.equal(res.statusCode, 502, res.body);
    assert.equal(json(res).error, 'credentials_unverifiable');
    assert.equal(api.seen.length, 0);
    assert.equal(await statusOf(broker, connection_id), 'pending');
  });
});
