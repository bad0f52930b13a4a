import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { decodeJwt, decodeProtectedHeader, SignJWT, UnsecuredJWT } from 'jose';
import { oboDecision } from '../src/modules/token-exchange/obo.ts';
import { assertProblem, createAgentWithToken, json, startBroker, type TestBroker } from './harness.ts';
import { type OidcFixture, startOidcProvider } from './oidc-fixture.ts';

/**
 * On-behalf-of, first half (issue #6): trusted issuers of user tokens (admin CRUD and every
 * validation error) and `verifyUserToken` against REAL OpenID providers (oidc-provider issuing RFC
 * 9068 JWT access tokens for a resource indicator) playing the developer's user IdP. The broker runs
 * on a clock offset from the providers' so expiry and not-before are exact.
 */

const AUDIENCE = 'https://nexus.example.test/obo';
const CLAIMS = { permissions: ['crm:read', 'crm:write'], tenant: 'acme', clearance: 'secret' };
const URL_BASE = '/admin/v1/trusted-issuers';

type Issuer = {
  id: string;
  issuer: string;
  jwks_uri: string | null;
  use_discovery: boolean;
  audience: string;
  algorithms: string[];
  user_id_claim: string;
  tenant_claim: string | null;
  permissions_claim: string;
  clearance_claim: string | null;
  version: number;
};

