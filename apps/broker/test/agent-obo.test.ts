import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { assertProblem, createAgentWithToken, json, startBroker, type TestBroker } from './harness.ts';
import { type OidcFixture, startOidcProvider } from './oidc-fixture.ts';

/**
 * On-behalf-of: a real OpenID provider (oidc-provider) is the developer's user IdP and issues the
 * users' JWT access tokens; the agent exchanges one for a session bound to that user, through
 * `POST /v1/agent-sessions/obo` and through RFC 8693 token exchange at `/oauth/token`, and a third
 * party verifies the result with jose against the broker's JWKS.
 */

const AUDIENCE = 'https://nexus.example.test/obo';
const RETURN = 'http://localhost:3000/done';
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_TYPE = 'urn:ietf:params:oauth:token-type:jwt';

describe('on-behalf-of', () => {
  let idp: OidcFixture;
  let stranger: OidcFixture;
  let broker: TestBroker;
  let agent: { id: string; secret: string; token: string };
  let agentToken: string;
  let aliceToken: string;
  let aliceConnection: string;
  let bobConnection: string;
  let issuerId: string;

  const call = (options: Parameters<TestBroker['request']>[0]) => broker.request(options);
  const asAgent = (options: Parameters<TestBroker['request']>[0]) =>
    call({ ...options, key: null, headers: { authorization: `Bearer ${agentToken}` } });
  const obo = (payload: Record<string, unknown>) =>
    asAgent({ method: 'POST', url: '/v1/agent-sessions/obo', payload });

  async function connect(workspace: string): Promise<string> {
    const started = json<{ state: string; connection_id: string }>(
      await call({
        method: 'POST',
        url: '/v1/request-connection',
        payload: { user_id: workspace, provider_name: 'crm', return_url: RETURN },
      }),
    );
    await call({
      method: 'POST',
      url: '/v1/capture-credential',
      key: null,
      payload: { state: started.state, credentials: { api_key: `k-${workspace}` } },
    });
    return started.connection_id;
  }

  before(async () => {
    [idp, stranger] = await Promise.all([startOidcProvider(), startOidcProvider()]);
    broker = await startBroker();
    await call({
      method: 'POST',
      url: '/providers',
      payload: { profile: { name: 'crm', auth_type: 'api_key' } },
    });
    for (const name of ['crm:read', 'crm:write', 'ledger:post'])
      await call({ method: 'POST', url: '/admin/v1/scopes', payload: { name } });
    const trusted = await call({
      method: 'POST',
      url: '/admin/v1/trusted-issuers',
      payload: {
        issuer: idp.issuer,
        use_discovery: true,
        audience: AUDIENCE,
        tenant_claim: 'tenant',
        clearance_claim: 'clearance',
      },
    });
    assert.equal(trusted.statusCode, 201, trusted.body);
    issuerId = json<{ id: string }>(trusted).id;
    aliceConnection = await connect('alice');
    bobConnection = await connect('bob');
    agent = await createAgentWithToken(broker, 'assistant', {
      allowed_scopes: ['crm:read', 'ledger:post'],
      allowed_providers: ['crm'],
      allowed_workspaces: ['*'],
    });
    agentToken = agent.token;
    aliceToken = await idp.issueUserToken({
      resource: AUDIENCE,
      accountId: 'alice',
      claims: { permissions: ['crm:read', 'crm:write'], tenant: 'acme', clearance: 'secret' },
    });
  });
  after(async () => {
    await broker.close();
    await Promise.all([idp.close(), stranger.close()]);
  });

  it("opens a session for the user when both gates agree, bound to that user's connections", async () => {
    const res = await obo({ user_token: aliceToken, scopes: ['crm:read'], connection_id: aliceConnection });
    assert.equal(res.statusCode, 201, res.body);
    const session = json<{
      obo: boolean;
      acting_for: string;
      tenant_id: string;
      clearance_level: string;
      session_token: string;
      session_id: string;
    }>(res);
    assert.deepEqual(
      [session.obo, session.acting_for, session.tenant_id, session.clearance_level],
      [true, 'alice', 'acme', 'secret'],
    );
    const jwks = json(await call({ method: 'GET', url: '/.well-known/jwks.json', key: null }));
    const { payload } = await jwtVerify(session.session_token, createLocalJWKSet(jwks as never), {
      issuer: broker.container.config.http.baseUrl,
      audience: broker.container.config.http.baseUrl,
      typ: 'nexus-session+jwt',
    });
    assert.equal(payload.sub, 'alice');
    assert.deepEqual(
      payload.act,
      { sub: agent.id, client_id: 'assistant' },
      "RFC 8693 act identifies the agent: its id (as its access tokens' sub) and its agent_id",
    );
    assert.equal(payload.obo, true);
    assert.equal(payload.tenant_id, 'acme');
    assert.ok((payload.exp as number) * 1000 <= Date.now() + 3600_000, "never outlives the user's token");

    // Another user's connection is not reachable through alice's token.
    const bob = await obo({ user_token: aliceToken, scopes: ['crm:read'], connection_id: bobConnection });
    assert.equal(bob.statusCode, 404, bob.body);
  });

  it("refuses to act for a user outside the agent's workspace grant, even without a connection", async () => {
    const { token } = await createAgentWithToken(broker, 'bob-only', {
      allowed_scopes: ['crm:read'],
      allowed_workspaces: ['bob'],
    });
    const res = await call({
      method: 'POST',
      url: '/v1/agent-sessions/obo',
      key: null,
      headers: { authorization: `Bearer ${token}` },
      payload: { user_token: aliceToken, scopes: ['crm:read'] },
    });
    assert.equal(res.statusCode, 400, res.body);
    assert.equal(json<{ details: { gate: string } }>(res).details.gate, 'acting_for');
  });

  it('refuses scope escalation at each gate, and says which', async () => {
    const userGate = await obo({ user_token: aliceToken, scopes: ['ledger:post'] });
    assert.equal(userGate.statusCode, 400, userGate.body);
    assert.deepEqual(json(userGate).details, { gate: 'user_permissions', refused: ['ledger:post'] });
    const agentGate = await obo({ user_token: aliceToken, scopes: ['crm:write'] });
    assert.equal(agentGate.statusCode, 400, agentGate.body);
    assert.deepEqual(json(agentGate).details, { gate: 'agent_scopes', refused: ['crm:write'] });
  });

  it('refuses forged, foreign, wrong-audience and unsigned user tokens', async () => {
    const [h, p] = aliceToken.split('.') as [string, string];
    const claims = JSON.parse(Buffer.from(p, 'base64url').toString());
    const elevated = Buffer.from(JSON.stringify({ ...claims, permissions: ['ledger:post'] })).toString(
      'base64url',
    );
    const cases: [string, string][] = [
      [`${h}.${elevated}.${aliceToken.split('.')[2]}`, 'bad_signature'],
      [
        await stranger.issueUserToken({
          resource: AUDIENCE,
          accountId: 'alice',
          claims: { permissions: ['crm:read'] },
        }),
        'unknown_issuer',
      ],
      [
        await idp.issueUserToken({
          resource: 'https://other.example.test',
          accountId: 'alice',
          claims: { permissions: ['crm:read'] },
        }),
        'wrong_audience',
      ],
      [
        `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${p}.`,
        'algorithm_not_allowed',
      ],
      [
        await idp.signWithProviderKey({
          sub: 'alice',
          aud: AUDIENCE,
          exp: Math.floor(Date.now() / 1000) - 3600,
          permissions: ['crm:read'],
        }),
        'expired',
      ],
    ];
    for (const [token, reason] of cases) {
      const res = await obo({ user_token: token, scopes: ['crm:read'] });
      assert.deepEqual(assertProblem(res, 400, 'invalid_grant', reason).details, {
        gate: 'user_token',
        reason,
      });
    }
  });

  it('exchanges a user token by RFC 8693 at /oauth/token, as a third-party client would', async () => {
    const basic = `Basic ${Buffer.from(`assistant:${agent.secret}`).toString('base64')}`;
    const exchange = (fields: Record<string, string>, auth: string | null = basic) =>
      call({
        method: 'POST',
        url: '/oauth/token',
        key: null,
        headers: { ...FORM, ...(auth ? { authorization: auth } : {}) },
        payload: new URLSearchParams({ grant_type: TOKEN_EXCHANGE, ...fields }).toString(),
      });
    const res = await exchange({
      subject_token: aliceToken,
      subject_token_type: JWT_TYPE,
      scope: 'crm:read',
    });
    assert.equal(res.statusCode, 200, res.body);
    const body = json<{ access_token: string; issued_token_type: string; token_type: string; scope: string }>(
      res,
    );
    assert.equal(body.issued_token_type, JWT_TYPE);
    assert.equal(body.token_type, 'N_A');
    assert.equal(body.scope, 'crm:read');
    const introspected = json(
      await call({
        method: 'POST',
        url: '/oauth/introspect',
        headers: FORM,
        payload: `token=${body.access_token}`,
      }),
    );
    assert.equal(introspected.active, true);
    assert.equal(introspected.acting_for, 'alice');

    // The agent may also authenticate with its access token as the actor token.
    const withActor = await exchange(
      {
        subject_token: aliceToken,
        subject_token_type: JWT_TYPE,
        actor_token: agentToken,
        actor_token_type: 'urn:ietf:params:oauth:token-type:access_token',
        scope: 'crm:read',
      },
      null,
    );
    assert.equal(withActor.statusCode, 200, withActor.body);
    const escalate = await exchange({
      subject_token: aliceToken,
      subject_token_type: JWT_TYPE,
      scope: 'crm:write',
    });
    assert.equal(escalate.statusCode, 400);
    const anonymous = await exchange(
      { subject_token: aliceToken, subject_token_type: JWT_TYPE, scope: 'crm:read' },
      null,
    );
    assert.equal(anonymous.statusCode, 401, 'the agent must authenticate');
  });

  it('audits every on-behalf-of decision with the failing gate and the user', async () => {
    const events = json<{
      events: { event_type: string; actor: string; details: Record<string, unknown> | null }[];
    }>(await call({ method: 'GET', url: '/audit?limit=500' })).events;
    const opened = events.filter((e) => e.event_type === 'agent.obo_opened');
    assert.ok(opened.length >= 3);
    assert.ok(opened.every((e) => e.actor === 'agent:assistant' && e.details?.acting_for === 'alice'));
    const gates = new Set(
      events.filter((e) => e.event_type === 'agent.obo_denied').map((e) => e.details?.gate),
    );
    for (const gate of ['user_permissions', 'agent_scopes', 'user_token']) assert.ok(gates.has(gate), gate);
  });

  it("narrows open sessions when the operator narrows the agent's grant", async () => {
    const narrowed = await createAgentWithToken(broker, 'narrowed', {
      allowed_scopes: ['crm:read', 'crm:write'],
      allowed_providers: ['crm'],
      allowed_workspaces: ['alice', 'bob'],
    });
    const opened = await call({
      method: 'POST',
      url: '/v1/agent-sessions/obo',
      key: null,
      headers: { authorization: `Bearer ${narrowed.token}` },
      payload: { user_token: aliceToken, scopes: ['crm:read', 'crm:write'] },
    });
    assert.equal(opened.statusCode, 201, opened.body);
    const token = json<{ session_token: string }>(opened).session_token;
    const introspect = async () =>
      json<{ active: boolean; scope?: string }>(
        await call({ method: 'POST', url: '/oauth/introspect', headers: FORM, payload: `token=${token}` }),
      );
    const patch = async (body: Record<string, unknown>) =>
      assert.equal(
        (await call({ method: 'PATCH', url: '/admin/v1/agents/narrowed', payload: body })).statusCode,
        200,
      );
    assert.deepEqual([(await introspect()).active, (await introspect()).scope], [true, 'crm:read crm:write']);
    const accessToken = async () =>
      json<{ active: boolean; scope?: string }>(
        await call({
          method: 'POST',
          url: '/oauth/introspect',
          headers: FORM,
          payload: `token=${narrowed.token}`,
        }),
      );
    assert.equal((await accessToken()).scope, 'crm:read crm:write');
    // A scope taken from the agent leaves the session, and its access token; the rest stays.
    await patch({ allowed_scopes: ['crm:read'] });
    assert.deepEqual([(await introspect()).active, (await introspect()).scope], [true, 'crm:read']);
    assert.deepEqual([(await accessToken()).active, (await accessToken()).scope], [true, 'crm:read']);
    // The user taken from the agent's grant ends the session.
    await patch({ allowed_workspaces: ['bob'] });
    assert.deepEqual(await introspect(), { active: false });
  });
  it("a control character in a user's tenant or clearance claim is stored replaced, and a tenant over 256 characters refused", async () => {
    // Security review (2026-12-07): a NUL in one user's tenant claim was stored as it was; on
    // PostgreSQL every later admin listing of sessions by user then failed (jsonb refuses \u0000).
    const token = await idp.issueUserToken({
      resource: AUDIENCE,
      accountId: 'alice',
      claims: { permissions: ['crm:read'], tenant: 'ac\u0000me', clearance: 'x\u0007' },
    });
    const opened = await obo({ user_token: token, scopes: ['crm:read'] });
    assert.equal(opened.statusCode, 201, opened.body);
    assert.deepEqual([json(opened).tenant_id, json(opened).clearance_level], ['ac\uFFFDme', 'x\uFFFD']);
    const listed = await call({ method: 'GET', url: '/admin/v1/agent-sessions?acting_for=bob' });
    assert.equal(listed.statusCode, 200, listed.body);
    const mine = await call({ method: 'GET', url: '/admin/v1/agent-sessions?acting_for=alice' });
    assert.equal(mine.statusCode, 200, mine.body);
    const long = await idp.issueUserToken({
      resource: AUDIENCE,
      accountId: 'alice',
      claims: { permissions: ['crm:read'], tenant: 't'.repeat(257) },
    });
    const refused = await obo({ user_token: long, scopes: ['crm:read'] });
    assert.equal(refused.statusCode, 400, refused.body);
    assert.equal(json<{ details: { reason: string } }>(refused).details.reason, 'invalid_tenant');
  });

  it('ends open sessions when the operator changes or deletes their trusted issuer (last: deletes it)', async () => {
    // Security review (2026-12-07): sessions opened with an issuer's tokens outlived its removal
    // (a leaked signing key) for as long as they were opened for, up to 24 h.
    const open = async () => {
      const res = await obo({ user_token: aliceToken, scopes: ['crm:read'] });
      assert.equal(res.statusCode, 201, res.body);
      return json<{ session_token: string }>(res).session_token;
    };
    const active = async (token: string) =>
      json<{ active: boolean }>(
        await call({ method: 'POST', url: '/oauth/introspect', headers: FORM, payload: `token=${token}` }),
      ).active;
    const before = await open();
    assert.equal(await active(before), true);
    const changed = await call({
      method: 'PATCH',
      url: `/admin/v1/trusted-issuers/${issuerId}`,
      payload: { clearance_claim: 'level' },
    });
    assert.equal(changed.statusCode, 200, changed.body);
    assert.equal(await active(before), false, 'a session from before the change has ended');
    const after = await open();
    assert.equal(await active(after), true, 'one opened under the issuer as it is now lasts');
    const removed = await call({ method: 'DELETE', url: `/admin/v1/trusted-issuers/${issuerId}` });
    assert.equal(removed.statusCode, 200, removed.body);
    assert.equal(await active(after), false, 'no session outlives its issuer');
    assert.equal((await obo({ user_token: aliceToken, scopes: ['crm:read'] })).statusCode, 400);
  });
});

