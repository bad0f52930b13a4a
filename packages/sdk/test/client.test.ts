/**
 * NexusClient and NexusAdmin against the testbed's real broker: connections, tokens, agent and
 * on-behalf-of sessions, user secrets with the `nexus-secret:NAME` resolver, and the admin API.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import {
  AuthenticationError,
  NexusAdmin,
  NexusClient,
  NexusError,
  NotFoundError,
  UnresolvedSecretsError,
} from '../src/index.ts';
import { startTestbed, type Testbed } from './testbed.ts';

let tb: Testbed;
let agent: NexusClient;
let admin: NexusAdmin;
const RETURN_URL = 'http://localhost:3000/connected';
const UNKNOWN = '00000000-0000-4000-8000-000000000000';

before(async () => {
  tb = await startTestbed();
  agent = new NexusClient({
    baseUrl: tb.info.broker_url,
    clientId: tb.info.agent.client_id,
    clientSecret: tb.info.agent.client_secret,
    env: {},
  });
  admin = new NexusAdmin({ baseUrl: tb.info.broker_url, apiKey: tb.info.admin_key, env: {} });
});
after(async () => {
  await tb?.stop();
});

describe('agent API', () => {
  test('agentLogin: a bearer token from client credentials; env configuration works the same', async () => {
    const login = await agent.agentLogin();
    assert.equal(login.token_type, 'Bearer');
    assert.ok(login.expires_in > 0);
    const fromEnv = new NexusClient({
      env: {
        NEXUS_URL: tb.info.broker_url,
        NEXUS_CLIENT_ID: tb.info.agent.client_id,
        NEXUS_CLIENT_SECRET: tb.info.agent.client_secret,
      },
    });
    assert.equal((await fromEnv.checkConnection(tb.info.connections.header)).status, 'active');
  });

  test('wrong agent secret: AuthenticationError invalid_client, secret not in the message', async () => {
    const bad = new NexusClient({
      baseUrl: tb.info.broker_url,
      clientId: tb.info.agent.client_id,
      clientSecret: 'wrong-secret-value',
      env: {},
    });
    const error = await bad.getToken(tb.info.connections.header).catch((e: unknown) => e);
    assert.ok(error instanceof AuthenticationError);
    assert.equal(error.code, 'invalid_client');
    assert.equal(error.status, 401);
    assert.ok(error.requestId);
    assert.doesNotMatch(error.message, /wrong-secret-value/);
  });

  test('requestConnection → pending; waitForActive times out; revoke; then it will never be active', async () => {
    const started = await agent.requestConnection({
      user_id: `sdk-user-${randomBytes(4).toString('hex')}`,
      provider_name: tb.info.providers.oauth2,
      return_url: RETURN_URL,
    });
    assert.match(started.authUrl, /^http/);
    assert.ok(started.connection_id);
    assert.equal((await agent.checkConnection(started.connection_id)).status, 'pending');

    const waited = await agent
      .waitForActive(started.connection_id, { intervalMs: 20, waitTimeoutMs: 60 })
      .catch((e: unknown) => e);
    assert.ok(waited instanceof NexusError);
    assert.equal(waited.code, 'wait_timeout');

    const revoked = await agent.revokeConnection(started.connection_id, { reason: 'sdk test' });
    assert.equal(revoked.status, 'revoked');
    assert.equal(revoked.already_revoked, false);
    assert.equal((await agent.revokeConnection(started.connection_id)).already_revoked, true);
    const after = await agent.waitForActive(started.connection_id).catch((e: unknown) => e);
    assert.ok(after instanceof NexusError);
    assert.equal(after.code, 'connection_revoked');
  });

  test('requestConnection sends connection_config: the broker checks it against the provider (issue #20)', async () => {
    // The testbed's providers declare no per-connection parameters, so the broker refuses the name
    // it was sent, and creates nothing: the field reached it.
    const error = await agent
      .requestConnection({
        user_id: `sdk-user-${randomBytes(4).toString('hex')}`,
        provider_name: tb.info.providers.oauth2,
        return_url: RETURN_URL,
        connection_config: { tenant: 'acme' },
      })
      .catch((e: unknown) => e);
    assert.ok(error instanceof NexusError);
    assert.equal(error.status, 400);
    assert.equal(error.code, 'invalid_connection_config');
    assert.match(error.message, /tenant is not a connection parameter/);
  });

  test('createConnectSession: a single-use page offering the providers asked for', async () => {
    const session = await agent.createConnectSession({
      user_id: `sdk-user-${randomBytes(4).toString('hex')}`,
      providers: [tb.info.providers.oauth2, tb.info.providers.header],
      return_url: RETURN_URL,
    });
    assert.deepEqual(
      session.providers.map((p) => p.name).sort(),
      [tb.info.providers.header, tb.info.providers.oauth2].sort(),
    );
    assert.ok(session.url.includes(session.token), 'the capability is inside the url');
    assert.ok(Date.parse(session.expires_at) > Date.now());
    const page = await fetch(session.url);
    assert.equal(page.status, 200);
    const html = await page.text();
    for (const p of session.providers) assert.ok(html.includes(p.name), `the page offers ${p.name}`);
  });

  test('verify and confirmConnection reach the broker: no verifier configured, unknown flow', async () => {
    // The testbed's broker has no verifier page (NEXUS_CONNECT_VERIFIER_URL), so asking for one is
    // refused and nothing is created: the field reached it.
    for (const start of [
      () =>
        agent.requestConnection({
          user_id: 'sdk-verify',
          provider_name: tb.info.providers.oauth2,
          return_url: RETURN_URL,
          verify: true,
        }),
      () => agent.createConnectSession({ user_id: 'sdk-verify', return_url: RETURN_URL, verify: true }),
    ]) {
      const error = await start().catch((e: unknown) => e);
      assert.ok(error instanceof NexusError);
      assert.equal(error.status, 400);
      assert.equal(error.code, 'verifier_not_configured');
    }
    const unknown = await agent.confirmConnection('no-such-flow', 'sdk-verify').catch((e: unknown) => e);
    assert.ok(unknown instanceof NotFoundError);
    assert.equal(unknown.code, 'confirm_flow_unknown');
  });

  test('waitForActive returns once a connection is active', async () => {
    const connectionId = await tb.connect('header');
    assert.equal((await agent.waitForActive(connectionId)).status, 'active');
  });

  test('getToken, refreshConnection and resolveToken answer the strategy and credentials', async () => {
    const oauth = await agent.getToken(tb.info.connections.oauth2);
    assert.equal(oauth.strategy.type, 'oauth2');
    assert.ok(oauth.credentials.access_token);
    assert.equal(oauth.access_token, oauth.credentials.access_token);
    assert.equal('refresh_token' in oauth.credentials, false, 'never a refresh token');

    const before = (await tb.stats()).idp.refresh_token;
    const refreshed = await agent.refreshConnection(tb.info.connections.oauth2);
    assert.notEqual(refreshed.credentials.access_token, oauth.credentials.access_token);
    assert.equal((await tb.stats()).idp.refresh_token - before, 1);

    const resolved = await agent.resolveToken(tb.info.workspace_id, tb.info.providers.aws_sigv4);
    assert.equal(resolved.strategy.type, 'aws_sigv4');
    assert.deepEqual(Object.keys(resolved.credentials).sort(), ['access_key', 'secret_key', 'session_token']);
    assert.equal(resolved.expires_at, null);
  });

  test('unknown connection: NotFoundError with code and request id', async () => {
    const error = await agent.getToken(UNKNOWN).catch((e: unknown) => e);
    assert.ok(error instanceof NotFoundError);
    assert.equal(error.code, 'connection_not_found');
    assert.ok(error.requestId);
  });

  test('listProviders groups the providers the agent may request', async () => {
    const grouped = await agent.listProviders();
    const names = Object.values(grouped).flatMap((byName) => Object.keys(byName));
    assert.ok(names.includes(tb.info.providers.oauth2));
  });
});

describe('agent sessions', () => {
  test('request, get and close an agent session', async () => {
    const session = await agent.requestAgentSession({ scopes: ['tb:read'], ttl_seconds: 120 });
    assert.equal(session.status, 'active');
    assert.deepEqual(session.scopes_granted, ['tb:read']);
    assert.equal(session.obo, false);
    const fetched = await agent.getAgentSession(session.session_id);
    assert.equal(fetched.session_id, session.session_id);
    const closed = await agent.closeAgentSession(session.session_id);
    assert.equal(closed.status, 'closed');
    assert.equal((await agent.getAgentSession(session.session_id)).status, 'closed');
  });

  test('on-behalf-of session from a user token; unknown session is NotFoundError', async () => {
    const { token } = await tb.control<{ token: string }>('POST', '/user-token', {});
    const obo = await agent.requestOboSession({ user_token: token, scopes: ['tb:read'] });
    assert.equal(obo.obo, true);
    assert.equal(obo.acting_for, tb.info.workspace_id);
    assert.ok(obo.session_token);
    await assert.rejects(agent.getAgentSession(UNKNOWN), NotFoundError);
  });
});

describe('user secrets', () => {
  const secret = () => tb.info.user_secrets['db-password']!;
  const config = () => ({
    db: { host: 'db.internal', password: 'nexus-secret:db-password', port: 5432 },
    replicas: [{ password: 'nexus-secret:db-password' }, 'plain', ['nexus-secret:db-password']],
    note: 'not nexus-secret:db-password',
  });
  const expected = () => ({
    db: { host: 'db.internal', password: secret(), port: 5432 },
    replicas: [{ password: secret() }, 'plain', [secret()]],
    note: 'not nexus-secret:db-password',
  });

  test('getSecret with the agent grant', async () => {
    const value = await agent.getSecret('db-password', { userId: tb.info.workspace_id });
    assert.equal(value.value, secret());
    assert.equal(value.zone, 'default');
  });

  test('resolveSecrets over nested config: agent grant, on-behalf-of session, admin key', async () => {
    assert.deepEqual(await agent.resolveSecrets(config(), { userId: tb.info.workspace_id }), expected());

    const { token } = await tb.control<{ token: string }>('POST', '/user-token', {});
    // Reading a user's secrets while acting for them takes the secrets:read scope in the session.
    const obo = await agent.requestOboSession({ user_token: token, scopes: ['tb:read', 'secrets:read'] });
    assert.deepEqual(await agent.resolveSecrets(config(), { sessionToken: obo.session_token! }), expected());

    const asAdmin = new NexusClient({ baseUrl: tb.info.broker_url, apiKey: tb.info.admin_key, env: {} });
    assert.deepEqual(await asAdmin.resolveSecrets(config(), { userId: tb.info.workspace_id }), expected());
  });

  test('unresolved references: UnresolvedSecretsError naming them, or left in place on request', async () => {
    const input = { a: 'nexus-secret:db-password', b: ['nexus-secret:does-not-exist'] };
    for (const client of [
      agent,
      new NexusClient({ baseUrl: tb.info.broker_url, apiKey: tb.info.admin_key, env: {} }),
    ]) {
      const error = await client
        .resolveSecrets(input, { userId: tb.info.workspace_id })
        .catch((e: unknown) => e);
      assert.ok(error instanceof UnresolvedSecretsError, String(error));
      assert.deepEqual(
        error.unresolved.map((u) => u.name),
        ['does-not-exist'],
      );
      assert.doesNotMatch(error.message, new RegExp(secret()));
      const kept = await client.resolveSecrets(input, {
        userId: tb.info.workspace_id,
        leaveUnresolved: true,
      });
      assert.deepEqual(kept, { a: secret(), b: ['nexus-secret:does-not-exist'] });
    }
  });
});

describe('NexusAdmin', () => {
  test('providers: list, by name, create, patch with If-Match, aliases, delete', async () => {
    const listed = await admin.listProviders();
    assert.ok(listed.some((p) => p.name === tb.info.providers.header));
    const id = await admin.getProviderIdByName(tb.info.providers.header);
    assert.equal((await admin.getProvider(id)).auth_type, 'header');

    const name = `sdk-${randomBytes(4).toString('hex')}`;
    const created = await admin.createProvider({
      name,
      auth_type: 'header',
      params: { auth_strategy: { type: 'header', config: { header_name: 'X-Key' } } },
    });
    const provider = await admin.getProvider(created.id);
    assert.equal(provider.has_client_secret, false);
    const patched = await admin.patchProvider(
      created.id,
      { description: 'from the sdk' },
      { ifMatch: provider.version },
    );
    assert.equal(patched.description, 'from the sdk');
    await assert.rejects(
      admin.patchProvider(created.id, { description: 'stale' }, { ifMatch: provider.version }),
      (e: unknown) => e instanceof NexusError && e.status === 409,
    );
    assert.deepEqual(await admin.addProviderAlias(created.id, `${name}-alias`), [`${name}-alias`]);
    await admin.deleteProvider(created.id);
    await assert.rejects(admin.getProvider(created.id), NotFoundError);
  });

  test('providers: create from a catalogue template', async () => {
    const name = `sdk-cohere-${randomBytes(4).toString('hex')}`;
    const created = await admin.createProvider({ name, template: 'cohere' });
    const provider = await admin.getProvider(created.id);
    assert.equal(provider.name, name);
    assert.equal(provider.auth_type, 'api_key');
    assert.deepEqual((provider.params.template as { key: string }).key, 'cohere');
    const unknown = await admin
      .createProvider({ name: `${name}-x`, template: 'no-such-api' })
      .catch((e: unknown) => e);
    assert.ok(unknown instanceof NexusError);
    assert.equal(unknown.code, 'unknown_template');
    await admin.deleteProvider(created.id);
  });

  test('connections: token, resolve, events', async () => {
    const token = await admin.getConnectionToken(tb.info.connections.basic_auth);
    assert.equal(token.strategy.type, 'basic_auth');
    const resolved = await admin.resolveConnection(tb.info.workspace_id, tb.info.providers.basic_auth);
    assert.equal(resolved.provider_name, tb.info.providers.basic_auth);
    const events = await admin.listConnectionEvents({ limit: 5 });
    assert.ok(Array.isArray(events.events));
  });

  test('agents: create, log in with the returned secret, update, rotate, delete', async () => {
    const agentId = `sdk-agent-${randomBytes(4).toString('hex')}`;
    const created = await admin.createAgent({
      agent_id: agentId,
      allowed_scopes: ['tb:read'],
      allowed_providers: ['*'],
      allowed_workspaces: ['*'],
    });
    assert.ok(created.client_secret);
    const client = new NexusClient({
      baseUrl: tb.info.broker_url,
      clientId: agentId,
      clientSecret: created.client_secret,
      env: {},
    });
    assert.equal((await client.checkConnection(tb.info.connections.header)).status, 'active');

    const updated = await admin.updateAgent(
      agentId,
      { description: 'updated' },
      { ifMatch: created.version },
    );
    assert.equal(updated.description, 'updated');
    assert.ok((await admin.listAgents()).some((a) => a.agent_id === agentId));
    const rotated = await admin.rotateAgentSecret(agentId, { overlapSeconds: 0 });
    assert.ok(rotated.client_secret);
    await admin.deleteAgent(agentId);
    await assert.rejects(admin.getAgent(agentId), NotFoundError);
  });

  test('audit: a page, and iteration over cursors', async () => {
    const page = await admin.listAuditEvents({ limit: 2 });
    assert.equal(page.events.length, 2);
    assert.ok(page.next_cursor);
    const seen: string[] = [];
    for await (const event of admin.auditEvents({ limit: 2 })) {
      seen.push(event.id);
      if (seen.length === 5) break;
    }
    assert.equal(new Set(seen).size, 5, 'pages do not repeat events');
  });
});
