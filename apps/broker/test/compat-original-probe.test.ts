/**
 * Issue #25: the original checked captured credentials on its own when a provider had both
 * `api_base_url` and `user_info_endpoint`; Nexus does the same when `params.validation` is absent,
 * through the egress guard, and honours the original's `validation` keys (`skip`, `failure_status`,
 * `failure_body_contains`, `success_body_contains`). A real HTTP API on loopback checks the keys;
 * loopback is special-purpose, so the broker reaches it only with NEXUS_EGRESS_ALLOWED_CIDRS.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { capture, startCapture, statusOf } from './capture-helpers.ts';
import { json, startBroker, type TestBroker } from './harness.ts';

const GOOD_KEY = 'implicit-good-key-4e7a';

interface Api {
  server: Server;
  base: string;
  seen: { url: string; headers: IncomingMessage['headers'] }[];
}

async function startApi(): Promise<Api> {
  const seen: Api['seen'] = [];
  const server = createServer((req, res) => {
    seen.push({ url: req.url ?? '', headers: req.headers });
    const good = req.headers['x-api-key'] === GOOD_KEY;
    const answer = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    switch (new URL(req.url ?? '/', 'http://api.invalid').pathname) {
      case '/v2/users/me':
        return good ? answer(200, { id: 'me' }) : answer(401, { error: 'unauthorized' });
      case '/forbidden':
        return answer(403, { error: 'forbidden' });
      case '/down':
        return answer(503, {});
      case '/missing':
        return answer(404, {});
      // Slack's way: 200 whatever the key, `ok` says.
      case '/slack':
        return answer(200, good ? { ok: true, user: 'me' } : { ok: false, error: 'invalid_auth' });
      case '/teapot':
        return answer(418, {});
      default:
        return answer(404, {});
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

const start = (broker: TestBroker, provider: string) => startCapture(broker, provider, 'u-probe');

describe('the implicit probe: api_base_url + user_info_endpoint, no params.validation', () => {
  let api: Api;
  let broker: TestBroker;
  before(async () => {
    api = await startApi();
    broker = await startBroker({ env: { NEXUS_EGRESS_ALLOWED_CIDRS: '127.0.0.1/32' } });
    const base = { auth_type: 'api_key', api_base_url: `${api.base}/v2` };
    const profiles: Record<string, unknown>[] = [
      // As the original documents it: a path under api_base_url; the api_key default header.
      { name: 'implicit', ...base, user_info_endpoint: '/users/me' },
      { name: 'implicit-absolute', ...base, user_info_endpoint: `${api.base}/v2/users/me` },
      { name: 'implicit-403', ...base, user_info_endpoint: `${api.base}/forbidden` },
      { name: 'implicit-down', ...base, user_info_endpoint: `${api.base}/down` },
      { name: 'implicit-404', ...base, user_info_endpoint: `${api.base}/missing` },
      { name: 'no-user-info', ...base },
      { name: 'skipped', ...base, user_info_endpoint: '/users/me', params: { validation: { skip: true } } },
      {
        name: 'signed',
        auth_type: 'hmac_payload',
        api_base_url: api.base,
        user_info_endpoint: '/v2/users/me',
        params: { header_name: 'X-Signature' },
      },
      {
        name: 'slack-like',
        ...base,
        user_info_endpoint: `${api.base}/slack`,
        params: { validation: { failure_body_contains: '"ok":false' } },
      },
      {
        name: 'slack-success',
        ...base,
        user_info_endpoint: `${api.base}/slack`,
        params: { validation: { success_body_contains: '"ok":true' } },
      },
      {
        name: 'teapot-refuses',
        ...base,
        user_info_endpoint: `${api.base}/teapot`,
        params: { validation: { failure_status: [418] } },
      },
    ];
    for (const profile of profiles) {
      const res = await broker.request({ method: 'POST', url: '/providers', payload: { profile } });
      assert.equal(res.statusCode, 201, `${profile.name}: ${res.body}`);
    }
  });
  after(async () => {
    await broker.close();
    api.server.close();
  });

  it('probes GET user_info_endpoint under api_base_url with the strategy; refuses a wrong key, accepts the right one', async () => {
    const { state, connection_id } = await start(broker, 'implicit');
    api.seen.length = 0;
    const refused = await capture(broker, state, { api_key: 'wrong-key-0000' });
    assert.equal(refused.statusCode, 422, refused.body);
    const body = json<{ error: string; message: string }>(refused);
    assert.equal(body.error, 'credentials_rejected');
    assert.match(body.message, /user info endpoint answered 401/);
    assert.equal(await statusOf(broker, connection_id), 'pending', 'nothing stored');

    const accepted = await capture(broker, state, { api_key: GOOD_KEY });
    assert.equal(accepted.statusCode, 200, accepted.body);
    assert.equal(await statusOf(broker, connection_id), 'active');
    assert.deepEqual(
      api.seen.map((r) => r.url),
      ['/v2/users/me', '/v2/users/me'],
    );
    assert.equal(api.seen[1]!.headers['x-api-key'], GOOD_KEY, 'applied with the provider strategy');
    for (const text of broker.logs) assert.ok(!text.includes(GOOD_KEY), 'the key never reaches the logs');

    const absolute = await start(broker, 'implicit-absolute');
    assert.equal((await capture(broker, absolute.state, { api_key: GOOD_KEY })).statusCode, 200);
  });

  it('refuses on 403; other failures answer 502 and leave the link usable', async () => {
    const forbidden = await start(broker, 'implicit-403');
    const res403 = await capture(broker, forbidden.state, { api_key: GOOD_KEY });
    assert.equal(res403.statusCode, 422, res403.body);
    assert.equal(json(res403).error, 'credentials_rejected');
    for (const provider of ['implicit-down', 'implicit-404']) {
      const { state, connection_id } = await start(broker, provider);
      const res = await capture(broker, state, { api_key: GOOD_KEY });
      assert.equal(res.statusCode, 502, `${provider}: ${res.body}`);
      assert.equal(json(res).error, 'credentials_unverifiable');
      assert.equal(await statusOf(broker, connection_id), 'pending');
    }
  });

  it('does not probe without user_info_endpoint, with validation.skip, or for a signing strategy', async () => {
    for (const provider of ['no-user-info', 'skipped']) {
      api.seen.length = 0;
      const { state } = await start(broker, provider);
      const res = await capture(broker, state, { api_key: 'anything' });
      assert.equal(res.statusCode, 200, `${provider}: ${res.body}`);
      assert.equal(api.seen.length, 0, `${provider}: no request left`);
    }
    api.seen.length = 0;
    const { state } = await start(broker, 'signed');
    assert.equal((await capture(broker, state, { api_secret: 'anything' })).statusCode, 200);
    assert.equal(api.seen.length, 0, 'hmac_payload is not probed implicitly, as the original did not');
  });

  it("honours the original's body and status rules", async () => {
    for (const provider of ['slack-like', 'slack-success']) {
      const { state, connection_id } = await start(broker, provider);
      const refused = await capture(broker, state, { api_key: 'wrong-key-0000' });
      assert.equal(refused.statusCode, 422, `${provider}: a 200 that says no: ${refused.body}`);
      const accepted = await capture(broker, state, { api_key: GOOD_KEY });
      assert.equal(accepted.statusCode, 200, `${provider}: ${accepted.body}`);
      assert.equal(await statusOf(broker, connection_id), 'active');
    }
    const teapot = await start(broker, 'teapot-refuses');
    const res = await capture(broker, teapot.state, { api_key: GOOD_KEY });
    assert.equal(res.statusCode, 422, res.body);
  });

  it('validates the original keys at registration', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ skip: 'yes' }, 'params.validation.skip'],
      [{ failure_status: [99] }, 'params.validation.failure_status'],
      [{ failure_body_contains: '' }, 'params.validation.failure_body_contains'],
      [{ success_body_contains: 7 }, 'params.validation.success_body_contains'],
    ];
    for (const [validation, path] of cases) {
      const res = await broker.request({
        method: 'POST',
        url: '/providers',
        payload: {
          profile: {
            name: 'bad-original-probe',
            auth_type: 'api_key',
            api_base_url: api.base,
            user_info_endpoint: '/me',
            params: { validation },
          },
        },
      });
      assert.equal(res.statusCode, 400, `${path}: ${res.body}`);
      assert.ok(
        json<{ details: { path: string }[] }>(res).details.some((d) => d.path === path),
        `${path}: ${res.body}`,
      );
    }
    const sigv4 = await broker.request({
      method: 'POST',
      url: '/providers',
      payload: {
        profile: {
          name: 'sigv4-skip',
          auth_type: 'aws_sigv4',
          params: { service: 's3', validation: { skip: true } },
        },
      },
    });
    assert.equal(sigv4.statusCode, 201, `skip alone is accepted on aws_sigv4: ${sigv4.body}`);
  });
});

describe('the implicit probe goes through the egress guard', () => {
  let api: Api;
  let broker: TestBroker;
  before(async () => {
    api = await startApi();
    broker = await startBroker();
    const res = await broker.request({
      method: 'POST',
      url: '/providers',
      payload: {
        profile: {
          name: 'implicit-loopback',
          auth_type: 'api_key',
          api_base_url: `${api.base}/v2`,
          user_info_endpoint: '/users/me',
        },
      },
    });
    assert.equal(res.statusCode, 201, res.body);
  });
  after(async () => {
    await broker.close();
    api.server.close();
  });

  it('refuses a loopback API without an allowance: no request leaves, nothing is stored', async () => {
    const { state, connection_id } = await start(broker, 'implicit-loopback');
    const res = await capture(broker, state, { api_key: GOOD_KEY });
    assert.equal(res.statusCode, 502, res.body);
    assert.equal(json(res).error, 'credentials_unverifiable');
    assert.equal(api.seen.length, 0);
    assert.equal(await statusOf(broker, connection_id), 'pending');
  });
});
