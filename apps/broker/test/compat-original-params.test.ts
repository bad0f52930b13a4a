/**
 * Issue #25: provider definitions written from the original's guides are accepted and do what the
 * original did. Strategy settings written flat in `params`, the `api_key` default header (and
 * existing rows keeping theirs), `skip_scope_on_exchange`, `skip_scope_on_auth` and
 * `token_request_format: json` against a real OpenID provider behind a recording token endpoint,
 * and the oauth2-only keys refused on static providers.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { json, startBroker, type TestBroker } from './harness.ts';
import { RETURN, Scenario } from './oauth-scenario.ts';

type View = { id: string; params: Record<string, unknown>; version: number };
type TokenAnswer = { strategy: { type: string; config: Record<string, string> } };

async function register(broker: TestBroker, profile: Record<string, unknown>) {
  return broker.request({ method: 'POST', url: '/providers', payload: { profile } });
}

async function registered(broker: TestBroker, profile: Record<string, unknown>): Promise<View> {
  const res = await register(broker, profile);
  assert.equal(res.statusCode, 201, `${profile.name}: ${res.body}`);
  return json<View>(await broker.request({ method: 'GET', url: `/providers/${json<View>(res).id}` }));
}

/** A static connection captured through the capture API, and the token answer for it. */
async function captured(broker: TestBroker, provider: string, credentials: Record<string, string>) {
  const started = await broker.request({
    method: 'POST',
    url: '/v1/request-connection',
    payload: { user_id: 'u-params', provider_name: provider, return_url: RETURN },
  });
  assert.equal(started.statusCode, 200, started.body);
  const { state, connection_id } = json<{ state: string; connection_id: string }>(started);
  const res = await broker.request({
    method: 'POST',
    url: '/v1/capture-credential',
    key: null,
    payload: { state, credentials },
  });
  assert.equal(res.statusCode, 200, `${provider}: ${res.body}`);
  return json<TokenAnswer>(await broker.request({ method: 'GET', url: `/v1/token/${connection_id}` }));
}

const schema = (...fields: string[]) => ({
  type: 'object',
  required: fields,
  properties: Object.fromEntries(fields.map((f) => [f, { type: 'string', title: f }])),
});

