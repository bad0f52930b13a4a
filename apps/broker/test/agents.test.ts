import assert from 'node:assert/strict';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createLocalJWKSet, exportJWK, jwtVerify, SignJWT, UnsecuredJWT } from 'jose';
import { assertProblem, json, startBroker, type TestBroker } from './harness.ts';

/**
 * Agents as principals: registration, client credentials (secret and private_key_jwt), access
 * tokens verified by an independent library (jose) against the published JWKS, and the grant
 * enforced on the agent API. The broker runs on a test clock.
 */

const RETURN = 'http://localhost:3000/done';
const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

describe('agents', () => {
  let broker: TestBroker;
  let clock = Date.now();
  const providerIds: Record<string, string> = {};
  const connections: Record<string, string> = {};

  const call = (options: Parameters<TestBroker['request']>[0]) => broker.request(options);

  /** A static-credential connection for `workspace` on `provider`, captured through the hosted flow. */
  async function connect(provider: string, workspace: string): Promise<string> {
    const started = json<{ state: string; connection_id: string }>(
      await call({
        method: 'POST',
        url: '/v1/request-connection',
        payload: { user_id: workspace, provider_name: provider, return_url: RETURN },
      }),
    );
    const res = await call({
      method: 'POST',
      url: '/v1/capture-credential',
      key: null,
      payload: { state: started.state, credentials: { api_key: `key-${workspace}-${provider}` } },
    });
    assert.equal(res.statusCode, 200, res.body);
    return started.connection_id;
  }

  async function createAgent(body: Record<string, unknown>) {
    const res = await call({ method: 'POST', url: '/admin/v1/agents', payload: body });
    assert.equal(res.statusCode, 201, res.body);
    return json<{ id: string; agent_id: string; client_secret: string }>(res);
  }

  async function token(
    clientId: string,
    secret: string,
    extra: Record<string, string> = {},
  ): Promise<{ status: number; body: Record<string, unknown> }> {
    const res = await call({
      method: 'POST',
      url: '/oauth/token',
      key: null,
      headers: { ...FORM, authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}` },
      payload: form({ grant_type: 'client_credentials', ...extra }),
    });
    // RFC 6749 §5.2: a client refused after HTTP Basic is challenged with Basic, not Bearer.
    if (res.statusCode === 401) assert.match(String(res.headers['www-authenticate']), /^Basic /);
    return { status: res.statusCode, body: json(res) };
  }

  const asAgent = (accessToken: string, options: Parameters<TestBroker['request']>[0]) =>
    call({
      ...options,
      key: null,
      headers: { ...(options.headers ?? {}), authorization: `Bearer ${accessToken}` },
    });

  before(async () => {
    broker = await startBroker({ now: () => clock });
    for (const name of ['crm', 'mail']) {
      const res = await call({
        method: 'POST',
        url: '/providers',
        payload: { profile: { name, auth_type: 'api_key' } },
      });
      providerIds[name] = json<{ id: string }>(res).id;
    }
    connections['alice-crm'] = await connect('crm', 'alice');
    connections['alice-mail'] = await connect('mail', 'alice');
    connections['bob-crm'] = await connect('crm', 'bob');
  });
  after(() => broker.close());

  it('registers an agent, shows its secret once, and refuses bad definitions without creating anything', async () => {
    const created = await createAgent({
      agent_id: 'support-bot',
      description: 'answers tickets',
      allowed_scopes: ['crm:read'],
      allowed_providers: ['crm'],
      allowed_workspaces: ['alice'],
    });
    assert.match(created.client_secret, /^nxs_[a-f0-9]{16}_[A-Za-z0-9_-]{43}$/);
    const view = await call({ method: 'GET', url: `/admin/v1/agents/${created.id}` });
    assert.equal(view.statusCode, 200);
    assert.deepEqual(
      json(view).allowed_providers,
      [providerIds.crm],
      'stored by id, so a rename keeps the grant',
    );
    const listed = await call({ method: 'GET', url: '/admin/v1/agents' });
    for (const res of [view, listed]) assert.ok(!res.body.includes(created.client_secret.slice(22)));

    const dup = await call({
      method: 'POST',
      url: '/admin/v1/agents',
      payload: { agent_id: 'support-bot', allowed_scopes: [] },
    });
    assertProblem(dup, 409, 'agent_id_taken');
    for (const [body, code] of [
      [{ agent_id: 'Bad Name', allowed_scopes: [] }, 'invalid_request'],
      [{ agent_id: 'x', allowed_scopes: ['has space'] }, 'invalid_request'],
      [{ agent_id: 'x', allowed_scopes: [], allowed_providers: ['no-such-provider'] }, 'invalid_agent'],
      [{ agent_id: 'x', allowed_scopes: [], jwks_uri: 'http://keys.example/jwks' }, 'invalid_request'],
      [{ agent_id: 'x', allowed_scopes: [], colour: 'red' }, 'invalid_request'],
    ] as const) {
      const res = await call({ method: 'POST', url: '/admin/v1/agents', payload: body });
      assert.equal(res.statusCode, 400, res.body);
      assert.equal(json(res).error, code, res.body);
    }
    const all = json<{ agents: { agent_id: string }[] }>(
      await call({ method: 'GET', url: '/admin/v1/agents' }),
    );
    assert.deepEqual(
      all.agents.map((a) => a.agent_id),
      ['support-bot'],
    );
  });

  it('issues an access token that a third party verifies with the published JWKS', async () => {
    const agent = await createAgent({
      agent_id: 'verifier-check',
      allowed_scopes: ['crm:read', 'crm:write'],
    });
    const issued = await token(agent.agent_id, agent.client_secret, { scope: 'crm:read' });
    assert.equal(issued.status, 200, JSON.stringify(issued.body));
    assert.equal(issued.body.token_type, 'Bearer');
    assert.equal(issued.body.scope, 'crm:read');
    const jwks = json<{ keys: Record<string, unknown>[] }>(
      await call({ method: 'GET', url: '/.well-known/jwks.json', key: null }),
    );
    const meta = json<{ issuer: string; token_endpoint: string }>(
      await call({ method: 'GET', url: '/.well-known/oauth-authorization-server', key: null }),
    );
    const { payload, protectedHeader } = await jwtVerify(
      String(issued.body.access_token),
      createLocalJWKSet(jwks as never),
      {
        issuer: meta.issuer,
        audience: meta.issuer,
        currentDate: new Date(clock),
      },
    );
    assert.equal(protectedHeader.typ, 'at+jwt');
    assert.equal(payload.client_id, 'verifier-check');
    assert.equal(payload.sub, agent.id);
    assert.equal((payload.exp as number) - (payload.iat as number), 600);

    // client_secret_post works too; a wrong secret, an unknown agent and other grants do not.
    const post = await call({
      method: 'POST',
      url: '/oauth/token',
      key: null,
      headers: FORM,
      payload: form({
        grant_type: 'client_credentials',
        client_id: agent.agent_id,
        client_secret: agent.client_secret,
      }),
    });
    assert.equal(post.statusCode, 200, post.body);
    assert.equal(json(post).scope, 'crm:read crm:write', 'no scope asked: every allowed scope');
    const last = agent.client_secret.at(-1) === 'x' ? 'y' : 'x';
    assert.equal((await token(agent.agent_id, `${agent.client_secret.slice(0, -1)}${last}`)).status, 401);
    assert.equal((await token('nobody', agent.client_secret)).status, 401);
    const escalation = await token(agent.agent_id, agent.client_secret, { scope: 'crm:read admin' });
    assert.equal(escalation.status, 400);
    assert.equal(escalation.body.error, 'invalid_scope');
    const grant = await token(agent.agent_id, agent.client_secret, { grant_type: 'password' });
    assert.equal(grant.status, 400);
    assert.equal(grant.body.error, 'unsupported_grant_type');
  });

  it('lets an agent use only the connections its grant names, and nothing of the admin surface', async () => {
    const agent = await createAgent({
      agent_id: 'crm-for-alice',
      allowed_scopes: [],
      allowed_providers: ['crm'],
      allowed_workspaces: ['alice'],
    });
    const at = String((await token(agent.agent_id, agent.client_secret)).body.access_token);
    const mine = await asAgent(at, { method: 'GET', url: `/v1/token/${connections['alice-crm']}` });
    assert.equal(mine.statusCode, 200, mine.body);
    assert.equal(json<{ credentials: { api_key: string } }>(mine).credentials.api_key, 'key-alice-crm');
    for (const other of [connections['alice-mail'], connections['bob-crm'], randomUUID()]) {
      for (const url of [`/v1/token/${other}`, `/v1/check-connection/${other}`, `/v1/refresh/${other}`]) {
        const res = await asAgent(at, { method: url.includes('refresh') ? 'POST' : 'GET', url });
        assertProblem(
          res,
          404,
          'connection_not_found',
          `${url}: outside the grant looks like nothing at all`,
        );
      }
    }
    const resolved = await asAgent(at, {
      method: 'GET',
      url: '/v1/resolve?workspace_id=bob&provider_name=crm',
    });
    assert.equal(resolved.statusCode, 404);
    const revoke = await asAgent(at, { method: 'DELETE', url: `/v1/connections/${connections['bob-crm']}` });
    assert.equal(revoke.statusCode, 404);
    for (const [method, url] of [
      ['GET', '/providers'],
      ['GET', '/admin/v1/agents'],
      ['GET', '/audit'],
      ['GET', `/connections/${connections['alice-crm']}/token`],
    ] as const) {
      const res = await asAgent(at, { method, url });
      assert.equal(res.statusCode, 403, `${url}: ${res.body}`);
    }
    // Starting a connection: only for a provider and user in the grant.
    const ok = await asAgent(at, {
      method: 'POST',
      url: '/v1/request-connection',
      payload: { user_id: 'alice', provider_name: 'crm', return_url: RETURN },
    });
    assert.equal(ok.statusCode, 200, ok.body);
    const otherProvider = await asAgent(at, {
      method: 'POST',
      url: '/v1/request-connection',
      payload: { user_id: 'alice', provider_name: 'mail', return_url: RETURN },
    });
    assert.equal(otherProvider.statusCode, 404);
    const otherUser = await asAgent(at, {
      method: 'POST',
      url: '/v1/request-connection',
      payload: { user_id: 'bob', provider_name: 'crm', return_url: RETURN },
    });
    assert.equal(otherUser.statusCode, 403);
  });

  it('refuses a deactivated agent at once, even with a token issued before, and after it is reactivated', async () => {
    const agent = await createAgent({
      agent_id: 'short-lived',
      allowed_scopes: [],
      allowed_providers: ['*'],
      allowed_workspaces: ['*'],
    });
    const at = String((await token(agent.agent_id, agent.client_secret)).body.access_token);
    const url = `/v1/token/${connections['bob-crm']}`;
    assert.equal((await asAgent(at, { method: 'GET', url })).statusCode, 200);
    const off = await call({
      method: 'PATCH',
      url: `/admin/v1/agents/${agent.id}`,
      payload: { active: false },
    });
    assert.equal(off.statusCode, 200, off.body);
    assert.equal((await asAgent(at, { method: 'GET', url })).statusCode, 401);
    assert.equal((await token(agent.agent_id, agent.client_secret)).status, 401);
    // Reactivated, it gets new tokens; what it held when deactivated (a token an operator who
    // suspected it may think stolen) stays refused (2026-12-07 review: it worked again).
    clock += 1_000;
    await call({ method: 'PATCH', url: `/admin/v1/agents/${agent.id}`, payload: { active: true } });
    assert.equal((await asAgent(at, { method: 'GET', url })).statusCode, 401);
    const fresh = String((await token(agent.agent_id, agent.client_secret)).body.access_token);
    assert.equal((await asAgent(fresh, { method: 'GET', url })).statusCode, 200);
    await call({ method: 'DELETE', url: `/admin/v1/agents/${agent.id}` });
    assert.equal((await asAgent(fresh, { method: 'GET', url })).statusCode, 401);
  });

  it('refuses forged, expired, unsigned and foreign tokens', async () => {
    const agent = await createAgent({
      agent_id: 'forgery-target',
      allowed_scopes: [],
      allowed_providers: ['*'],
      allowed_workspaces: ['*'],
    });
    const at = String((await token(agent.agent_id, agent.client_secret)).body.access_token);
    const url = `/v1/token/${connections['alice-crm']}`;
    const [h, p, sig] = at.split('.') as [string, string, string];
    const tamperedPayload = Buffer.from(
      JSON.stringify({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), scope: 'admin' }),
    ).toString('base64url');
    const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const foreign = await new SignJWT({ client_id: agent.agent_id })
      .setProtectedHeader({
        alg: 'ES256',
        typ: 'at+jwt',
        kid: JSON.parse(Buffer.from(h, 'base64url').toString()).kid,
      })
      .setIssuer(broker.container.config.http.baseUrl)
      .setAudience(broker.container.config.http.baseUrl)
      .setSubject(agent.id)
      .setIssuedAt(Math.floor(clock / 1000))
      .setExpirationTime(Math.floor(clock / 1000) + 600)
      .sign(stranger.privateKey);
    const unsigned = new UnsecuredJWT({ client_id: agent.agent_id, sub: agent.id }).encode();
    for (const bad of [
      `${h}.${tamperedPayload}.${sig}`,
      foreign,
      `${unsigned}x`.replace(/\.$/, '.AAAA'),
      `${h}.${p}.${sig.slice(0, -4)}AAAA`,
    ]) {
      const res = await asAgent(bad, { method: 'GET', url });
      assert.equal(res.statusCode, 401, bad);
    }
    clock += 601_000;
    assert.equal((await asAgent(at, { method: 'GET', url })).statusCode, 401, 'expired');
    clock -= 601_000;
    assert.equal(
      (await asAgent(at, { method: 'GET', url })).statusCode,
      200,
      'the genuine token still works',
    );
  });

  it('rotates a client secret with an overlap, and revokes one at once', async () => {
    const agent = await createAgent({ agent_id: 'rotating', allowed_scopes: [] });
    const rotated = await call({
      method: 'POST',
      url: `/admin/v1/agents/${agent.id}/secrets`,
      payload: { overlap_seconds: 60 },
    });
    assert.equal(rotated.statusCode, 201, rotated.body);
    const next = json<{ secret_id: string; client_secret: string }>(rotated);
    assert.equal(
      (await token(agent.agent_id, agent.client_secret)).status,
      200,
      'old secret during the overlap',
    );
    assert.equal((await token(agent.agent_id, next.client_secret)).status, 200);
    clock += 61_000;
    assert.equal(
      (await token(agent.agent_id, agent.client_secret)).status,
      401,
      'old secret after the overlap',
    );
    assert.equal((await token(agent.agent_id, next.client_secret)).status, 200);
    const revoked = await call({
      method: 'DELETE',
      url: `/admin/v1/agents/${agent.id}/secrets/${next.secret_id}`,
    });
    assert.equal(revoked.statusCode, 200, revoked.body);
    assert.equal((await token(agent.agent_id, next.client_secret)).status, 401);
  });

  it('authenticates private_key_jwt agents, once per assertion', async () => {
    const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const agent = await createAgent({
      agent_id: 'keyed-agent',
      allowed_scopes: ['ledger:read'],
      generate_secret: false,
      jwks: { keys: [{ ...(await exportJWK(keys.publicKey)), kid: 'k1', alg: 'ES256' }] },
    });
    assert.equal(agent.client_secret, undefined);
    const endpoint = `${broker.container.config.http.baseUrl}/oauth/token`;
    const assertion = (
      options: { key?: typeof keys.privateKey; ttl?: number; aud?: string; jti?: string } = {},
    ) =>
      new SignJWT({})
        .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
        .setIssuer('keyed-agent')
        .setSubject('keyed-agent')
        .setAudience(options.aud ?? endpoint)
        .setIssuedAt(Math.floor(clock / 1000))
        .setExpirationTime(Math.floor(clock / 1000) + (options.ttl ?? 60))
        .setJti(options.jti ?? randomUUID())
        .sign(options.key ?? keys.privateKey);
    const exchange = async (jwt: string) =>
      call({
        method: 'POST',
        url: '/oauth/token',
        key: null,
        headers: FORM,
        payload: form({
          grant_type: 'client_credentials',
          client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
          client_assertion: jwt,
        }),
      });
    const first = await assertion({ jti: 'once' });
    assert.equal((await exchange(first)).statusCode, 200);
    assert.equal((await exchange(first)).statusCode, 401, 'a replayed assertion is refused');
    assert.equal(
      (
        await exchange(
          await assertion({ key: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey }),
        )
      ).statusCode,
      401,
    );
    assert.equal(
      (await exchange(await assertion({ aud: 'https://elsewhere.example/token' }))).statusCode,
      401,
    );
    assert.equal(
      (await exchange(await assertion({ ttl: 3600 }))).statusCode,
      401,
      'long-lived assertions are refused',
    );
  });

  it('keeps tokens signed before a key rotation valid until they expire', async () => {
    const agent = await createAgent({
      agent_id: 'across-rotation',
      allowed_scopes: [],
      allowed_providers: ['*'],
      allowed_workspaces: ['*'],
    });
    const before = String((await token(agent.agent_id, agent.client_secret)).body.access_token);
    const rotated = await broker.container.signingKeys.rotate(3600_000);
    const after = String((await token(agent.agent_id, agent.client_secret)).body.access_token);
    const kid = (t: string) => JSON.parse(Buffer.from(t.split('.')[0]!, 'base64url').toString()).kid;
    assert.equal(kid(after), rotated.kid);
    assert.ok(rotated.retired.includes(kid(before)));
    const jwks = json<{ keys: { kid: string }[] }>(
      await call({ method: 'GET', url: '/.well-known/jwks.json', key: null }),
    );
    assert.ok(jwks.keys.some((k) => k.kid === kid(before)) && jwks.keys.some((k) => k.kid === rotated.kid));
    const url = `/v1/token/${connections['alice-crm']}`;
    assert.equal((await asAgent(before, { method: 'GET', url })).statusCode, 200);
    assert.equal((await asAgent(after, { method: 'GET', url })).statusCode, 200);
  });

  it('answers a NUL byte in an id or a client id with 4xx, never a 500, and other reads go on', async () => {
    const agent = await createAgent({
      agent_id: 'nul-check',
      allowed_scopes: [],
      allowed_providers: ['*'],
      allowed_workspaces: ['*'],
    });
    const at = String((await token(agent.agent_id, agent.client_secret)).body.access_token);
    const [bad, good] = await Promise.all([
      asAgent(at, { method: 'GET', url: '/v1/token/x%00' }),
      asAgent(at, { method: 'GET', url: `/v1/token/${connections['alice-crm']}` }),
    ]);
    assert.equal(bad.statusCode, 400, bad.body);
    assert.equal(good.statusCode, 200, good.body);
    const nulClient = await call({
      method: 'POST',
      url: '/oauth/token',
      key: null,
      headers: FORM,
      payload: 'grant_type=client_credentials&client_id=x%00y&client_secret=s',
    });
    // Refused before any client is looked up (http/unstorable-text.ts), on both databases alike.
    assert.equal(nulClient.statusCode, 400, nulClient.body);
    assert.equal(json(nulClient).error, 'invalid_request');
    assert.deepEqual(json(nulClient).details, [
      { path: 'body.client_id', message: 'contains a NUL character (U+0000)' },
    ]);
  });

  it('stops accepting tokens of a retired signing key, and tokens living longer than the broker issues', async () => {
    const agent = await createAgent({
      agent_id: 'key-compromise',
      allowed_scopes: [],
      allowed_providers: ['*'],
      allowed_workspaces: ['*'],
    });
    const url = `/v1/token/${connections['alice-crm']}`;
    const signer = await broker.container.signingKeys.signer();
    const longLived = await new SignJWT({ client_id: agent.agent_id, scope: '' })
      .setProtectedHeader({ alg: 'ES256', kid: signer.kid, typ: 'at+jwt' })
      .setIssuer(broker.container.config.http.baseUrl)
      .setAudience(broker.container.config.http.baseUrl)
      .setSubject(agent.id)
      .setIssuedAt(Math.floor(clock / 1000))
      .setExpirationTime(Math.floor(clock / 1000) + 10 * 365 * 86400)
      .sign(signer.privateKey);
    assert.equal(
      (await asAgent(longLived, { method: 'GET', url })).statusCode,
      401,
      'lifetime beyond the TTL',
    );
    const before = String((await token(agent.agent_id, agent.client_secret)).body.access_token);
    assert.equal((await asAgent(before, { method: 'GET', url })).statusCode, 200);
    // A compromised key: rotate with no grace period and delete it.
    await broker.container.signingKeys.rotate(0);
    clock += 1;
    await broker.container.signingKeys.deleteRetired();
    assert.equal((await asAgent(before, { method: 'GET', url })).statusCode, 401, 'its key is gone');
    const after = String((await token(agent.agent_id, agent.client_secret)).body.access_token);
    assert.equal((await asAgent(after, { method: 'GET', url })).statusCode, 200);
  });

  it('publishes an agent JWKS (public keys only) and deletes with If-Match', async () => {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pub = { ...publicKey.export({ format: 'jwk' }), kid: 'k1', alg: 'ES256' };
    const priv = { ...privateKey.export({ format: 'jwk' }), kid: 'k1', alg: 'ES256' };
    const refused = await call({
      method: 'POST',
      url: '/admin/v1/agents',
      payload: { agent_id: 'leaky-keys', allowed_scopes: [], jwks: { keys: [priv] } },
    });
    assert.equal(refused.statusCode, 400, 'a private key is refused');
    assert.match(refused.body, /public key only/);
    assert.equal(
      (await call({ method: 'GET', url: '/admin/v1/agents/leaky-keys' })).statusCode,
      404,
      'nothing created',
    );

    const created = await createAgent({ agent_id: 'keyed-bot', allowed_scopes: [], jwks: { keys: [pub] } });
    const view = await call({ method: 'GET', url: `/admin/v1/agents/${created.id}` });
    assert.deepEqual(json<{ jwks: unknown }>(view).jwks, { keys: [pub] });
    const etag = view.headers.etag as string;
    const stale = await call({
      method: 'DELETE',
      url: `/admin/v1/agents/${created.id}`,
      headers: { 'if-match': '"999"' },
    });
    assertProblem(stale, 409, 'version_conflict');
    assert.equal(
      (await call({ method: 'GET', url: `/admin/v1/agents/${created.id}` })).statusCode,
      200,
      'still there',
    );
    const deleted = await call({
      method: 'DELETE',
      url: `/admin/v1/agents/${created.id}`,
      headers: { 'if-match': etag },
    });
    assert.equal(deleted.statusCode, 200, deleted.body);
  });

  it('audits every token issued or denied, naming the agent', async () => {
    const res = await call({ method: 'GET', url: '/audit?limit=500' });
    const events = json<{ events: { event_type: string; actor: string; outcome: string }[] }>(res).events;
    assert.ok(
      events.some((e) => e.event_type === 'agent.token_issued' && e.actor === 'agent:verifier-check'),
    );
    assert.ok(
      events.some(
        (e) =>
          e.event_type === 'agent.token_denied' &&
          e.actor === 'agent:verifier-check' &&
          e.outcome === 'failure',
      ),
    );
    assert.ok(
      events.some((e) => e.event_type === 'connection.token_read' && e.actor === 'agent:crm-for-alice'),
    );
    assert.ok(!res.body.includes('nxs_'), 'no secret in the audit log');
  });
});
