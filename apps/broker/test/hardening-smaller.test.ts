/**
 * Issue #18, part "Smaller": five small holes, each checked over HTTP (gRPC for the error mapping)
 * against a real broker on SQLite and PostgreSQL.
 * - a `state` has one accepted spelling (no padding, stray characters or changed spare bits);
 * - captured values with control characters are refused at capture, field named, link still usable;
 * - `/v1/resolve` answers an unknown provider exactly like a missing connection;
 * - a 500 answers `internal_error` (REST and gRPC), its real code only in the log;
 * - a refused `request-connection` leaves no connection or flow row behind.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { status as grpcStatus } from '@grpc/grpc-js';
import type { GrpcServer } from '../src/grpc/server.ts';
import { NexusClient, startGrpc } from './grpc-client.ts';
import { assertProblem, createAgentWithToken, json, startBroker, type TestBroker } from './harness.ts';

const RETURN = 'http://localhost:3000/done';
const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const GENERIC = 'Internal error. The request id identifies it in the broker logs.';

/** A loopback issuer whose discovery document can be switched off. */
async function startIssuer(): Promise<{ url: string; up: boolean; close(): Promise<void> }> {
  const state = { url: '', up: true };
  const server: Server = createServer((req, res) => {
    if (!state.up || req.url !== '/.well-known/openid-configuration') {
      res.writeHead(503, { 'content-type': 'text/plain' }).end('down');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(
      JSON.stringify({
        issuer: state.url,
        authorization_endpoint: `${state.url}/auth`,
        token_endpoint: `${state.url}/token`,
        jwks_uri: `${state.url}/jwks`,
        response_types_supported: ['code'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: ['RS256'],
      }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return Object.assign(state, {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  });
}

describe('issue #18, smaller holes', () => {
  let broker: TestBroker;
  let issuer: Awaited<ReturnType<typeof startIssuer>>;
  let clock = Date.now();

  before(async () => {
    issuer = await startIssuer();
    broker = await startBroker({ env: { ALLOWED_RETURN_DOMAINS: 'app.example.com' }, now: () => clock });
    const profiles = [
      { name: 'keyed', auth_type: 'api_key' },
      {
        name: 'form-keyed',
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
        // Its probe goes to loopback, which the egress guard refuses: a 502 meant for the caller.
        name: 'probed',
        auth_type: 'header',
        api_base_url: 'http://127.0.0.1:9',
        params: {
          auth_strategy: { type: 'header', config: { header_name: 'X-Api-Key' } },
          validation: { url: '/me' },
        },
      },
      {
        name: 'plain-oauth',
        client_id: 'c',
        client_secret: 's',
        auth_url: 'https://idp.example.com/authorize',
        token_url: 'https://idp.example.com/token',
      },
      {
        name: 'discovered',
        client_id: 'c',
        client_secret: 's',
        issuer: issuer.url,
        enable_discovery: true,
        scopes: ['openid'],
      },
    ];
    for (const profile of profiles) {
      const res = await broker.request({ method: 'POST', url: '/providers', payload: { profile } });
      assert.equal(res.statusCode, 201, res.body);
    }
  });
  after(async () => {
    await broker?.close();
    await issuer?.close();
  });

  async function start(provider: string, user = 'u1') {
    const res = await broker.request({
      method: 'POST',
      url: '/v1/request-connection',
      payload: { user_id: user, provider_name: provider, return_url: RETURN },
    });
    assert.equal(res.statusCode, 200, res.body);
    return json<{ state: string; connection_id: string }>(res);
  }
  const statusOf = async (id: string) =>
    json<{ status: string }>(await broker.request({ method: 'GET', url: `/v1/check-connection/${id}` }))
      .status;
  const captureJson = (state: string, credentials: Record<string, string>) =>
    broker.request({
      method: 'POST',
      url: '/v1/capture-credential',
      key: null,
      payload: { state, credentials },
    });

  it('accepts a state only in the exact form it was issued (no padding, stray characters or spare bits)', async () => {
    const { state } = await start('keyed');
    const last = state.at(-1)!;
    // Same bytes to a lenient decoder: the 43rd character of a 32-byte MAC has two unused bits.
    const spareBits = `${state.slice(0, -1)}${BASE64URL[BASE64URL.indexOf(last) ^ 1]}`;
    const variants = [`${state}=`, `${state}==`, `${state}!`, `${state} `, spareBits];
    for (const variant of variants) {
      const res = await broker.request({
        method: 'GET',
        url: `/v1/capture-schema?state=${encodeURIComponent(variant)}`,
        key: null,
      });
      assertProblem(res, 404, 'capture_not_available', JSON.stringify(variant));
    }
    const exact = await broker.request({
      method: 'GET',
      url: `/v1/capture-schema?state=${encodeURIComponent(state)}`,
      key: null,
    });
    assert.equal(exact.statusCode, 200, exact.body);

    // On the OAuth callback a variant is not the state: a plain page, and the flow stays unused.
    const oauth = await start('plain-oauth');
    const variant = await broker.request({
      method: 'GET',
      url: `/auth/callback?error=access_denied&state=${encodeURIComponent(`${oauth.state}=`)}`,
      key: null,
    });
    assert.equal(variant.statusCode, 400, variant.body);
    assert.equal(variant.headers.location, undefined);
    assert.equal(await statusOf(oauth.connection_id), 'pending');
    const real = await broker.request({
      method: 'GET',
      url: `/auth/callback?error=access_denied&state=${encodeURIComponent(oauth.state)}`,
      key: null,
    });
    assert.equal(real.statusCode, 302);
    assert.equal(new URL(real.headers.location as string).searchParams.get('error'), 'access_denied');
  });

  it('refuses captured values with control characters, naming the field, and keeps the link usable (JSON)', async () => {
    const { state, connection_id } = await start('keyed');
    for (const c of ['\r', '\n', '\0', '\x7f', '\t', '\x1b', '\u0085']) {
      const value = `sk_live_ctl${c}tail`;
      const res = await captureJson(state, { api_key: value });
      // A NUL is refused at the edge, before the route (http/unstorable-text.ts), naming the field too.
      const nul = c === '\0';
      const body = assertProblem<{ error: string; details: { path: string; message: string }[] }>(
        res,
        400,
        nul ? 'invalid_request' : 'invalid_credentials',
        JSON.stringify(c),
      );
      assert.deepEqual(
        body.details.map((d) => d.path),
        [nul ? 'body.credentials.api_key' : 'credentials.api_key'],
      );
      assert.match(body.details[0]!.message, nul ? /NUL character/ : /control character/);
      assert.ok(!res.body.includes('sk_live_ctl'), 'the value is never echoed');
      assert.equal(await statusOf(connection_id), 'pending', 'nothing changed');
    }
    const fixed = await captureJson(state, { api_key: 'sk_live_clean' });
    assert.equal(fixed.statusCode, 200, fixed.body);
    const token = json<{ credentials: Record<string, string> }>(
      await broker.request({ method: 'GET', url: `/v1/token/${connection_id}` }),
    );
    assert.deepEqual(token.credentials, { api_key: 'sk_live_clean' });
  });

  it('shows the control-character refusal next to the field on the hosted form, and accepts the corrected form', async () => {
    const { state, connection_id } = await start('form-keyed');
    const post = (fields: Record<string, string>) =>
      broker.request({
        method: 'POST',
        url: '/connect/capture',
        key: null,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams({ state, ...fields }).toString(),
      });
    const refused = await post({ token: 'tok\r\nX-Injected: 1', account: 'acme' });
    assert.equal(refused.statusCode, 400, refused.body);
    assert.match(refused.headers['content-type'] as string, /text\/html/);
    // The message sits right after the token input, which points at it; the account field has none.
    assert.match(
      refused.body,
      /<input id="f-token" name="token"[^>]* aria-invalid="true" aria-describedby="f-token-error">\n<p class="field-error" id="f-token-error">contains a control character[^<]*<\/p>/,
    );
    assert.ok(!refused.body.includes('f-account-error'));
    assert.ok(!refused.body.includes('X-Injected'), 'the value is never echoed');
    assert.equal(await statusOf(connection_id), 'pending');

    const accepted = await post({ token: 'tok-clean', account: 'acme' });
    assert.equal(accepted.statusCode, 303, accepted.body);
    assert.equal(await statusOf(connection_id), 'active');
  });

  it('answers /v1/resolve the same for an unknown provider and a missing connection', async () => {
    const agent = await createAgentWithToken(broker, 'resolver', {
      allowed_providers: ['*'],
      allowed_workspaces: ['*'],
    });
    for (const credential of [{}, { key: null, headers: { authorization: `Bearer ${agent.token}` } }]) {
      const answers: Record<string, unknown>[] = [];
      for (const provider of ['no-such-provider', 'keyed']) {
        const res = await broker.request({
          method: 'GET',
          url: `/v1/resolve?workspace_id=nobody&provider_name=${provider}`,
          ...credential,
        });
        const { request_id: _differs, ...rest } = json<{ request_id: string }>(res);
        answers.push({ status: res.statusCode, ...rest });
      }
      assert.deepEqual(answers[0], answers[1]);
      assert.equal(answers[0]!.status, 404);
      assert.equal(answers[0]!.error, 'connection_not_found');
    }
  });

  describe('a 500 names no internal code', () => {
    let grpcServer: GrpcServer;
    let client: NexusClient;
    let unreadable: string;
    before(async () => {
      const { state, connection_id } = await start('keyed', 'u-500');
      assert.equal((await captureJson(state, { api_key: 'sk_live_500' })).statusCode, 200);
      // Re-label the ciphertext with a key id that is in no ring: reading it fails key_not_in_ring.
      const db = broker.container.db.kysely;
      const row = await db
        .selectFrom('connections')
        .select('credentials')
        .where('id', '=', connection_id)
        .executeTakeFirstOrThrow();
      const blob = Buffer.from(row.credentials!);
      blob[3] = blob[3] === 0x30 ? 0x31 : 0x30;
      await db
        .updateTable('connections')
        .set({ credentials: new Uint8Array(blob) })
        .where('id', '=', connection_id)
        .execute();
      unreadable = connection_id;
      const started = await startGrpc(broker);
      grpcServer = started.server;
      client = new NexusClient(started.address);
    });
    after(async () => {
      client?.close();
      await grpcServer?.close(1_000);
    });

    const loggedWith = (requestId: string, code: string) =>
      broker.logs.some((l) => l.includes(`"request_id":"${requestId}"`) && l.includes(`"code":"${code}"`));

    it('REST: 500 internal_error with the request id; key_not_in_ring only in the log', async () => {
      const res = await broker.request({ method: 'GET', url: `/v1/token/${unreadable}` });
      assert.equal(res.statusCode, 500, res.body);
      const body = json<{ error: string; code: string; message: string; request_id: string }>(res);
      assert.deepEqual(Object.keys(body).sort(), ['code', 'error', 'message', 'request_id']);
      assert.equal(body.error, 'internal_error');
      assert.equal(body.code, 'internal_error', 'code repeats error (issue #17)');
      assert.equal(body.message, GENERIC);
      assert.ok(!/key_not_in_ring|decryption|ring/.test(res.body), res.body);
      assert.ok(loggedWith(body.request_id, 'key_not_in_ring'), 'the log keeps the real code');
    });

    it('gRPC: INTERNAL with reason internal_error; key_not_in_ring only in the log', async () => {
      const failure = await client.fail(
        'GetToken',
        { connection_id: unreadable },
        { 'x-api-key': broker.adminKey },
      );
      assert.equal(failure.code, grpcStatus.INTERNAL);
      assert.equal(failure.message, GENERIC);
      assert.equal(failure.trailers['nexus-error-code'], 'internal_error');
      assert.equal(failure.errorInfo?.reason, 'internal_error');
      const requestId = failure.trailers['nexus-request-id']!;
      assert.equal(failure.errorInfo?.metadata.request_id, requestId);
      assert.ok(!JSON.stringify(failure).includes('key_not_in_ring'));
      assert.ok(loggedWith(requestId, 'key_not_in_ring'), 'the log keeps the real code');
    });

    it('keeps 4xx and the 5xx meant for callers as they are', async () => {
      const { state } = await start('probed');
      const res = await captureJson(state, { api_key: 'sk_live_probe' });
      assertProblem(res, 502, 'credentials_unverifiable');
      const missing = await client.fail(
        'GetToken',
        { connection_id: '00000000-0000-4000-8000-000000000000' },
        { 'x-api-key': broker.adminKey },
      );
      assert.equal(missing.trailers['nexus-error-code'], 'connection_not_found');
    });
  });

  it('creates no connection or flow when request-connection is refused', async () => {
    const db = broker.container.db.kysely;
    const count = async () => ({
      connections: (await db.selectFrom('connections').select('id').execute()).length,
      flows: (await db.selectFrom('consent_flows').select('id').execute()).length,
    });
    // The discovery document goes away and its cached copy expires: the next start cannot build a
    // URL. (The clock moves first, so the agent's token below is issued at the new time.)
    issuer.up = false;
    clock += 2 * 3600_000;
    // An agent whose grant covers only one provider and one user.
    const providers = json<{ id: string; name: string }[]>(
      await broker.request({ method: 'GET', url: '/providers' }),
    );
    const keyedId = providers.find((p) => p.name === 'keyed')!.id;
    const agent = await createAgentWithToken(broker, 'narrow', {
      allowed_providers: [keyedId],
      allowed_workspaces: ['alice'],
    });
    const asAgent = { key: null, headers: { authorization: `Bearer ${agent.token}` } };
    const cases: [string, Record<string, unknown>, object, number, string][] = [
      [
        'return URL not allowed',
        { user_id: 'u', provider_name: 'plain-oauth', return_url: 'https://evil.example.net/cb' },
        {},
        400,
        'return_url_not_allowed',
      ],
      [
        // Its discovery document (at the origin of auth_url, issue #17) cannot be read.
        'openid whose discovery document cannot be read',
        { user_id: 'u', provider_name: 'plain-oauth', scopes: ['openid'], return_url: RETURN },
        {},
        422,
        'discovery_failed',
      ],
      [
        'bad scopes',
        { user_id: 'u', provider_name: 'plain-oauth', scopes: ['a b'], return_url: RETURN },
        {},
        400,
        'invalid_request',
      ],
      [
        'unknown provider',
        { user_id: 'u', provider_name: 'nope', return_url: RETURN },
        {},
        404,
        'provider_not_found',
      ],
      [
        'provider outside the grant',
        { user_id: 'alice', provider_name: 'plain-oauth', return_url: RETURN },
        asAgent,
        404,
        'provider_not_found',
      ],
      [
        'user outside the grant',
        { user_id: 'bob', provider_name: 'keyed', return_url: RETURN },
        asAgent,
        403,
        'forbidden',
      ],
      [
        'discovery document unavailable',
        { user_id: 'u', provider_name: 'discovered', return_url: RETURN },
        {},
        422,
        'discovery_failed',
      ],
    ];
    for (const [what, payload, credential, status, code] of cases) {
      const before = await count();
      const res = await broker.request({
        method: 'POST',
        url: '/v1/request-connection',
        payload,
        ...credential,
      });
      assert.equal(res.statusCode, status, `${what}: ${res.body}`);
      assert.equal(json(res).error, code, what);
      assert.deepEqual(await count(), before, `${what}: nothing written`);
    }
    // The same calls that succeed write one of each.
    const before = await count();
    await start('plain-oauth');
    assert.deepEqual(await count(), { connections: before.connections + 1, flows: before.flows + 1 });
  });
});