describe('strategy settings written flat in params (the original registration guide)', () => {
  let broker: TestBroker;
  before(async () => {
    broker = await startBroker();
  });
  after(() => broker.close());

  it('folds every guide example into auth_strategy: stored and answered one way', async () => {
    const cases: [Record<string, unknown>, TokenAnswer['strategy']][] = [
      [
        {
          name: 'weatherapi',
          auth_type: 'query_param',
          params: { param_name: 'api_token', credential_schema: schema('api_key') },
        },
        { type: 'query_param', config: { param_name: 'api_token', credential_field: 'api_key' } },
      ],
      [
        {
          name: 'webhook-hmac',
          auth_type: 'hmac_payload',
          params: {
            header_name: 'X-Signature',
            algo: 'sha1',
            encoding: 'base64',
            credential_schema: schema('api_secret'),
          },
        },
        {
          type: 'hmac_payload',
          config: {
            header_name: 'X-Signature',
            secret_field: 'api_secret',
            algo: 'sha1',
            encoding: 'base64',
          },
        },
      ],
      [
        {
          name: 'bedrock-us-east',
          auth_type: 'aws_sigv4',
          params: {
            service: 'bedrock',
            region: 'eu-west-1',
            credential_schema: schema('access_key', 'secret_key'),
          },
        },
        { type: 'aws_sigv4', config: { service: 'bedrock', region: 'eu-west-1' } },
      ],
      [
        {
          name: 'flat-header',
          auth_type: 'header',
          params: { header_name: 'X-Token', value_prefix: 'Token ', credential_field: 'token' },
        },
        {
          type: 'header',
          config: { header_name: 'X-Token', value_prefix: 'Token ', credential_field: 'token' },
        },
      ],
      [
        {
          name: 'flat-basic',
          auth_type: 'basic_auth',
          params: { username_field: 'login', password_field: 'secret' },
        },
        { type: 'basic_auth', config: { username_field: 'login', password_field: 'secret' } },
      ],
    ];
    for (const [profile, strategy] of cases) {
      const view = await registered(broker, profile);
      const flat = Object.keys(profile.params as object).filter((k) => k !== 'credential_schema');
      for (const key of flat)
        assert.equal(view.params[key], undefined, `${profile.name}: ${key} is not kept flat`);
      const stored = view.params.auth_strategy as TokenAnswer['strategy'];
      assert.equal(stored.type, strategy.type, `${profile.name}`);
      for (const key of flat)
        assert.equal(
          stored.config[key],
          (profile.params as Record<string, string>)[key],
          `${profile.name}: ${key}`,
        );
      if (profile.params && 'credential_schema' in (profile.params as object))
        assert.ok(view.params.credential_schema, `${profile.name}: the other params stay`);
    }
    // What agents are told to apply: the folded settings, with the strategy's defaults.
    const weather = await captured(broker, 'weatherapi', { api_key: 'w-key' });
    assert.deepEqual(weather.strategy, cases[0]![1]);
    const hmac = await captured(broker, 'webhook-hmac', { api_secret: 'h-secret' });
    assert.deepEqual(hmac.strategy, cases[1]![1]);
    const aws = await captured(broker, 'bedrock-us-east', { access_key: 'AKIA1', secret_key: 's' });
    assert.deepEqual(aws.strategy, cases[2]![1]);
  });

  it('accepts the same value in both places, and refuses different ones with strategy_settings_conflict', async () => {
    const same = await registered(broker, {
      name: 'both-same',
      auth_type: 'query_param',
      params: { param_name: 'key', auth_strategy: { type: 'query_param', config: { param_name: 'key' } } },
    });
    assert.deepEqual(same.params, { auth_strategy: { type: 'query_param', config: { param_name: 'key' } } });

    const conflict = await register(broker, {
      name: 'both-differ',
      auth_type: 'query_param',
      params: { param_name: 'key', auth_strategy: { type: 'query_param', config: { param_name: 'token' } } },
    });
    assert.equal(conflict.statusCode, 400, conflict.body);
    const body = json<{ error: string; details: { path: string; message: string }[] }>(conflict);
    assert.equal(body.error, 'strategy_settings_conflict');
    assert.deepEqual(
      body.details.map((d) => d.path),
      ['params.param_name'],
    );
    assert.match(body.details[0]!.message, /auth_strategy\.config\.param_name/);
    const absent = await broker.request({ method: 'GET', url: '/providers/by-name/both-differ' });
    assert.equal(absent.statusCode, 404, 'nothing was created');

    // The same rule on a replace and a patch.
    const put = await broker.request({
      method: 'PUT',
      url: `/providers/${same.id}`,
      payload: {
        name: 'both-same',
        auth_type: 'query_param',
        params: { param_name: 'a', auth_strategy: { type: 'query_param', config: { param_name: 'b' } } },
      },
    });
    assert.equal(json(put).error, 'strategy_settings_conflict', put.body);
    const patched = await broker.request({
      method: 'PATCH',
      url: `/providers/${same.id}`,
      payload: { params: { param_name: 'renamed' } },
    });
    assert.equal(patched.statusCode, 200, patched.body);
    assert.deepEqual(json<View>(patched).params, {
      auth_strategy: { type: 'query_param', config: { param_name: 'renamed' } },
    });
  });

  it('refuses a flat setting the strategy does not have, or that is not a string', async () => {
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [
        { name: 'basic-with-param', auth_type: 'basic_auth', params: { param_name: 'k' } },
        'params.param_name',
        /not a setting of the basic_auth strategy/,
      ],
      [
        // api_key sends a header unless its strategy says query_param.
        { name: 'key-with-param', auth_type: 'api_key', params: { param_name: 'k' } },
        'params.param_name',
        /auth_strategy\.type or auth_type/,
      ],
      [
        { name: 'hmac-number', auth_type: 'hmac_payload', params: { header_name: 'X-Sig', algo: 256 } },
        'params.algo',
        /must be a string/,
      ],
      [
        { name: 'hmac-bad-algo', auth_type: 'hmac_payload', params: { header_name: 'X-Sig', algo: 'md5' } },
        'params.auth_strategy.config.algo',
        /sha256, sha1/,
      ],
      [
        { name: 'query-missing', auth_type: 'query_param', params: {} },
        'params.auth_strategy.config.param_name',
        /flat as params\.param_name/,
      ],
    ];
    for (const [profile, path, message] of cases) {
      const res = await register(broker, profile);
      assert.equal(res.statusCode, 400, `${profile.name}: ${res.body}`);
      const body = json<{ error: string; details: { path: string; message: string }[] }>(res);
      assert.equal(body.error, 'invalid_provider');
      const problem = body.details.find((d) => d.path === path);
      assert.ok(problem, `${profile.name} names ${path}: ${res.body}`);
      assert.match(problem.message, message);
    }
  });

  it('leaves an oauth2 provider’s string params as extra authorize-URL parameters', async () => {
    const view = await registered(broker, {
      name: 'oauth-extras',
      client_id: 'c',
      client_secret: 's',
      auth_url: 'https://idp.example.com/authorize',
      token_url: 'https://idp.example.com/token',
      params: { access_type: 'offline', region: 'eu' },
    });
    assert.deepEqual(view.params, { access_type: 'offline', region: 'eu' });
    const started = json<{ authUrl: string }>(
      await broker.request({
        method: 'POST',
        url: '/v1/request-connection',
        payload: { user_id: 'u', provider_name: 'oauth-extras', return_url: RETURN },
      }),
    );
    const url = new URL(started.authUrl);
    assert.equal(url.searchParams.get('access_type'), 'offline');
    assert.equal(url.searchParams.get('region'), 'eu');
  });
});

