/**
 * Issue #17, part "REST": an original Nexus client (the Go SDK, the original CLI's manifests, the
 * original docs' examples) speaking the original REST wire to Nexus, on SQLite and PostgreSQL.
 * Every request here is one the original accepted; each assertion names what an original client
 * reads. The security defaults stay on: authenticated agent API, return-URL allow-list, scope
 * `full` for provider writes, the secret-destination guard, egress through the guard (the probe
 * API on loopback is reached only because NEXUS_EGRESS_ALLOWED_CIDRS allows 127.0.0.1/32).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createAgentWithToken, json, startBroker, type TestBroker } from './harness.ts';

const RETURN = 'http://localhost:3000/connected';
const GOOD_KEY = 'sk-compat-good-5a1e';
const REPO = join(import.meta.dirname, '..', '..', '..');

/** An upstream API that accepts one key at `/base/users/me` (a user_info_endpoint under api_base_url). */
async function startApi(): Promise<{ server: Server; base: string; seen: string[] }> {
  const seen: string[] = [];
  const server = createServer((req, res) => {
    seen.push(req.url ?? '');
    const ok = req.url === '/base/users/me' && req.headers.authorization === `Bearer ${GOOD_KEY}`;
    res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json' }).end(ok ? '{"id":"me"}' : '{}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

const oauthProfile = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  client_id: `${name}-client`,
  client_secret: `${name}-secret`,
  auth_url: 'https://login.example.com/authorize',
  token_url: 'https://login.example.com/token',
  scopes: ['api:read'],
  ...extra,
});

/** The `{error, code}` pair an original client reads: both there, the same value. */
function assertError(res: { statusCode: number; body: string }, status: number, code: string): void {
  assert.equal(res.statusCode, status, res.body);
  const body = JSON.parse(res.body) as { error?: string; code?: string };
  assert.equal(body.error, code, res.body);
  assert.equal(body.code, code, `the original Go SDK reads "code": ${res.body}`);
}

describe('issue #17: the original REST wire', () => {
  let broker: TestBroker;
  let api: Awaited<ReturnType<typeof startApi>>;

  before(async () => {
    api = await startApi();
    broker = await startBroker({ env: { NEXUS_EGRESS_ALLOWED_CIDRS: '127.0.0.1/32' } });
  });
  after(async () => {
    await broker?.close();
    await new Promise((resolve) => api?.server.close(resolve));
  });

  const call = (method: string, url: string, payload?: unknown, key?: string | null) =>
    broker.request({
      method: method as 'GET',
      url,
      ...(payload === undefined ? {} : { payload: payload as object }),
      ...(key === undefined ? {} : { key }),
    });

  it('serves the provider registry at /v1/providers as at /providers: create, read, replace, patch, delete', async () => {
    const created = await call('POST', '/v1/providers', { profile: oauthProfile('gw-one') });
    assert.equal(created.statusCode, 201, created.body);
    const { id, message, warnings } = json<{ id: string; message: string; warnings?: unknown[] }>(created);
    assert.equal(typeof message, 'string');
    assert.equal(warnings, undefined, 'no openid: nothing to warn about');

    const read = await call('GET', `/v1/providers/${id}`);
    assert.equal(read.statusCode, 200, read.body);
    const view = json<Record<string, unknown>>(read);
    assert.equal(view.name, 'gw-one');
    assert.equal(view.client_secret, undefined, 'GET never returns client_secret');
    assert.ok(!read.body.includes('gw-one-secret'));

    // PUT with a bare profile (the original's body), at both paths; the stored secret is kept.
    const bare = oauthProfile('gw-one', { description: 'replaced bare', client_secret: undefined });
    const put = await call('PUT', `/providers/${id}`, bare);
    assert.equal(put.statusCode, 200, put.body);
    assert.equal(json(put).description, 'replaced bare');
    assert.equal(json(put).has_client_secret, true);
    const putV1 = await call('PUT', `/v1/providers/${id}`, {
      profile: { ...bare, description: 'replaced wrapped' },
    });
    assert.equal(putV1.statusCode, 200, putV1.body);
    assert.equal(json(putV1).description, 'replaced wrapped');

    // PATCH with the flat map the original documents, at both paths.
    const patched = await call('PATCH', `/providers/${id}`, { scopes: ['new', 'scope'] });
    assert.equal(patched.statusCode, 200, patched.body);
    assert.deepEqual(json(patched).scopes, ['new', 'scope']);
    const patchedV1 = await call('PATCH', `/v1/providers/${id}`, { category: 'crm' });
    assert.equal(patchedV1.statusCode, 200, patchedV1.body);
    assert.equal(json(patchedV1).category, 'crm');
    assert.deepEqual(json(patchedV1).scopes, ['new', 'scope'], 'other fields kept');

    // Validated like POST, in either form; fields nobody ever sent are still refused.
    assertError(
      await call('PUT', `/v1/providers/${id}`, { ...bare, name: 'Not A Name' }),
      400,
      'invalid_request',
    );
    assertError(await call('PATCH', `/providers/${id}`, { scopes: ['a b'] }), 400, 'invalid_request');
    const unknown = await call('PATCH', `/providers/${id}`, { scopes: ['x'], colour: 'blue' });
    assertError(unknown, 400, 'invalid_request');
    assert.ok(unknown.body.includes('colour'), unknown.body);
    const missing = '00000000-0000-4000-8000-000000000000';
    assertError(await call('PUT', `/v1/providers/${missing}`, bare), 404, 'provider_not_found');
    assertError(
      await call('PATCH', `/v1/providers/${missing}`, { scopes: ['x'] }),
      404,
      'provider_not_found',
    );
    assertError(await call('GET', `/v1/providers/${missing}`), 404, 'provider_not_found');

    const deleted = await call('DELETE', `/v1/providers/${id}`);
    assert.equal(deleted.statusCode, 200, deleted.body);
    assertError(await call('GET', `/providers/${id}`), 404, 'provider_not_found');

    // The Go SDK sends nil slices and maps as null: absent, in POST, PUT and PATCH alike.
    const nulls = await call('POST', '/v1/providers', {
      profile: { name: 'gw-nulls', auth_type: 'api_key', scopes: null, params: null },
    });
    assert.equal(nulls.statusCode, 201, nulls.body);
    const nullsId = json<{ id: string }>(nulls).id;
    const nullsView = json<{ scopes: string[]; params: object }>(await call('GET', `/providers/${nullsId}`));
    // No strategy named: the original's api_key default is written in (issue #25).
    const written = { auth_strategy: { type: 'header', config: { header_name: 'X-API-Key' } } };
    assert.deepEqual([nullsView.scopes, nullsView.params], [[], written]);
    const reset = await call('PATCH', `/v1/providers/${nullsId}`, { scopes: ['a'] });
    assert.deepEqual(json(reset).scopes, ['a']);
    assert.deepEqual(json(await call('PATCH', `/providers/${nullsId}`, { scopes: null })).scopes, []);
    const putNull = await call('PUT', `/providers/${nullsId}`, {
      name: 'gw-nulls',
      auth_type: 'api_key',
      scopes: null,
    });
    assert.equal(putNull.statusCode, 200, putNull.body);

    // DELETE /providers/by-name/{name}.
    const other = json<{ id: string }>(await call('POST', '/providers', { profile: oauthProfile('gw-two') }));
    const byName = await call('DELETE', '/providers/by-name/gw-two');
    assert.equal(byName.statusCode, 200, byName.body);
    assert.equal(json(byName).id, other.id);
    assertError(await call('GET', '/providers/by-name/gw-two'), 404, 'provider_not_found');
    assertError(await call('DELETE', '/providers/by-name/gw-two'), 404, 'provider_not_found');
  });

  it('keeps provider writes to admin keys of scope full, on /v1 too', async () => {
    const readKey = json<{ key: string }>(
      await call('POST', '/admin/v1/admin-keys', { name: 'compat-reader', scope: 'read' }),
    ).key;
    const agent = await createAgentWithToken(broker, 'compat-agent', {
      allowed_providers: ['*'],
      allowed_workspaces: ['*'],
    });
    const asAgent = (method: string, url: string, payload?: unknown) =>
      broker.request({
        method: method as 'GET',
        url,
        key: null,
        headers: { authorization: `Bearer ${agent.token}` },
        ...(payload === undefined ? {} : { payload: payload as object }),
      });
    const id = json<{ id: string }>(
      await call('POST', '/v1/providers', { profile: oauthProfile('gw-scoped') }),
    ).id;

    assertError(
      await call('POST', '/v1/providers', { profile: oauthProfile('gw-x') }, readKey),
      403,
      'forbidden',
    );
    assertError(await call('PATCH', `/v1/providers/${id}`, { scopes: ['y'] }, readKey), 403, 'forbidden');
    assertError(await call('DELETE', `/v1/providers/${id}`, undefined, readKey), 403, 'forbidden');
    assertError(await call('DELETE', '/providers/by-name/gw-scoped', undefined, readKey), 403, 'forbidden');
    assert.equal((await call('GET', `/v1/providers/${id}`, undefined, readKey)).statusCode, 200);
    assertError(await asAgent('POST', '/v1/providers', { profile: oauthProfile('gw-y') }), 403, 'forbidden');
    assertError(await asAgent('PUT', `/v1/providers/${id}`, oauthProfile('gw-scoped')), 403, 'forbidden');
    assertError(
      await call('POST', '/v1/providers', { profile: oauthProfile('gw-z') }, null),
      401,
      'unauthorized',
    );
    assert.equal((await call('GET', `/v1/providers/${id}`)).statusCode, 200, 'nothing was changed');
  });

  it('guards where secrets go on the /v1 routes and in the original body shapes', async () => {
    const id = json<{ id: string }>(
      await call('POST', '/v1/providers', { profile: oauthProfile('gw-dest') }),
    ).id;
    const moved = { token_url: 'https://attacker.example.net/token' };
    assertError(await call('PATCH', `/v1/providers/${id}`, moved), 400, 'provider_secret_required');
    assertError(
      await call('PUT', `/providers/${id}`, oauthProfile('gw-dest', { ...moved, client_secret: undefined })),
      400,
      'provider_secret_required',
    );
    const view = json<{ token_url: string }>(await call('GET', `/v1/providers/${id}`));
    assert.equal(view.token_url, 'https://login.example.com/token', 'unchanged');
    const withSecret = await call('PATCH', `/v1/providers/${id}`, {
      ...moved,
      client_secret: 'gw-dest-secret',
    });
    assert.equal(withSecret.statusCode, 200, withSecret.body);
  });

  it('starts connections as the Go SDK asks: scopes null, metadata, action, a name in another case', async () => {
    const created = json<{ id: string }>(
      await call('POST', '/providers', {
        profile: oauthProfile('c1-idp', { scopes: ['api:read', 'api:write'] }),
      }),
    );
    const start = (body: Record<string, unknown>) =>
      call('POST', '/v1/request-connection', { user_id: 'u-sdk', return_url: RETURN, ...body });

    const res = await start({
      provider_name: ' C1-IDP ',
      scopes: null,
      metadata: { ticket: 'ticket-value-3f9a1c', nested: { note: 'metadata-value-not-kept' }, list: [1, 2] },
      action: 'connect',
    });
    assert.equal(res.statusCode, 200, res.body);
    const started = json<{ authUrl: string; scopes: string[]; provider_id: string; connection_id: string }>(
      res,
    );
    assert.deepEqual(started.scopes, ['api:read', 'api:write'], "null means the provider's default scopes");
    assert.equal(started.provider_id, created.id);
    assert.equal(new URL(started.authUrl).searchParams.get('scope'), 'api:read api:write');

    for (const body of [
      { provider_name: 'C1-IDP' },
      { provider_id: 'c1-IDP', scopes: [] },
      { provider_name: 'c1-idp' },
    ]) {
      const again = await start(body);
      assert.equal(again.statusCode, 200, `${JSON.stringify(body)}: ${again.body}`);
      assert.deepEqual(json(again).scopes, ['api:read', 'api:write']);
    }
    assert.equal(json(await call('GET', '/providers/by-name/C1-IDP')).id, created.id);
    assertError(await start({ provider_name: 'c1_idp' }), 404, 'provider_not_found');

    // metadata and action are bounded; other fields are still refused.
    assertError(
      await start({ provider_name: 'c1-idp', metadata: { big: 'x'.repeat(9000) } }),
      400,
      'invalid_request',
    );
    assertError(await start({ provider_name: 'c1-idp', action: 'a'.repeat(257) }), 400, 'invalid_request');
    assertError(await start({ provider_name: 'c1-idp', action: 'line\nbreak' }), 400, 'invalid_request');
    const unknown = await start({ provider_name: 'c1-idp', workspace: 'w' });
    assertError(unknown, 400, 'invalid_request');
    assert.deepEqual(json<{ details: unknown }>(unknown).details, [
      { path: 'body.workspace', message: 'unknown field' },
    ]);

    // POST /auth/consent-spec takes scopes: null too.
    const spec = await call('POST', '/auth/consent-spec', {
      workspace_id: 'w-1',
      provider_id: created.id,
      scopes: null,
      return_url: RETURN,
    });
    assert.equal(spec.statusCode, 200, spec.body);
    assert.deepEqual(json(spec).scopes, ['api:read', 'api:write']);

    // The audit event names the action and metadata's keys; no metadata value is kept anywhere.
    await broker.container.audit.flush();
    const events = json<{ events: { resource_id: string; details: Record<string, unknown> }[] }>(
      await call('GET', '/audit?event_type=connection.requested&limit=50'),
    ).events;
    const event = events.find((e) => e.resource_id === started.connection_id);
    assert.ok(event, 'the request was audited');
    assert.equal(event.details.request_action, 'connect');
    assert.deepEqual(event.details.metadata_keys, ['ticket', 'nested', 'list']);
    const db = broker.container.db.kysely;
    const rows = JSON.stringify([
      await db.selectFrom('connections').selectAll().execute(),
      await db.selectFrom('consent_flows').selectAll().execute(),
      await db.selectFrom('audit_events').selectAll().execute(),
    ]);
    assert.ok(
      !rows.includes('metadata-value-not-kept') && !rows.includes('ticket-value-3f9a1c'),
      'metadata values are not stored',
    );
  });

  it('answers errors with code beside error, and documents it', async () => {
    const missing = await call('GET', '/v1/check-connection/00000000-0000-4000-8000-000000000000');
    assertError(missing, 404, json(missing).error as string);
    assertError(await call('GET', '/no/such/route'), 404, 'route_not_found');
    assertError(await call('GET', '/providers', undefined, 'wrong-key'), 401, 'unauthorized');
    const doc = json<{
      components: { schemas: Record<string, { properties: Record<string, unknown>; required?: string[] }> };
    }>(await call('GET', '/openapi.json'));
    const error = doc.components.schemas.Error!;
    assert.ok(error.properties.code, 'the OpenAPI error schema lists code');
    assert.ok(error.required?.includes('code'));
  });

  it('answers /health with {"status": "healthy"}', async () => {
    const res = await call('GET', '/health', undefined, null);
    assert.equal(res.statusCode, 200);
    assert.equal(json(res).status, 'healthy');
  });

  it('captures static credentials through /auth/capture-schema and /auth/capture-credential', async () => {
    const credentialSchema = {
      type: 'object',
      required: ['api_key'],
      properties: { api_key: { type: 'string', title: 'API key' } },
    };
    await call('POST', '/providers', {
      profile: {
        name: 'openai-like',
        auth_type: 'api_key',
        params: {
          credential_schema: credentialSchema,
          auth_strategy: {
            type: 'header',
            config: { header_name: 'Authorization', credential_field: 'api_key', value_prefix: 'Bearer ' },
          },
        },
      },
    });
    await call('POST', '/providers', { profile: { name: 'plain-key', auth_type: 'api_key' } });
    const start = async (provider: string) =>
      json<{ state: string; connection_id: string; authUrl: string }>(
        await call('POST', '/v1/request-connection', {
          user_id: 'u-capture',
          provider_name: provider,
          scopes: null,
          return_url: RETURN,
        }),
      );

    const flow = await start('openai-like');
    for (const path of ['/auth/capture-schema', '/v1/capture-schema']) {
      const res = await call('GET', `${path}?state=${encodeURIComponent(flow.state)}`, undefined, null);
      assert.equal(res.statusCode, 200, `${path}: ${res.body}`);
      const body = json<{ provider_name: string; schema: unknown; fields: unknown[] }>(res);
      assert.equal(body.provider_name, 'openai-like', path);
      assert.deepEqual(body.schema, credentialSchema, `${path}: the provider's credential_schema`);
      assert.ok(Array.isArray(body.fields), `${path}: Nexus's fields stay beside it`);
    }
    const captured = await call(
      'POST',
      '/auth/capture-credential',
      { state: flow.state, credentials: { api_key: 'sk-captured' } },
      null,
    );
    assert.equal(captured.statusCode, 200, captured.body);
    const result = json<{ connection_id: string; status: string; redirect_url: string }>(captured);
    assert.equal(result.connection_id, flow.connection_id);
    assert.equal(result.status, 'active');
    const back = new URL(result.redirect_url);
    assert.equal(back.searchParams.get('status'), 'success');
    assert.equal(back.searchParams.get('connection_id'), flow.connection_id);
    assert.equal(json(await call('GET', `/v1/check-connection/${flow.connection_id}`)).status, 'active');
    assertError(
      await call(
        'POST',
        '/auth/capture-credential',
        { state: flow.state, credentials: { api_key: 'again' } },
        null,
      ),
      404,
      'capture_not_available',
    );

    // Without a credential_schema the schema is written from the fields the strategy applies.
    const plain = await start('plain-key');
    const schema = json<{ schema: { properties: Record<string, { format?: string }>; required: string[] } }>(
      await call('GET', `/auth/capture-schema?state=${encodeURIComponent(plain.state)}`, undefined, null),
    ).schema;
    assert.deepEqual(Object.keys(schema.properties), ['api_key']);
    assert.equal(schema.properties.api_key!.format, 'password');
    assert.deepEqual(schema.required, ['api_key']);
  });

  it('takes user_info_endpoint as a path under api_base_url: kept as written, probed under the base', async () => {
    const profile = {
      name: 'me-probed',
      auth_type: 'api_key',
      api_base_url: `${api.base}/base`,
      user_info_endpoint: '/users/me',
      params: {
        validation: {},
        auth_strategy: {
          type: 'header',
          config: { header_name: 'Authorization', credential_field: 'api_key', value_prefix: 'Bearer ' },
        },
      },
    };
    const created = await call('POST', '/providers', { profile });
    assert.equal(created.statusCode, 201, created.body);
    const id = json<{ id: string }>(created).id;
    assert.equal(json(await call('GET', `/providers/${id}`)).user_info_endpoint, '/users/me');
    const metadata = json<Record<string, Record<string, { user_info_endpoint: string }>>>(
      await call('GET', '/v1/providers/metadata'),
    );
    assert.equal(metadata.api_key!['me-probed']!.user_info_endpoint, '/users/me', 'answered as written');

    const state = async () =>
      json<{ state: string; connection_id: string }>(
        await call('POST', '/v1/request-connection', {
          user_id: 'u-probe',
          provider_name: 'me-probed',
          return_url: RETURN,
        }),
      );
    const first = await state();
    const refused = await call(
      'POST',
      '/auth/capture-credential',
      { state: first.state, credentials: { api_key: 'sk-wrong' } },
      null,
    );
    assertError(refused, 422, 'credentials_rejected');
    const accepted = await call(
      'POST',
      '/v1/capture-credential',
      { state: first.state, credentials: { api_key: GOOD_KEY } },
      null,
    );
    assert.equal(accepted.statusCode, 200, accepted.body);
    assert.deepEqual(api.seen.slice(-2), ['/base/users/me', '/base/users/me'], 'probed under api_base_url');

    // A path needs a base; a protocol-relative or fragment URL is not a path.
    const invalid = async (extra: Record<string, unknown>) =>
      call('POST', '/providers', {
        profile: { ...profile, name: `me-${Object.keys(extra).length}x`, ...extra },
      });
    const noBase = await invalid({ api_base_url: null });
    assertError(noBase, 400, 'invalid_provider');
    assert.ok(noBase.body.includes('user_info_endpoint'), noBase.body);
    assertError(await invalid({ user_info_endpoint: '//evil.example.com/me' }), 400, 'invalid_request');
    assertError(await invalid({ user_info_endpoint: 'users/me' }), 400, 'invalid_request');
    // PATCH to a path works like POST.
    const patched = await call('PATCH', `/providers/${id}`, { user_info_endpoint: '/v2/me' });
    assert.equal(patched.statusCode, 200, patched.body);
    assert.equal(json(patched).user_info_endpoint, '/v2/me');
  });

  it("applies an original nexus-providers.yaml with Nexus's CLI", async () => {
    await broker.app.listen({ port: 0, host: '127.0.0.1' });
    const url = `http://127.0.0.1:${(broker.app.server.address() as AddressInfo).port}`;
    const dir = mkdtempSync(join(tmpdir(), 'nexus-compat-'));
    try {
      const file = join(dir, 'nexus-providers.yaml');
      // The original's format and fields, a Google-style registration included (hosts under
      // .invalid: the test never reaches the internet).
      writeFileSync(
        file,
        `providers:
  - name: google-compat
    client_id: google-client-id.apps.googleusercontent.com
    client_secret: \${GOOGLE_CLIENT_SECRET}
    auth_url: https://accounts.google.invalid/o/oauth2/v2/auth
    token_url: https://oauth2.googleapis.invalid/token
    scopes: [openid, email]
    params:
      access_type: offline
      prompt: consent
    api_base_url: https://www.googleapis.invalid
    user_info_endpoint: /oauth2/v3/userinfo
    description: Google Workspace
    category: productivity
  - name: openai-compat
    auth_type: api_key
    enable_discovery: false
    api_base_url: https://api.openai.invalid
    user_info_endpoint: /v1/me
    description: OpenAI API keys
    category: ai
    params:
      credential_schema:
        type: object
        required: [api_key]
        properties:
          api_key: { type: string, title: API key }
      auth_strategy:
        type: header
        config: { header_name: Authorization, credential_field: api_key, value_prefix: "Bearer " }
`,
      );
      const cli = (args: string[]) =>
        runCli(args, {
          NEXUS_URL: url,
          API_KEY: broker.adminKey,
          GOOGLE_CLIENT_SECRET: 'google-compat-secret',
          HOME: dir,
          XDG_CONFIG_HOME: join(dir, 'config'),
        });
      const applied = await cli(['apply', '-f', file, '--yes']);
      assert.equal(applied.code, 0, `${applied.stdout}\n${applied.stderr}`);
      assert.ok(!`${applied.stdout}${applied.stderr}`.includes('google-compat-secret'), 'no secret printed');
      const id = json<{ id: string }>(await call('GET', '/providers/by-name/google-compat')).id;
      const view = json<Record<string, unknown>>(await call('GET', `/v1/providers/${id}`));
      assert.equal(view.user_info_endpoint, '/oauth2/v3/userinfo');
      assert.equal(view.has_client_secret, true);
      assert.deepEqual(view.scopes, ['openid', 'email']);
      const plan = await cli(['plan', '-f', file]);
      assert.equal(plan.code, 0, `a second plan has nothing to do:\n${plan.stdout}\n${plan.stderr}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** Runs Nexus's operator CLI (packages/cli) as a child process. */
async function runCli(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = spawn(
    join(REPO, 'node_modules', '.bin', 'node'),
    [join(REPO, 'packages', 'cli', 'bin', 'nexus.js'), ...args],
    { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => {
    stdout += String(d);
  });
  child.stderr.on('data', (d) => {
    stderr += String(d);
  });
  const code: number = await new Promise((resolve) => child.on('close', (c) => resolve(c ?? 1)));
  return { code, stdout, stderr };
}