describe('trusted issuers and user tokens', () => {
  let broker: TestBroker;
  let idp: OidcFixture;
  let other: OidcFixture;
  let offsetMs = 0;
  let trusted: Issuer;
  let genuine: string;

  const call = (options: Parameters<TestBroker['request']>[0]) => broker.request(options);
  const verify = (token: string) => broker.container.trustedIssuers.verifyUserToken(token);
  const listed = async () =>
    json<{ trusted_issuers: Issuer[] }>(await call({ method: 'GET', url: URL_BASE })).trusted_issuers;

  before(async () => {
    [idp, other] = await Promise.all([startOidcProvider(), startOidcProvider()]);
    broker = await startBroker({ now: () => Date.now() + offsetMs });
    genuine = await idp.issueUserToken({ resource: AUDIENCE, accountId: 'alice', claims: CLAIMS });
  });
  after(async () => {
    await broker.close();
    await Promise.all([idp.close(), other.close()]);
  });

  it('registers an issuer found through OpenID discovery, with defaults, and shows it', async () => {
    const res = await call({
      method: 'POST',
      url: URL_BASE,
      payload: {
        issuer: idp.issuer,
        use_discovery: true,
        audience: AUDIENCE,
        tenant_claim: 'tenant',
        clearance_claim: 'clearance',
      },
    });
    assert.equal(res.statusCode, 201, res.body);
    trusted = json<Issuer>(res);
    assert.deepEqual(
      {
        issuer: trusted.issuer,
        jwks_uri: trusted.jwks_uri,
        use_discovery: trusted.use_discovery,
        algorithms: trusted.algorithms,
        user_id_claim: trusted.user_id_claim,
        permissions_claim: trusted.permissions_claim,
        tenant_claim: trusted.tenant_claim,
        clearance_claim: trusted.clearance_claim,
        version: trusted.version,
      },
      {
        issuer: idp.issuer,
        jwks_uri: null,
        use_discovery: true,
        algorithms: ['RS256', 'ES256'],
        user_id_claim: 'sub',
        permissions_claim: 'permissions',
        tenant_claim: 'tenant',
        clearance_claim: 'clearance',
        version: 1,
      },
    );
    const one = await call({ method: 'GET', url: `${URL_BASE}/${trusted.id}` });
    assert.equal(one.statusCode, 200);
    assert.equal(one.headers.etag, '"1"');
    assert.deepEqual(json(one), json(res));
    assert.deepEqual(
      (await listed()).map((i) => i.id),
      [trusted.id],
    );
  });

  it('refuses every invalid definition and creates nothing', async () => {
    const base = {
      issuer: 'https://idp.example.test',
      jwks_uri: 'https://idp.example.test/jwks',
      audience: 'a',
    };
    const cases: [Record<string, unknown>, number, string, string?][] = [
      [{ ...base, issuer: 'ftp://idp.example.test' }, 400, 'invalid_request'],
      [{ ...base, issuer: 'not a url' }, 400, 'invalid_request'],
      [{ ...base, issuer: `https://idp.example.test/${'x'.repeat(2048)}` }, 400, 'invalid_request'],
      [{ ...base, issuer: 'http://idp.example.test' }, 400, 'invalid_trusted_issuer', 'issuer'],
      [{ ...base, issuer: 'https://user:pw@idp.example.test' }, 400, 'invalid_trusted_issuer', 'issuer'],
      [{ ...base, issuer: 'https://idp.example.test/#frag' }, 400, 'invalid_trusted_issuer', 'issuer'],
      [{ ...base, jwks_uri: 'http://idp.example.test/jwks' }, 400, 'invalid_trusted_issuer', 'jwks_uri'],
      [{ ...base, jwks_uri: undefined }, 400, 'invalid_trusted_issuer', 'jwks_uri'],
      [{ ...base, enable_discovery: true }, 400, 'invalid_trusted_issuer', 'enable_discovery'],
      [{ ...base, use_discovery: true }, 400, 'invalid_trusted_issuer', 'enable_discovery'],
      [{ ...base, algorithms: ['none'] }, 400, 'invalid_request'],
      [{ ...base, algorithms: ['HS256'] }, 400, 'invalid_request'],
      [{ ...base, algorithms: [] }, 400, 'invalid_request'],
      [{ ...base, audience: '' }, 400, 'invalid_request'],
      [{ ...base, audience: 'a'.repeat(2049) }, 400, 'invalid_request'],
      [{ ...base, audience: undefined }, 400, 'invalid_request'],
      [{ ...base, user_id_claim: 'has space' }, 400, 'invalid_request'],
      [{ ...base, permissions_claim: '' }, 400, 'invalid_request'],
      [{ ...base, tenant_claim: 'x'.repeat(257) }, 400, 'invalid_request'],
      [{ ...base, introspection_url: 'https://idp.example.test/introspect' }, 400, 'invalid_request'],
      [{ ...base, use_discovery: 'yes' }, 400, 'invalid_request'],
      // Discovery is checked live: an issuer nobody answers for registers nothing.
      [
        { issuer: 'http://127.0.0.1:9', use_discovery: true, audience: 'a' },
        422,
        'trusted_issuer_discovery_failed',
        'issuer',
      ],
      [{ issuer: idp.issuer, jwks_uri: idp.endpoints.jwks, audience: 'a' }, 409, 'trusted_issuer_taken'],
    ];
    for (const [payload, status, code, path] of cases) {
      const res = await call({ method: 'POST', url: URL_BASE, payload });
      assert.equal(res.statusCode, status, `${JSON.stringify(payload).slice(0, 200)}: ${res.body}`);
      const body = json<{ error: string; details?: { path: string }[] }>(res);
      assert.equal(body.error, code);
      if (path !== undefined)
        assert.ok(
          body.details?.some((d) => d.path === path),
          `${code} names ${path}: ${res.body}`,
        );
    }
    assert.deepEqual(
      (await listed()).map((i) => i.id),
      [trusted.id],
      'nothing was created',
    );
  });

  it('allows a loopback http issuer outside production, never a remote http JWKS', async () => {
    // The same rule providers follow: plain http only for localhost outside production.
    const res = await call({
      method: 'POST',
      url: URL_BASE,
      payload: { issuer: 'http://localhost:1/x', jwks_uri: 'http://example.test/jwks', audience: 'a' },
    });
    assert.equal(res.statusCode, 400);
    const details = json<{ details: { path: string; message: string }[] }>(res).details;
    assert.deepEqual(
      details.map((d) => d.path),
      ['jwks_uri'],
      'loopback http issuer is allowed in development, a remote http JWKS never',
    );
  });

  it('refuses http even for loopback issuers and key URLs in production', async () => {
    const production = await startBroker({
      env: { NEXUS_ENV: 'production', BASE_URL: 'https://nexus.example.com' },
    });
    try {
      const res = await production.request({
        method: 'POST',
        url: URL_BASE,
        payload: { issuer: idp.issuer, jwks_uri: idp.endpoints.jwks, audience: AUDIENCE },
      });
      const body = assertProblem<{ error: string; details: { path: string; message: string }[] }>(
        res,
        400,
        'invalid_trusted_issuer',
      );
      assert.deepEqual(body.details, [
        { path: 'issuer', message: 'must use https' },
        { path: 'jwks_uri', message: 'must use https' },
      ]);
      const listedThere = await production.request({ method: 'GET', url: URL_BASE });
      assert.deepEqual(json(listedThere), { trusted_issuers: [] });
    } finally {
      await production.close();
    }
  });

  it('accepts a genuine user token from the real provider and maps its claims', async () => {
    assert.equal(decodeProtectedHeader(genuine).alg, 'RS256');
    const exp = decodeJwt(genuine).exp!;
    const result = await verify(genuine);
    assert.deepEqual(result, {
      ok: true,
      issuerId: trusted.id,
      issuerVersion: 1,
      issuer: idp.issuer,
      userId: 'alice',
      tenantId: 'acme',
      permissions: ['crm:read', 'crm:write'],
      clearance: 'secret',
      expiresAt: exp * 1000,
      // The provider's OAuth scope and client, as the token carries them (`/mcp` reads them).
      scopes: ['api:read'],
      clientId: decodeJwt(genuine).client_id,
    });
  });

  it('maps permissions from a space-separated `scope` claim, and refuses a token without the user claim', async () => {
    const patched = await call({
      method: 'PATCH',
      url: `${URL_BASE}/${trusted.id}`,
      headers: { 'if-match': '"1"' },
      payload: { permissions_claim: 'scope', tenant_claim: null },
    });
    assert.equal(patched.statusCode, 200, patched.body);
    assert.equal(json<Issuer>(patched).version, 2);
    const result = await verify(genuine);
    assert.ok(result.ok);
    assert.deepEqual(result.permissions, ['api:read']);
    assert.equal(result.tenantId, null);

    await call({
      method: 'PATCH',
      url: `${URL_BASE}/${trusted.id}`,
      payload: { user_id_claim: 'employee_id' },
    });
    assert.deepEqual(await verify(genuine), { ok: false, reason: 'missing_user' });
    // `*` names every user in a grant, so no person may be it; nor may an id hold control characters.
    for (const employee of ['*', 'a\u0007b']) {
      const odd = await idp.issueUserToken({
        resource: AUDIENCE,
        accountId: 'mallory',
        claims: { ...CLAIMS, employee_id: employee },
      });
      assert.deepEqual(await verify(odd), { ok: false, reason: 'invalid_user' }, JSON.stringify(employee));
    }
    const restored = await call({
      method: 'PATCH',
      url: `${URL_BASE}/${trusted.id}`,
      payload: { user_id_claim: 'sub', permissions_claim: 'permissions', tenant_claim: 'tenant' },
    });
    assert.equal(json<Issuer>(restored).version, 4);
    assert.equal((await verify(genuine)).ok, true);
  });

  it('refuses invalid changes and leaves the issuer as it was', async () => {
    const before = json<Issuer>(await call({ method: 'GET', url: `${URL_BASE}/${trusted.id}` }));
    const cases: [Record<string, unknown>, Record<string, string>, number, string][] = [
      [{ use_discovery: false }, {}, 400, 'invalid_trusted_issuer'],
      [{ enable_discovery: false }, {}, 400, 'invalid_trusted_issuer'],
      [{ enable_discovery: true, use_discovery: false }, {}, 400, 'invalid_request'],
      [{ jwks_uri: idp.endpoints.jwks }, {}, 400, 'invalid_trusted_issuer'],
      [{ issuer: 'http://idp.example.test' }, {}, 400, 'invalid_trusted_issuer'],
      [{ algorithms: ['HS256'] }, {}, 400, 'invalid_request'],
      [{ audience: null }, {}, 400, 'invalid_request'],
      [{ colour: 'red' }, {}, 400, 'invalid_request'],
      [{ audience: 'b' }, { 'if-match': '"1"' }, 409, 'version_conflict'],
    ];
    for (const [payload, headers, status, code] of cases) {
      const res = await call({ method: 'PATCH', url: `${URL_BASE}/${trusted.id}`, headers, payload });
      assert.equal(res.statusCode, status, `${JSON.stringify(payload)}: ${res.body}`);
      assert.equal(json(res).error, code);
    }
    for (const [method, url, status, code] of [
      ['GET', `${URL_BASE}/00000000-0000-4000-8000-000000000000`, 404, 'trusted_issuer_not_found'],
      ['PATCH', `${URL_BASE}/00000000-0000-4000-8000-000000000000`, 404, 'trusted_issuer_not_found'],
      ['DELETE', `${URL_BASE}/00000000-0000-4000-8000-000000000000`, 404, 'trusted_issuer_not_found'],
      ['GET', `${URL_BASE}/not-a-uuid`, 400, 'invalid_request'],
    ] as const) {
      const res = await call({ method, url, ...(method === 'PATCH' ? { payload: { audience: 'b' } } : {}) });
      assert.equal(res.statusCode, status, `${method} ${url}: ${res.body}`);
      assert.equal(json(res).error, code);
    }
    const unauthenticated = await call({ method: 'GET', url: URL_BASE, key: null });
    assert.equal(unauthenticated.statusCode, 401);
    const staleDelete = await call({
      method: 'DELETE',
      url: `${URL_BASE}/${trusted.id}`,
      headers: { 'if-match': '"1"' },
    });
    assertProblem(staleDelete, 409, 'version_conflict', 'a delete against a stale version is refused');
    assert.deepEqual(json(await call({ method: 'GET', url: `${URL_BASE}/${trusted.id}` })), before);
  });

  it('refuses forged, expired, not-yet-valid and wrong-audience tokens, each with its reason', async () => {
    const [header, payload] = genuine.split('.') as [string, string, string];
    const claims = decodeJwt(genuine);
    // The payload changed (permissions escalated) under the provider's signature.
    const escalated = Buffer.from(JSON.stringify({ ...claims, permissions: ['admin'] })).toString(
      'base64url',
    );
    assert.deepEqual(await verify(`${header}.${escalated}.${genuine.split('.')[2]}`), {
      ok: false,
      reason: 'bad_signature',
    });
    // Signed by someone else's key under the provider's key id.
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const forged = await new SignJWT({ ...claims, permissions: ['admin'] })
      .setProtectedHeader({ alg: 'RS256', kid: decodeProtectedHeader(genuine).kid!, typ: 'at+jwt' })
      .sign(privateKey);
    assert.deepEqual(await verify(forged), { ok: false, reason: 'bad_signature' });
    // ... or under a key id the provider does not publish.
    const unknownKid = await new SignJWT({ ...claims })
      .setProtectedHeader({ alg: 'RS256', kid: 'attacker' })
      .sign(privateKey);
    assert.deepEqual(await verify(unknownKid), { ok: false, reason: 'bad_signature' });
    assert.ok(payload.length > 0);

    const exp = claims.exp! * 1000;
    const iat = claims.iat! * 1000;
    try {
      offsetMs = exp + 31_000 - Date.now();
      assert.deepEqual(await verify(genuine), { ok: false, reason: 'expired' });
      offsetMs = exp + 29_000 - Date.now();
      assert.equal((await verify(genuine)).ok, true, 'within the clock tolerance');
      offsetMs = iat - 31_000 - Date.now();
      assert.deepEqual(await verify(genuine), { ok: false, reason: 'not_yet_valid' }, 'issued in the future');
    } finally {
      offsetMs = 0;
    }
    const notBefore = await idp.signWithProviderKey({
      sub: 'alice',
      aud: AUDIENCE,
      iat: Math.floor(Date.now() / 1000),
      nbf: Math.floor(Date.now() / 1000) + 120,
      exp: Math.floor(Date.now() / 1000) + 600,
    });
    assert.deepEqual(await verify(notBefore), { ok: false, reason: 'not_yet_valid' });
    const noExpiry = await idp.signWithProviderKey({ sub: 'alice', aud: AUDIENCE });
    assert.deepEqual(await verify(noExpiry), { ok: false, reason: 'malformed' });

    const elsewhere = await idp.issueUserToken({
      resource: 'https://another-api.example.test',
      accountId: 'alice',
      claims: CLAIMS,
    });
    assert.equal(decodeJwt(elsewhere).iss, idp.issuer);
    assert.deepEqual(await verify(elsewhere), { ok: false, reason: 'wrong_audience' });
  });

  it('refuses `alg: none` and HS256 keyed with the public key before any key is used', async () => {
    const claims = decodeJwt(genuine);
    const unsecured = new UnsecuredJWT({ ...claims }).encode();
    assert.deepEqual(await verify(unsecured), { ok: false, reason: 'algorithm_not_allowed' });

    // The classic confusion attack: the issuer's RSA public key (as published) used as an HMAC secret.
    const jwks = (await (await fetch(idp.endpoints.jwks)).json()) as { keys: Record<string, unknown>[] };
    const publicPem = createPublicKey({ key: jwks.keys[0]!, format: 'jwk' }).export({
      type: 'spki',
      format: 'pem',
    });
    const hs256 = await new SignJWT({ ...claims, permissions: ['admin'] })
      .setProtectedHeader({ alg: 'HS256', kid: jwks.keys[0]!.kid as string })
      .sign(new TextEncoder().encode(String(publicPem)));
    assert.deepEqual(await verify(hs256), { ok: false, reason: 'algorithm_not_allowed' });

    // An algorithm the issuer could use but was not configured with.
    await call({ method: 'PATCH', url: `${URL_BASE}/${trusted.id}`, payload: { algorithms: ['ES256'] } });
    try {
      assert.deepEqual(await verify(genuine), { ok: false, reason: 'algorithm_not_allowed' });
    } finally {
      await call({ method: 'PATCH', url: `${URL_BASE}/${trusted.id}`, payload: { algorithms: ['RS256'] } });
    }
    assert.equal((await verify(genuine)).ok, true);

    for (const garbage of ['', 'abc', 'a.b.c', 'x'.repeat(20_000), `${genuine}.extra.parts`]) {
      assert.deepEqual(await verify(garbage), { ok: false, reason: 'malformed' }, garbage.slice(0, 40));
    }
  });

  it("refuses an untrusted issuer's tokens until it is trusted (by jwks_uri), and again once deleted", async () => {
    const token = await other.issueUserToken({ resource: AUDIENCE, accountId: 'bob', claims: CLAIMS });
    assert.deepEqual(await verify(token), { ok: false, reason: 'unknown_issuer' });
    // A token naming the trusted issuer but signed by the other provider's key is a forgery.
    const impostor = await other.signWithProviderKey({
      iss: idp.issuer,
      sub: 'alice',
      aud: AUDIENCE,
      exp: Math.floor(Date.now() / 1000) + 600,
    });
    assert.deepEqual(await verify(impostor), { ok: false, reason: 'bad_signature' });

    const created = await call({
      method: 'POST',
      url: URL_BASE,
      payload: {
        issuer: other.issuer,
        jwks_uri: other.endpoints.jwks,
        audience: AUDIENCE,
        algorithms: ['RS256'],
      },
    });
    assert.equal(created.statusCode, 201, created.body);
    const second = json<Issuer>(created);
    const result = await verify(token);
    assert.ok(result.ok, JSON.stringify(result));
    assert.equal(result.issuerId, second.id);
    assert.equal(result.userId, 'bob');
    assert.equal(result.tenantId, null, 'no tenant claim configured');

    const renamed = await call({
      method: 'PATCH',
      url: `${URL_BASE}/${second.id}`,
      payload: { issuer: idp.issuer },
    });
    assertProblem(renamed, 409, 'trusted_issuer_taken');

    const deleted = await call({ method: 'DELETE', url: `${URL_BASE}/${second.id}` });
    assert.equal(deleted.statusCode, 200, deleted.body);
    assert.deepEqual(await verify(token), { ok: false, reason: 'unknown_issuer' });
    assert.equal((await call({ method: 'GET', url: `${URL_BASE}/${second.id}` })).statusCode, 404);
    assert.equal((await call({ method: 'DELETE', url: `${URL_BASE}/${second.id}` })).statusCode, 404);
    // Unique among live issuers only: it can be trusted again.
    const again = await call({
      method: 'POST',
      url: URL_BASE,
      payload: { issuer: other.issuer, jwks_uri: 'http://127.0.0.1:9/jwks', audience: AUDIENCE },
    });
    assert.equal(again.statusCode, 201, again.body);
    assert.deepEqual(await verify(token), { ok: false, reason: 'keys_unavailable' });
    await call({ method: 'DELETE', url: `${URL_BASE}/${json<Issuer>(again).id}` });
  });

  it('audits every change to the trusted issuers', async () => {
    const res = await call({ method: 'GET', url: '/audit?limit=500' });
    const events = json<{ events: { event_type: string; resource_id: string | null }[] }>(res).events;
    const about = (id: string) => events.filter((e) => e.resource_id === id).map((e) => e.event_type);
    assert.ok(about(trusted.id).includes('trusted_issuer.created'));
    assert.ok(about(trusted.id).includes('trusted_issuer.updated'));
    assert.ok(events.some((e) => e.event_type === 'trusted_issuer.deleted'));
  });
});