describe('the api_key default header', () => {
  let broker: TestBroker;
  before(async () => {
    broker = await startBroker();
  });
  after(() => broker.close());

  it('is X-API-Key for a new provider, written into its row; a named strategy or flat header wins', async () => {
    const plain = await registered(broker, { name: 'plain-key', auth_type: 'api_key' });
    assert.deepEqual(plain.params.auth_strategy, { type: 'header', config: { header_name: 'X-API-Key' } });
    const token = await captured(broker, 'plain-key', { api_key: 'k-1' });
    assert.deepEqual(token.strategy, {
      type: 'header',
      config: { header_name: 'X-API-Key', credential_field: 'api_key' },
    });

    const flat = await registered(broker, {
      name: 'flat-key',
      auth_type: 'api_key',
      params: { header_name: 'X-Key' },
    });
    assert.deepEqual(flat.params.auth_strategy, { type: 'header', config: { header_name: 'X-Key' } });

    const named = await registered(broker, {
      name: 'named-key',
      auth_type: 'api_key',
      params: { auth_strategy: { type: 'header', config: { value_prefix: 'Bearer ' } } },
    });
    assert.deepEqual(
      named.params.auth_strategy,
      { type: 'header', config: { value_prefix: 'Bearer ' } },
      'a named strategy is stored as written',
    );
    assert.deepEqual((await captured(broker, 'named-key', { api_key: 'k-2' })).strategy.config, {
      header_name: 'Authorization',
      credential_field: 'api_key',
      value_prefix: 'Bearer ',
    });

    // A replace that names no strategy keeps the provider's, whichever it is.
    for (const view of [plain, named]) {
      const name = view === plain ? 'plain-key' : 'named-key';
      const put = await broker.request({
        method: 'PUT',
        url: `/providers/${view.id}`,
        payload: { name, auth_type: 'api_key', description: 'replaced' },
      });
      assert.equal(put.statusCode, 200, put.body);
      assert.deepEqual(json<View>(put).params.auth_strategy, view.params.auth_strategy, name);
    }
    // A provider that becomes api_key is a new api_key provider.
    const switched = await registered(broker, { name: 'was-basic', auth_type: 'basic_auth' });
    const put = await broker.request({
      method: 'PUT',
      url: `/providers/${switched.id}`,
      payload: { name: 'was-basic', auth_type: 'api_key' },
    });
    assert.deepEqual(json<View>(put).params.auth_strategy, {
      type: 'header',
      config: { header_name: 'X-API-Key' },
    });
  });

  it('stays Authorization for a row stored before (no auth_strategy), across reads, patches and replaces', async () => {
    const view = await registered(broker, { name: 'old-key', auth_type: 'api_key', description: 'v1' });
    // A row as an earlier version of Nexus wrote it: no auth_strategy.
    const db = broker.container.db.kysely;
    const row = await db
      .selectFrom('providers')
      .select('profile')
      .where('id', '=', view.id)
      .executeTakeFirstOrThrow();
    const stored = JSON.parse(row.profile) as { params: Record<string, unknown> };
    stored.params = {};
    await db
      .updateTable('providers')
      .set({ profile: JSON.stringify(stored) })
      .where('id', '=', view.id)
      .execute();

    const before = await captured(broker, 'old-key', { api_key: 'old-1' });
    assert.equal(before.strategy.config.header_name, 'Authorization', 'read as it always was');

    const patched = await broker.request({
      method: 'PATCH',
      url: `/providers/${view.id}`,
      payload: { description: 'v2' },
    });
    assert.equal(patched.statusCode, 200, patched.body);
    assert.deepEqual(json<View>(patched).params.auth_strategy, {
      type: 'header',
      config: { header_name: 'Authorization' },
    });
    const replaced = await broker.request({
      method: 'PUT',
      url: `/providers/${view.id}`,
      payload: { name: 'old-key', auth_type: 'api_key', description: 'v3' },
    });
    assert.equal(replaced.statusCode, 200, replaced.body);
    assert.equal(
      (json<View>(replaced).params.auth_strategy as TokenAnswer['strategy']).config.header_name,
      'Authorization',
      'a replace that names no strategy keeps the header the row had',
    );
    assert.equal(
      (await captured(broker, 'old-key', { api_key: 'old-2' })).strategy.config.header_name,
      'Authorization',
    );

    // Naming another header is how it changes.
    const renamed = await broker.request({
      method: 'PATCH',
      url: `/providers/${view.id}`,
      payload: { params: { header_name: 'X-API-Key' } },
    });
    assert.equal(
      (json<View>(renamed).params.auth_strategy as TokenAnswer['strategy']).config.header_name,
      'X-API-Key',
    );
  });
});

