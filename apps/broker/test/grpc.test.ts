import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import type { GrpcServer } from '../src/grpc/server.ts';
import { fromStruct, healthCheck, NexusClient, reflectionServices, startGrpc } from './grpc-client.ts';
import { createAgentWithToken, json } from './harness.ts';
import { RETURN, Scenario } from './oauth-scenario.ts';

/**
 * `nexus.v1.NexusService` driven by an independent client (@grpc/grpc-js + @grpc/proto-loader on
 * the published .proto) against a broker with a real OpenID provider and real consent: the same
 * answers as REST, the same credentials and grants, every error status with its reason.
 */

/** GetTokenResponse and RefreshConnectionResponse: the REST answer as a Struct in `token`. */
type TokenAnswer = { token: Parameters<typeof fromStruct>[0] };
const AUDIENCE = 'https://nexus.example.test/grpc-obo';

describe('gRPC NexusService', () => {
  const s = new Scenario();
  let grpcServer: GrpcServer;
  let client: NexusClient;
  let address: string;
  const tokens: Record<string, string> = {};
  let admin: Record<string, string>;
  const asAgent = (name: string) => ({ authorization: `Bearer ${tokens[name]}` });

  async function agent(agentId: string, grant: Record<string, unknown>) {
    tokens[agentId] = (await createAgentWithToken(s.broker, agentId, grant)).token;
  }

  type AuditEvent = {
    event_type: string;
    actor: string;
    ip: string | null;
    user_agent: string | null;
    request_id: string | null;
  };
  const auditOf = async (id: string) => {
    await s.broker.container.audit.flush();
    return json<{ events: AuditEvent[] }>(
      await s.call({ method: 'GET', url: `/audit?resource=connection:${id}&limit=100` }, 200),
    ).events;
  };

  /** RequestConnection over gRPC, the user's consent at the provider, the callback over HTTP. */
  async function connect(provider: string, workspace: string, headers: Record<string, string>) {
    const started = await client.call<{ auth_url: string; connection_id: string; provider_id: string }>(
      'RequestConnection',
      { user_id: workspace, provider_name: provider, return_url: RETURN },
      headers,
    );
    assert.match(started.connection_id, /^[0-9a-f-]{36}$/);
    const callback = await s.idp.consent(started.auth_url);
    const res = await s.call({ method: 'GET', url: callback.pathname + callback.search, key: null }, 302);
    assert.equal(new URL(res.headers.location as string).searchParams.get('status'), 'success');
    return started.connection_id;
  }

  before(async () => {
    await s.start();
    admin = { 'x-api-key': s.broker.adminKey };
    const started = await startGrpc(s.broker);
    grpcServer = started.server;
    address = started.address;
    client = new NexusClient(address);
    const providers = json<{ id: string; name: string }[]>(
      await s.call({ method: 'GET', url: '/providers' }, 200),
    );
    const basic = providers.find((p) => p.name === 'idp-basic')!.id;
    await s.call({ method: 'POST', url: '/admin/v1/scopes', payload: { name: 'crm:read' } }, 201);
    await agent('grpc-bot', {
      allowed_scopes: ['crm:read', 'api:read'],
      allowed_providers: [basic],
      allowed_workspaces: ['user-g'],
    });
    await agent('other-bot', {
      allowed_scopes: ['crm:read'],
      allowed_providers: [basic],
      allowed_workspaces: ['user-o'],
    });
  });
  after(async () => {
    client?.close();
    await grpcServer?.close(1_000);
    await s.close();
  });

  it('runs the four calls end to end with a real consent, answering what REST answers', async () => {
    // The discovered provider: OpenID Connect with an RFC 7009 revocation endpoint.
    const id = await connect('idp-discovered', 'user-g', admin);
    assert.deepEqual(await client.call('CheckConnection', { connection_id: id }, admin), {
      connection_id: id,
      status: 'active',
    });
    const token = fromStruct(
      (await client.call<TokenAnswer>('GetToken', { connection_id: id }, admin)).token,
    );
    const rest = json(await s.call({ method: 'GET', url: `/v1/token/${id}` }, 200));
    assert.deepEqual(Object.keys(token).sort(), Object.keys(rest).sort());
    assert.deepEqual(token, rest);
    assert.equal(token.strategy && (token.strategy as { type: string }).type, 'oauth2');
    assert.equal((await s.stored(id)).access_token, token.access_token);
    assert.ok(!JSON.stringify(token).includes('refresh'), 'no refresh token over gRPC');

    s.clock += 3_000;
    const refreshed = fromStruct(
      (await client.call<TokenAnswer>('RefreshConnection', { connection_id: id }, admin)).token,
    );
    assert.notEqual(refreshed.access_token, token.access_token);
    assert.equal((await s.stored(id)).access_token, refreshed.access_token);
    assert.ok(!JSON.stringify(refreshed).includes((await s.stored(id)).refresh_token!));

    // The same audit trail as REST: actor and action.
    const reads = (await auditOf(id)).filter(
      (e) => e.event_type === 'connection.token_read' && /grpc-node-js/.test(e.user_agent ?? ''),
    );
    assert.equal(reads.length, 2, JSON.stringify(reads));
    for (const e of reads) {
      assert.equal(e.actor, 'admin-key:env:test');
      assert.equal(e.ip, '127.0.0.1');
      assert.ok(e.request_id);
    }

    // `superseded` is the broker's own mark of a replaced connection: refused, nothing revoked.
    const reserved = await client.fail(
      'RevokeConnection',
      { connection_id: id, reason: 'superseded' },
      admin,
    );
    assert.equal(reserved.code, grpc.status.INVALID_ARGUMENT);
    assert.deepEqual(JSON.parse(reserved.trailers['nexus-error-details']!)[0].path, 'request.reason');
    assert.equal(
      (await client.call<{ status: string }>('CheckConnection', { connection_id: id }, admin)).status,
      'active',
    );
    const revoked = await client.call<Record<string, unknown>>(
      'RevokeConnection',
      { connection_id: id, reason: 'done' },
      admin,
    );
    assert.equal(revoked.status, 'revoked');
    assert.equal(revoked.already_revoked, false);
    assert.equal(revoked.provider_revoked, true);
    assert.equal(
      (await client.call<{ status: string }>('CheckConnection', { connection_id: id }, admin)).status,
      'revoked',
    );
  });

  it('serves agents within their grant and refuses other agents (same checks as REST)', async () => {
    const id = await connect('idp-basic', 'user-g', asAgent('grpc-bot'));
    const token = fromStruct(
      (await client.call<TokenAnswer>('GetToken', { connection_id: id }, asAgent('grpc-bot'))).token,
    );
    assert.equal(typeof token.access_token, 'string');
    assert.equal(
      (await client.call<{ status: string }>('CheckConnection', { connection_id: id }, asAgent('grpc-bot')))
        .status,
      'active',
    );
    // Another agent: a connection outside its grant does not exist for it, on gRPC as on REST.
    for (const method of ['GetToken', 'CheckConnection', 'RefreshConnection', 'RevokeConnection']) {
      const failure = await client.fail(method, { connection_id: id }, asAgent('other-bot'));
      assert.equal(failure.code, grpc.status.NOT_FOUND, method);
      assert.equal(failure.trailers['nexus-error-code'], 'connection_not_found');
    }
    const rest = await s.call({
      method: 'GET',
      url: `/v1/token/${id}`,
      key: null,
      headers: asAgent('other-bot'),
    });
    assert.equal(rest.statusCode, 404);
    // A user outside the grant: PERMISSION_DENIED, as REST answers 403.
    const denied = await client.fail(
      'RequestConnection',
      { user_id: 'user-g', provider_name: 'idp-basic', return_url: RETURN },
      asAgent('other-bot'),
    );
    assert.equal(denied.code, grpc.status.PERMISSION_DENIED);
    assert.equal(denied.trailers['nexus-error-code'], 'forbidden');
    assert.equal(denied.errorInfo?.reason, 'forbidden');
    assert.equal(denied.errorInfo?.domain, 'nexus');
    // The audit actor is the agent.
    assert.ok(
      (await auditOf(id)).some(
        (e) => e.event_type === 'connection.token_read' && e.actor === 'agent:grpc-bot',
      ),
    );
  });

  it('refuses calls without a valid credential: UNAUTHENTICATED', async () => {
    const attempts: Record<string, string>[] = [
      {},
      { 'x-api-key': 'nxa_not-a-key' },
      { authorization: 'Bearer nxa_not-a-key' },
      { authorization: `Bearer ${tokens['grpc-bot']!.slice(0, -4)}AAAA` },
    ];
    for (const headers of attempts) {
      const failure = await client.fail(
        'GetToken',
        { connection_id: '00000000-0000-4000-8000-000000000000' },
        headers,
      );
      assert.equal(failure.code, grpc.status.UNAUTHENTICATED, JSON.stringify(headers));
      assert.equal(failure.trailers['nexus-error-code'], 'unauthorized');
      assert.equal(failure.errorInfo?.reason, 'unauthorized');
      assert.ok(failure.trailers['nexus-request-id']);
    }
  });

  it('maps bad input to INVALID_ARGUMENT naming the field, unknown ids to NOT_FOUND', async () => {
    const bad = await client.fail('GetToken', { connection_id: 'not-a-uuid' }, admin);
    assert.equal(bad.code, grpc.status.INVALID_ARGUMENT);
    assert.equal(bad.trailers['nexus-error-code'], 'invalid_request');
    assert.deepEqual(JSON.parse(bad.trailers['nexus-error-details']!)[0].path, 'request.connection_id');
    const neither = await client.fail('RequestConnection', { user_id: 'user-g', return_url: RETURN }, admin);
    assert.equal(neither.code, grpc.status.INVALID_ARGUMENT);
    assert.deepEqual(JSON.parse(neither.trailers['nexus-error-details']!)[0].path, 'request.provider_id');
    const longAction = await client.fail(
      'RequestConnection',
      { user_id: 'user-g', provider_name: 'idp-basic', return_url: RETURN, action: 'x'.repeat(257) },
      admin,
    );
    assert.equal(longAction.code, grpc.status.INVALID_ARGUMENT);
    // REST's rule for the audit's label (review, 2026-12-07: gRPC stored a forged log line).
    const forgedLine = await client.fail(
      'RequestConnection',
      {
        user_id: 'user-g',
        provider_name: 'idp-basic',
        return_url: RETURN,
        action: 'sync\r\n2026-12-07 admin connection.revoked OK\u001b[2J',
      },
      admin,
    );
    assert.equal(forgedLine.code, grpc.status.INVALID_ARGUMENT);
    assert.deepEqual(JSON.parse(forgedLine.trailers['nexus-error-details']!)[0].path, 'request.action');
    // The caller's own keys are echoed bounded: a 100 KB key made the trailers too large for the
    // client, which read INTERNAL (review, 2026-12-07).
    for (const size of [60_000, 100_000]) {
      const hugeKey = await client.fail(
        'RequestConnection',
        {
          user_id: 'user-g',
          provider_name: 'idp-basic',
          return_url: RETURN,
          connection_config: { [`k${'x'.repeat(size)}`]: 'v' },
        },
        admin,
      );
      assert.equal(hugeKey.code, grpc.status.INVALID_ARGUMENT, `${size}: ${hugeKey.message}`);
      assert.ok(hugeKey.trailers['nexus-error-details']!.length <= 4096, `${size}: trailers bounded`);
    }
    const notAllowed = await client.fail(
      'RequestConnection',
      { user_id: 'user-g', provider_name: 'idp-basic', return_url: 'https://evil.example/x' },
      admin,
    );
    assert.equal(notAllowed.code, grpc.status.INVALID_ARGUMENT);
    assert.equal(notAllowed.trailers['nexus-error-code'], 'return_url_not_allowed');
    // A NUL anywhere in a request, as on REST: refused before anything runs, on both databases.
    for (const [field, request] of [
      ['request.user_id', { user_id: 'user\u0000g', provider_name: 'idp-basic', return_url: RETURN }],
      [
        'request.return_url',
        { user_id: 'user-nul', provider_name: 'idp-basic', return_url: `${RETURN}\u0000x` },
      ],
    ] as const) {
      const nul = await client.fail('RequestConnection', request, admin);
      assert.equal(nul.code, grpc.status.INVALID_ARGUMENT, field);
      assert.equal(nul.trailers['nexus-error-code'], 'invalid_request', field);
      assert.deepEqual(JSON.parse(nul.trailers['nexus-error-details']!)[0].path, field);
    }
    const created = await s.broker.container.db.kysely
      .selectFrom('connections')
      .select('id')
      .where('workspace_id', '=', 'user-nul')
      .execute();
    assert.deepEqual(created, [], 'no pending connection left behind');
    const missing = await client.fail(
      'CheckConnection',
      { connection_id: '00000000-0000-4000-8000-000000000000' },
      admin,
    );
    assert.equal(missing.code, grpc.status.NOT_FOUND);
    assert.equal(missing.errorInfo?.reason, 'connection_not_found');
    const noProvider = await client.fail(
      'RequestConnection',
      { user_id: 'user-g', provider_name: 'nope', return_url: RETURN },
      admin,
    );
    assert.equal(noProvider.code, grpc.status.NOT_FOUND);
  });

  it('answers attention_required with FAILED_PRECONDITION, the connection id and what the user must do', async () => {
    const id = await connect('idp-basic', 'user-a', admin);
    await s.idp.revokeAllGrants();
    s.clock += 3_000;
    const failure = await client.fail('RefreshConnection', { connection_id: id }, admin);
    assert.equal(failure.code, grpc.status.FAILED_PRECONDITION);
    assert.equal(failure.trailers['nexus-error-code'], 'attention_required');
    assert.match(failure.message, /reconnect/);
    assert.equal(failure.errorInfo?.reason, 'attention_required');
    assert.equal(failure.errorInfo?.metadata.connection_id, id);
    assert.equal(failure.errorInfo?.metadata.status, 'attention_required');
    assert.equal(failure.errorInfo?.metadata.required_action, 'reconnect');
    const again = await client.fail('GetToken', { connection_id: id }, admin);
    assert.equal(again.code, grpc.status.FAILED_PRECONDITION);
    assert.deepEqual(JSON.parse(again.trailers['nexus-error-details']!), {
      connection_id: id,
      status: 'attention_required',
    });
  });

  it('answers UNAVAILABLE when the provider is down, and never OK with an empty payload', async () => {
    const id = await connect('idp-basic', 'user-u', admin);
    s.idp.setTokenEndpointFault('error500');
    try {
      s.clock += 3_000;
      const failure = await client.fail('RefreshConnection', { connection_id: id }, admin);
      assert.equal(failure.code, grpc.status.UNAVAILABLE);
      assert.equal(failure.trailers['nexus-error-code'], 'provider_unavailable');
    } finally {
      s.idp.setTokenEndpointFault('none');
    }
    // The connection is unchanged and still answers.
    const token = fromStruct(
      (await client.call<TokenAnswer>('GetToken', { connection_id: id }, admin)).token,
    );
    assert.equal(typeof token.access_token, 'string');
  });

  it('opens, reads and closes agent sessions; other agents cannot see them', async () => {
    const opened = await client.call<Record<string, unknown>>(
      'RequestAgentSession',
      { scopes: ['crm:read'], ttl_seconds: 600 },
      asAgent('grpc-bot'),
    );
    assert.deepEqual(opened.scopes_granted, ['crm:read']);
    assert.equal(opened.agent_id, 'grpc-bot');
    assert.equal(opened.token_type, 'session');
    assert.equal(typeof opened.session_token, 'string');
    assert.equal(Date.parse(opened.expires_at as string) - Date.parse(opened.created_at as string), 600_000);
    const sessionId = opened.session_id as string;
    const read = await client.call<Record<string, unknown>>(
      'GetAgentSession',
      { session_id: sessionId },
      asAgent('grpc-bot'),
    );
    assert.equal(read.status, 'active');
    assert.equal(read.session_token, undefined, 'a read never returns the session token');
    const hidden = await client.fail('GetAgentSession', { session_id: sessionId }, asAgent('other-bot'));
    assert.equal(hidden.code, grpc.status.NOT_FOUND);
    assert.equal(hidden.trailers['nexus-error-code'], 'session_not_found');
    assert.equal(
      (await client.fail('CloseAgentSession', { session_id: sessionId }, asAgent('other-bot'))).code,
      grpc.status.NOT_FOUND,
    );
    // An agent opens sessions for itself only; scopes outside its grant are refused.
    const forOther = await client.fail(
      'RequestAgentSession',
      { scopes: ['crm:read'], agent_id: 'other-bot' },
      asAgent('grpc-bot'),
    );
    assert.equal(forOther.code, grpc.status.PERMISSION_DENIED);
    const scope = await client.fail('RequestAgentSession', { scopes: ['ledger:post'] }, asAgent('grpc-bot'));
    assert.equal(scope.code, grpc.status.INVALID_ARGUMENT);
    assert.equal(scope.errorInfo?.reason, 'invalid_scope');
    assert.equal(scope.errorInfo?.metadata.gate, 'agent_scopes');
    const ttl = await client.fail(
      'RequestAgentSession',
      { scopes: ['crm:read'], ttl_seconds: 5 },
      asAgent('grpc-bot'),
    );
    assert.equal(ttl.code, grpc.status.INVALID_ARGUMENT);

    const closed = await client.call<Record<string, unknown>>(
      'CloseAgentSession',
      { session_id: sessionId },
      asAgent('grpc-bot'),
    );
    assert.equal(closed.status, 'closed');
    // An admin key names the agent and sees every agent's sessions.
    const byAdmin = await client.call<Record<string, unknown>>(
      'RequestAgentSession',
      { scopes: ['crm:read'], agent_id: 'other-bot' },
      admin,
    );
    assert.equal(byAdmin.agent_id, 'other-bot');
    assert.equal(
      (await client.call<{ status: string }>('GetAgentSession', { session_id: byAdmin.session_id }, admin))
        .status,
      'active',
    );
  });

  it('opens an on-behalf-of session from a user token of a trusted issuer', async () => {
    await s.call(
      {
        method: 'POST',
        url: '/admin/v1/trusted-issuers',
        payload: { issuer: s.idp.issuer, use_discovery: true, audience: AUDIENCE },
      },
      201,
    );
    const userToken = await s.idp.issueUserToken({
      resource: AUDIENCE,
      accountId: 'user-g',
      claims: { permissions: ['crm:read'] },
    });
    const opened = await client.call<Record<string, unknown>>(
      'RequestOboSession',
      { user_token: userToken, scopes: ['crm:read'] },
      asAgent('grpc-bot'),
    );
    assert.equal(opened.obo, true);
    assert.equal(opened.acting_for, 'user-g');
    assert.equal(typeof opened.session_token, 'string');
    const refused = await client.fail(
      'RequestOboSession',
      { user_token: `${userToken.slice(0, -4)}AAAA`, scopes: ['crm:read'] },
      asAgent('grpc-bot'),
    );
    assert.equal(refused.code, grpc.status.INVALID_ARGUMENT);
    assert.equal(refused.errorInfo?.reason, 'invalid_grant');
  });

  it('answers grpc.health.v1 and lists the service through reflection', async () => {
    assert.equal(await healthCheck(address, ''), 'SERVING');
    assert.equal(await healthCheck(address, 'nexus.v1.NexusService'), 'SERVING');
    const services = await reflectionServices(address);
    assert.ok(services.includes('nexus.v1.NexusService'), services.join());
    assert.ok(services.includes('grpc.health.v1.Health'), services.join());
  });
});