describe('oboDecision', () => {
  const agentAllowedScopes = ['crm:read', 'crm:write', 'mail:send'];
  it('allows only scopes that pass both gates', () => {
    assert.deepEqual(
      oboDecision({ agentAllowedScopes, userPermissions: ['crm:read', 'admin'], requested: ['crm:read'] }),
      { allowed: true },
    );
    assert.deepEqual(oboDecision({ agentAllowedScopes, userPermissions: [], requested: [] }), {
      allowed: true,
    });
  });
  it("refuses a scope beyond the user's permissions at the user gate", () => {
    assert.deepEqual(
      oboDecision({
        agentAllowedScopes,
        userPermissions: ['crm:read'],
        requested: ['crm:read', 'crm:write', 'crm:write'],
      }),
      { allowed: false, gate: 'user_permissions', refused: ['crm:write'] },
    );
  });
  it("refuses a scope beyond the agent's allowed scopes at the agent gate", () => {
    assert.deepEqual(
      oboDecision({
        agentAllowedScopes,
        userPermissions: ['crm:read', 'admin'],
        requested: ['crm:read', 'admin'],
      }),
      { allowed: false, gate: 'agent_scopes', refused: ['admin'] },
    );
  });
  it('names the user gate when both fail, and has no wildcards', () => {
    assert.deepEqual(oboDecision({ agentAllowedScopes: ['*'], userPermissions: ['*'], requested: ['x'] }), {
      allowed: false,
      gate: 'user_permissions',
      refused: ['x'],
    });
    assert.deepEqual(oboDecision({ agentAllowedScopes: ['*'], userPermissions: ['x'], requested: ['x'] }), {
      allowed: false,
      gate: 'agent_scopes',
      refused: ['x'],
    });
  });
});