describe('oauth2-only params on a static provider', () => {
  let broker: TestBroker;
  before(async () => {
    broker = await startBroker();
  });
  after(() => broker.close());

  it('are refused: they would do nothing', async () => {
    for (const [key, value] of [
      ['skip_scope_on_auth', true],
      ['skip_scope_on_exchange', true],
      ['token_request_format', 'json'],
      ['revocation_endpoint', 'https://api.example.com/revoke'],
    ] as const) {
      const res = await register(broker, {
        name: 'static-oauth-key',
        auth_type: 'api_key',
        params: { [key]: value },
      });
      assert.equal(res.statusCode, 400, `${key}: ${res.body}`);
      const body = json<{ details: { path: string; message: string }[] }>(res);
      assert.ok(
        body.details.some((d) => d.path === `params.${key}` && /only for oauth2/.test(d.message)),
        `${key}: ${res.body}`,
      );
    }
    const format = await register(broker, {
      name: 'xml-format',
      client_id: 'c',
      client_secret: 's',
      auth_url: 'https://idp.example.com/authorize',
      token_url: 'https://idp.example.com/token',
      params: { token_request_format: 'xml' },
    });
    assert.equal(format.statusCode, 400, format.body);
  });
});

/** The provider's token endpoint behind a recorder: what the broker sent, passed on as a form. */
interface Recorder {
  readonly url: string;
  readonly seen: { contentType: string; body: string }[];
  close(): void;
}

