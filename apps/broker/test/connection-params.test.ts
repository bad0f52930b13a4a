/**
 * Per-connection parameters (issue #20, decision 0015) against a real OpenID provider mounted under
 * a path (`/acme`): a provider whose URLs name `{tenant}` connects with `connection_config`,
 * refreshes, revokes and is proxied at its filled URLs; a value learnt from the token response
 * (`instance_url`, added by the provider's answer) is stored and is the proxy's base URL; bad
 * `connection_config` is refused with nothing stored. On SQLite and PostgreSQL (DIALECT).
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { fromStruct, NexusClient, startGrpc } from './grpc-client.ts';
import { assertProblem, json, startBroker, type TestBroker } from './harness.ts';
import { clients, REDIRECT, RETURN } from './oauth-scenario.ts';
import { type OidcFixture, startOidcProvider } from './oidc-fixture.ts';

describe('per-connection parameters (issue #20)', { timeout: 120_000 }, () => {
  let broker: TestBroker;
  let idp: OidcFixture;
  let origin: string;
  const client = clients[0]!;

  const call = async (options: Parameters<TestBroker['request']>[0], expect?: number) => {
    const res = await broker.request(options);
    if (expect !== undefined)
      assert.equal(res.statusCode, expect, `${options.method} ${options.url}: ${res.body}`);
    return res;
  };
  const start = (provider: string, user: string, config?: Record<string, unknown>) =>
    call({
      method: 'POST',
      url: '/v1/request-connection',
      payload: {
        user_id: user,
        provider_name: provider,
        return_url: RETURN,
        ...(config === undefined ? {} : { connection_config: config }),
      },
    });
  /** Through the provider's own pages back to the broker's callback; the return URL's outcome. */
  const consent = async (authUrl: string) => {
    const callback = await idp.consent(authUrl);
    assert.equal(callback.origin + callback.pathname, REDIRECT);
    const res = await call({ method: 'GET', url: callback.pathname + callback.search, key: null }, 302);
    return new URL(res.headers.location as string).searchParams;
  };
  const rows = async () => ({
    connections: (await broker.container.db.kysely.selectFrom('connections').select('id').execute()).length,
    flows: (await broker.container.db.kysely.selectFrom('consent_flows').select('id').execute()).length,
  });

  before(async () => {
    idp = await startOidcProvider({ clients, issuer: 'http://127.0.0.1:{port}/acme' });
    origin = new URL(idp.issuer).origin;
    broker = await startBroker({ env: { NEXUS_EGRESS_ALLOWED_CIDRS: '127.0.0.1/32' } });
    const at = (endpoint: string) => endpoint.replace(`${origin}/acme/`, `${origin}/{tenant}/`);
    await call(
      {
        method: 'POST',
        url: '/providers',
        payload: {
          profile: {
            name: 'tenanted',
            client_id: client.client_id,
            client_secret: client.client_secret,
            auth_url: at(idp.endpoints.authorization),
            token_url: at(idp.endpoints.token),
            api_base_url: `${origin}/{tenant}`,
            scopes: ['openid', 'offline_access'],
            params: {
              prompt: 'consent',
              revocation_endpoint: at(idp.endpoints.revocation),
              connection_parameters: {
                tenant: { title: 'Tenant', pattern: '^[a-z]{2,20}$', example: 'acme' },
                region: { title: 'Region', pattern: '^(eu|us)$', default: 'eu' },
              },
            },
          },
        },
      },
      201,
    );
    await call(
      {
        method: 'POST',
        url: '/providers',
        payload: {
          profile: {
            name: 'instance-learnt',
            client_id: client.client_id,
            client_secret: client.client_secret,
            auth_url: idp.endpoints.authorization,
            token_url: idp.endpoints.token,
            api_base_url: '{instance_url}',
            scopes: ['openid', 'offline_access'],
            params: {
              prompt: 'consent',
              learnt: {
                instance_url: {
                  from: 'token_response',
                  path: 'instance_url',
                  pattern: '^http://127\\.0\\.0\\.1:[0-9]+/[a-z]+$',
                },
              },
            },
          },
        },
      },
      201,
    );
  });
  afterEach(() => idp.setTokenResponseRewrite(undefined));
  after(async () => {
    await broker?.close();
    await idp?.close();
  });

  it('connects, refreshes, proxies and revokes at the URLs its connection_config fills', async () => {
    const started = json<{ authUrl: string; connection_id: string }>(
      await start('tenanted', 'user-1', { tenant: 'acme' }),
    );
    assert.ok(started.authUrl.startsWith(`${origin}/acme/auth?`), started.authUrl);
    const outcome = await consent(started.authUrl);
    assert.equal(outcome.get('status'), 'success', outcome.toString());
    const id = started.connection_id;

    // Stored with the default filled in, and shown in the views (not a secret).
    const listed = json<{ connections: { id: string; connection_config: unknown }[] }>(
      await call({ method: 'GET', url: '/connections?provider=tenanted' }, 200),
    );
    assert.deepEqual(listed.connections.find((c) => c.id === id)?.connection_config, {
      tenant: 'acme',
      region: 'eu',
    });
    const token = json<{ access_token: string; connection_config: unknown }>(
      await call({ method: 'GET', url: `/v1/token/${id}` }, 200),
    );
    assert.deepEqual(token.connection_config, { tenant: 'acme', region: 'eu' });

    // The refresh goes to the filled token URL (the provider answers only under /acme).
    const refreshes = idp.counts.refresh_token;
    const refreshed = json<{ access_token: string }>(
      await call({ method: 'POST', url: `/v1/refresh/${id}` }, 200),
    );
    assert.equal(idp.counts.refresh_token - refreshes, 1);
    assert.notEqual(refreshed.access_token, token.access_token);

    // The proxy's base URL is the filled api_base_url: /proxy/tenanted/me is the provider's userinfo.
    const proxied = await call(
      { method: 'GET', url: '/proxy/tenanted/me', headers: { 'x-nexus-connection-id': id } },
      200,
    );
    assert.equal(json<{ sub: string }>(proxied).sub, 'test-user');

    const revocations = idp.counts.revocation;
    const revoked = json<{ provider_revoked: boolean }>(
      await call({ method: 'DELETE', url: `/v1/connections/${id}` }, 200),
    );
    assert.equal(revoked.provider_revoked, true);
    assert.ok(idp.counts.revocation > revocations, 'the filled revocation endpoint was called');
  });

  it('refuses connection_config that does not fit, creating nothing', async () => {
    const before = await rows();
    const cases: [Record<string, unknown> | undefined, string][] = [
      [undefined, 'tenant'],
      [{ tenant: 'acme', colour: 'blue' }, 'colour'],
      [{ tenant: 'ACME' }, 'tenant'],
      [{ tenant: 'acme', region: 'mars' }, 'region'],
    ];
    for (const [config, name] of cases) {
      const body = assertProblem<{ error: string; details: { problems: { name: string }[] } }>(
        await start('tenanted', 'user-2', config),
        400,
        'invalid_connection_config',
        JSON.stringify(config),
      );
      assert.deepEqual(
        body.details.problems.map((p) => p.name),
        [name],
      );
    }
    // Not a string: refused at the edge.
    assertProblem(await start('tenanted', 'user-2', { tenant: 7 }), 400, 'invalid_request');
    // A provider without parameters takes none.
    const learnt = await start('instance-learnt', 'user-2', { instance_url: 'http://127.0.0.1:1/x' });
    assertProblem(learnt, 400, 'invalid_connection_config');
    assert.deepEqual(await rows(), before, 'no pending connection, no consent flow');
  });

  it('stores a value learnt from the token response and proxies to it', async () => {
    idp.setTokenResponseRewrite((body) =>
      body.refresh_token === undefined ? body : { ...body, instance_url: `${origin}/acme` },
    );
    const started = json<{ authUrl: string; connection_id: string }>(
      await start('instance-learnt', 'user-3'),
    );
    const outcome = await consent(started.authUrl);
    assert.equal(outcome.get('status'), 'success', outcome.toString());
    const id = started.connection_id;
    const token = json<{ connection_config: unknown }>(
      await call({ method: 'GET', url: `/v1/token/${id}` }, 200),
    );
    assert.deepEqual(token.connection_config, { instance_url: `${origin}/acme` });
    const proxied = await call(
      { method: 'GET', url: '/proxy/instance-learnt/me', headers: { 'x-nexus-connection-id': id } },
      200,
    );
    assert.equal(json<{ sub: string }>(proxied).sub, 'test-user');
  });

  it('fails the consent when a learnt value is missing or does not match its pattern', async () => {
    for (const rewrite of [
      (body: Record<string, unknown>) => ({ ...body, instance_url: 'https://attacker.example.com' }),
      (body: Record<string, unknown>) => body,
    ]) {
      idp.setTokenResponseRewrite(rewrite);
      const started = json<{ authUrl: string; connection_id: string }>(
        await start('instance-learnt', 'user-4'),
      );
      const outcome = await consent(started.authUrl);
      assert.equal(outcome.get('status'), 'failed');
      assert.equal(outcome.get('error'), 'learnt_value_invalid');
      const row = await broker.container.connectionsStore.find(started.connection_id);
      assert.equal(row?.status, 'failed');
      assert.equal(row?.credentials, null, 'no tokens kept');
      assert.equal(row?.connection_config, null);
    }
  });

  it('takes connection_config over gRPC (RequestConnectionRequest field 7) and answers it in GetToken', async () => {
    const { server, address } = await startGrpc(broker);
    const client = new NexusClient(address);
    const admin = { 'x-api-key': broker.adminKey };
    try {
      const request = { user_id: 'user-5', provider_name: 'tenanted', return_url: RETURN };
      const bad = await client.fail(
        'RequestConnection',
        { ...request, connection_config: { tenant: 'A' } },
        admin,
      );
      assert.equal(bad.code, grpc.status.INVALID_ARGUMENT);
      assert.equal(bad.errorInfo?.reason, 'invalid_connection_config');
      const started = await client.call<{ auth_url: string; connection_id: string }>(
        'RequestConnection',
        { ...request, connection_config: { tenant: 'acme', region: 'us' } },
        admin,
      );
      assert.ok(started.auth_url.startsWith(`${origin}/acme/auth?`), started.auth_url);
      assert.equal((await consent(started.auth_url)).get('status'), 'success');
      const answer = await client.call<{ token: Parameters<typeof fromStruct>[0] }>(
        'GetToken',
        { connection_id: started.connection_id },
        admin,
      );
      assert.deepEqual(fromStruct(answer.token).connection_config, { tenant: 'acme', region: 'us' });
    } finally {
      client.close();
      await server.close(1_000);
    }
  });

  it('refuses a provider whose placeholders are not declared or cannot be filled in time', async () => {
    const write = (profile: Record<string, unknown>) =>
      call({
        method: 'POST',
        url: '/providers',
        payload: {
          profile: { client_id: 'c', client_secret: 's', name: 'bad-template', ...profile },
        },
      });
    const learnt = { from: 'token_response', path: 'instance_url', pattern: '^https://[a-z.]+$' };
    const refusals: [Record<string, unknown>, string][] = [
      [{ auth_url: 'https://{sub}.example.com/a', token_url: 'https://example.com/t' }, 'auth_url'],
      [
        {
          auth_url: 'https://example.com/a',
          token_url: '{instance_url}/token',
          params: { learnt: { instance_url: learnt } },
        },
        'token_url',
      ],
      [
        {
          auth_url: 'https://{sub}.example.com/a',
          token_url: 'https://example.com/t',
          params: { connection_parameters: { sub: { title: 'Sub', pattern: '[a-z]+' } } },
        },
        'params.connection_parameters.sub.pattern',
      ],
    ];
    for (const [profile, path] of refusals) {
      const body = assertProblem<{ error: string; details: { path: string }[] }>(
        await write(profile),
        400,
        'invalid_provider',
        JSON.stringify(profile),
      );
      assert.ok(
        body.details.some((d) => d.path === path),
        `${path} in ${JSON.stringify(body.details)}`,
      );
    }
  });
  it("fills a static strategy setting from connection_config: aws_sigv4 signs for the connection's region", async () => {
    const region = {
      title: 'AWS region',
      pattern: '^[a-z]{2}(-gov)?-[a-z]+-[0-9]{1,2}$',
      default: 'us-east-1',
    };
    const profile = {
      name: 'regional-sigv4',
      auth_type: 'aws_sigv4',
      api_base_url: 'https://s3.{region}.amazonaws.com',
      params: {
        connection_parameters: { region },
        auth_strategy: { type: 'aws_sigv4', config: { service: 's3', region: '{region}' } },
      },
    };
    await call({ method: 'POST', url: '/providers', payload: { profile } }, 201);
    const undeclared = assertProblem<{ error: string; details: { path: string; message: string }[] }>(
      await call({
        method: 'POST',
        url: '/providers',
        payload: {
          profile: {
            ...profile,
            name: 'regional-sigv4-bad',
            params: {
              ...profile.params,
              auth_strategy: { type: 'aws_sigv4', config: { service: 's3', region: '{zone}' } },
            },
          },
        },
      }),
      400,
      'invalid_provider',
    );
    assert.ok(undeclared.details.some((d) => d.path === 'params.auth_strategy.config.region'));

    const tokenFor = async (config?: Record<string, string>) => {
      const started = json<{ state: string; connection_id: string }>(
        await start('regional-sigv4', `sigv4-${config?.region ?? 'default'}`, config),
      );
      const captured = await call({
        method: 'POST',
        url: '/v1/capture-credential',
        key: null,
        payload: {
          state: started.state,
          credentials: { access_key: 'AKIAEXAMPLE', secret_key: 'not-a-real-secret' },
        },
      });
      assert.ok(captured.statusCode < 400, captured.body);
      return json<{ strategy: { type: string; config: Record<string, string> } }>(
        await call({ method: 'GET', url: `/v1/token/${started.connection_id}` }, 200),
      );
    };
    assert.deepEqual((await tokenFor({ region: 'eu-west-1' })).strategy, {
      type: 'aws_sigv4',
      config: { service: 's3', region: 'eu-west-1' },
    });
    assert.equal((await tokenFor()).strategy.config.region, 'us-east-1', 'the default when none is given');
  });
});