describe('claims stored with an on-behalf-of session', () => {
  const AUDIENCE = 'https://nexus.example.test/obo-claims';
  let idp: OidcFixture;
  let broker: TestBroker;
  before(async () => {
    idp = await startOidcProvider();
    broker = await startBroker();
    await broker.request({ method: 'POST', url: '/admin/v1/scopes', payload: { name: 'crm:read' } });
    const trusted = await broker.request({
      method: 'POST',
      url: '/admin/v1/trusted-issuers',
      payload: { issuer: idp.issuer, use_discovery: true, audience: AUDIENCE, tenant_claim: 'tenant' },
    });
    assert.equal(trusted.statusCode, 201, trusted.body);
  });
  after(async () => {
    await broker.close();
    await idp.close();
  });

  it('a tenant claim holding half an emoji is stored well-formed, and the session list still reads', async () => {
    const agent = await createAgentWithToken(broker, 'assistant', {
      allowed_scopes: ['crm:read'],
      allowed_workspaces: ['*'],
    });
    const obo = async (tenant: string, account: string) =>
      broker.request({
        method: 'POST',
        url: '/v1/agent-sessions/obo',
        key: null,
        headers: { authorization: `Bearer ${agent.token}` },
        payload: {
          user_token: await idp.issueUserToken({
            resource: AUDIENCE,
            accountId: account,
            claims: { permissions: ['crm:read'], tenant },
          }),
          scopes: ['crm:read'],
        },
      });
    assert.equal((await obo('acme', 'alice')).statusCode, 201);
    const odd = await obo('Caf\u00e9 \ud83d', 'mallory');
    assert.equal(odd.statusCode, 201, odd.body);
    for (const user of ['alice', 'mallory']) {
      const listed = await broker.request({
        method: 'GET',
        url: `/admin/v1/agent-sessions?acting_for=${user}`,
      });
      assert.equal(listed.statusCode, 200, listed.body);
    }
    const mallory = json<{ sessions: { tenant_id: string | null }[] }>(
      await broker.request({ method: 'GET', url: '/admin/v1/agent-sessions?acting_for=mallory' }),
    ).sessions;
    assert.equal(mallory[0]?.tenant_id, 'Caf\u00e9 \ufffd');
  });
});