async function startRecorder(target: string): Promise<Recorder> {
  const seen: Recorder['seen'] = [];
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const contentType = String(req.headers['content-type'] ?? '');
    seen.push({ contentType, body });
    // oidc-provider reads forms only: a JSON body is passed on as the same fields.
    const form = contentType.startsWith('application/json')
      ? new URLSearchParams(JSON.parse(body) as Record<string, string>).toString()
      : body;
    const headers: Record<string, string> = {
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'application/json',
    };
    if (req.headers.authorization) headers.authorization = req.headers.authorization;
    const upstream = await fetch(target, { method: 'POST', headers, body: form });
    res.writeHead(upstream.status, {
      'content-type': upstream.headers.get('content-type') ?? 'application/json',
    });
    res.end(Buffer.from(await upstream.arrayBuffer()));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`,
    seen,
    close: () => server.close(),
  };
}

describe('skip_scope_on_exchange, skip_scope_on_auth and token_request_format against a real OpenID provider', () => {
  const s = new Scenario();
  let recorder: Recorder;
  before(async () => {
    await s.start();
    recorder = await startRecorder(s.idp.endpoints.token);
    const provider = (name: string, params: Record<string, unknown>) =>
      s.call(
        {
          method: 'POST',
          url: '/providers',
          payload: {
            profile: {
              name,
              client_id: 'client-post',
              client_secret: 'client-post-secret',
              auth_url: s.idp.endpoints.authorization,
              token_url: recorder.url,
              scopes: ['api:read'],
              params,
            },
          },
        },
        201,
      );
    await provider('scope-default', {});
    await provider('scope-skipped', { skip_scope_on_exchange: true });
    await provider('scope-skipped-auth', { skip_scope_on_auth: 'true' });
    await provider('json-tokens', { token_request_format: 'json' });
  });
  after(async () => {
    recorder.close();
    await s.close();
  });

  const exchanges = () =>
    recorder.seen.filter((r) => /authorization_code/.test(r.body)).map((r) => ({ ...r }));

  it('sends the flow’s scope with the code by default, as the original did', async () => {
    recorder.seen.length = 0;
    const id = await s.connect('scope-default');
    const [sent] = exchanges();
    assert.ok(sent, 'the exchange went through the recorder');
    const form = new URLSearchParams(sent.body);
    assert.equal(form.get('grant_type'), 'authorization_code');
    assert.equal(form.get('scope'), 'api:read');
    assert.match(sent.contentType, /^application\/x-www-form-urlencoded/);
    assert.ok((await s.token(id)).access_token, 'the real provider accepted it');
  });

  it('leaves scope out of the exchange with skip_scope_on_exchange', async () => {
    recorder.seen.length = 0;
    const id = await s.connect('scope-skipped');
    const [sent] = exchanges();
    assert.ok(sent);
    const form = new URLSearchParams(sent.body);
    assert.equal(form.get('code') !== null, true);
    assert.equal(form.has('scope'), false, sent.body);
    assert.ok((await s.token(id)).access_token);
  });

  it('leaves scope out of the authorize URL with skip_scope_on_auth, keeps it otherwise', async () => {
    const authUrl = async (provider: string) =>
      new URL(
        json<{ authUrl: string }>(
          await s.call(
            {
              method: 'POST',
              url: '/v1/request-connection',
              payload: { user_id: 'u-auth', provider_name: provider, return_url: RETURN },
            },
            200,
          ),
        ).authUrl,
      );
    assert.equal((await authUrl('scope-default')).searchParams.get('scope'), 'api:read');
    const skipped = await authUrl('scope-skipped-auth');
    assert.equal(skipped.searchParams.has('scope'), false, skipped.href);
    assert.equal(skipped.searchParams.get('code_challenge_method'), 'S256', 'the rest is intact');
  });

  it('sends the code exchange and the refresh as JSON with token_request_format: json', async () => {
    recorder.seen.length = 0;
    const id = await s.connect('json-tokens');
    const [sent] = recorder.seen;
    assert.ok(sent);
    assert.match(sent.contentType, /^application\/json/);
    const body = JSON.parse(sent.body) as Record<string, string>;
    assert.equal(body.grant_type, 'authorization_code');
    assert.equal(body.client_id, 'client-post', 'client_secret_post credentials are in the JSON body');
    assert.equal(typeof body.code_verifier, 'string');
    assert.equal(body.scope, 'api:read');

    recorder.seen.length = 0;
    await s.call({ method: 'POST', url: `/v1/refresh/${id}` }, 200);
    const refresh = recorder.seen[0];
    assert.ok(refresh, 'the refresh went through the recorder');
    assert.match(refresh.contentType, /^application\/json/);
    assert.equal((JSON.parse(refresh.body) as Record<string, string>).grant_type, 'refresh_token');
  });
});