describe('on-behalf-of with opaque user tokens (BACKEND_AUTH_URL)', () => {
  const CALLBACK_SECRET = 'callback-shared-secret-0123456789';
  let backend: Server;
  let broker: TestBroker;
  let agentToken: string;
  const received: { authorization: string | undefined; token: string }[] = [];

  before(async () => {
    // The developer's own backend: knows its opaque session tokens.
    backend = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => {
        body += c;
      });
      req.on('end', () => {
        const { token } = JSON.parse(body) as { token: string };
        received.push({ authorization: req.headers.authorization, token });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify(
            token === 'opaque-alice'
              ? {
                  active: true,
                  user_id: 'alice',
                  tenant_id: 'acme',
                  permissions: ['crm:read'],
                  clearance_level: 'low',
                }
              : { active: false },
          ),
        );
      });
    });
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
    backend.unref();
    broker = await startBroker({
      env: {
        BACKEND_AUTH_URL: `http://127.0.0.1:${(backend.address() as AddressInfo).port}/verify`,
        BACKEND_AUTH_TOKEN: CALLBACK_SECRET,
        NEXUS_EGRESS_ALLOWED_CIDRS: '127.0.0.1/32',
      },
    });
    await broker.request({ method: 'POST', url: '/admin/v1/scopes', payload: { name: 'crm:read' } });
    agentToken = (
      await createAgentWithToken(broker, 'opaque-bot', {
        allowed_scopes: ['crm:read'],
        allowed_workspaces: ['*'],
      })
    ).token;
  });
  after(async () => {
    await broker.close();
    backend.close();
  });

  const obo = (userToken: string) =>
    broker.request({
      method: 'POST',
      url: '/v1/agent-sessions/obo',
      key: null,
      headers: { authorization: `Bearer ${agentToken}` },
      payload: { user_token: userToken, scopes: ['crm:read'] },
    });

  it("asks the developer's backend about an opaque token, with its bearer secret, and acts for the user it names", async () => {
    const res = await obo('opaque-alice');
    assert.equal(res.statusCode, 201, res.body);
    const session = json<{
      acting_for: string;
      tenant_id: string;
      clearance_level: string;
      expires_at: string;
    }>(res);
    assert.deepEqual(
      [session.acting_for, session.tenant_id, session.clearance_level],
      ['alice', 'acme', 'low'],
    );
    assert.deepEqual(received.at(-1), { authorization: `Bearer ${CALLBACK_SECRET}`, token: 'opaque-alice' });
    assert.ok(Date.parse(session.expires_at) <= Date.now() + 900_000 + 1000, 'bounded lifetime');
  });

  it('refuses what the backend rejects, and never sends it a JWT', async () => {
    const res = await obo('opaque-mallory');
    assert.equal(res.statusCode, 400);
    assert.deepEqual(json(res).details, { gate: 'user_token', reason: 'remote_rejected' });
    const before = received.length;
    const jwtShaped = await obo('eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln');
    assert.equal(jwtShaped.statusCode, 400);
    assert.equal(received.length, before, 'JWTs are verified locally, not sent out');
  });
});
