/**
 * Issue #18, "Outbound requests that bypass the egress guard": the SSRF matrix of a
 * production-mode broker (`NEXUS_EGRESS_ALLOWED_CIDRS=127.0.0.2/32`). Every outbound path (code
 * exchange, refresh, revocation, discovery, a discovery document naming endpoints elsewhere,
 * credential probes, the proxy, webhooks, `BACKEND_AUTH_URL`, Vault) is pointed at loopback in
 * several notations, link-local and private addresses, and a redirect from the allowed host.
 *
 * The targets are real: TLS servers on 127.0.0.1 (and ::1) with a certificate the process trusts,
 * so a request the guard let through would succeed and be seen. Each refusal is checked by what the
 * forbidden server saw (nothing) and by the reason the broker gives (the guard's words: a network
 * failure says something else), and each path has a positive control on the allowed 127.0.0.2.
 *
 * Rows with forbidden URLs cannot be registered in production any more (that is tested first), so a
 * second broker in test mode, allowing every range, writes them to the same database: the rows an
 * older version accepted, which the production broker must still refuse to call.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { createVaultBackend } from '../src/modules/secrets/vault.backend.ts';
import { createAgentWithToken, json, startBroker, type TestBroker } from './harness.ts';

const RETURN = 'https://app.example.com/done';
const REFUSAL = /private or special-purpose address|must not name/;

/** A self-signed certificate for every loopback name and address the tests use; trusted by this process. */
function trustTestCertificate(): { key: string; cert: string } {
  const dir = mkdtempSync(join(tmpdir(), 'nexus-egress-'));
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
        '-days',
        '2',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:127.0.0.2,IP:::1,IP:::ffff:127.0.0.1',
      ],
      { stdio: 'ignore' },
    );
    const pair = {
      key: readFileSync(join(dir, 'key.pem'), 'utf8'),
      cert: readFileSync(join(dir, 'cert.pem'), 'utf8'),
    };
    tls.setDefaultCACertificates([...tls.getCACertificates('default'), pair.cert]);
    return pair;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface Seen {
  method: string;
  host: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

type Route = (req: http.IncomingMessage, body: string, res: http.ServerResponse) => void;

async function listen(server: http.Server, host: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  return (server.address() as AddressInfo).port;
}

/** An https server recording every request it receives. */
function recordingServer(pair: { key: string; cert: string }, seen: Seen[], route: Route): https.Server {
  return https.createServer(pair, (req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      seen.push({
        method: req.method ?? '',
        host: req.headers.host ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body,
      });
      route(req, body, res);
    });
  });
}

const sendJson = (res: http.ServerResponse, status: number, body: unknown) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};

/** A discovery document for `issuer`, with `overrides` for the endpoints under test. */
const documentFor = (issuer: string, overrides: Record<string, string> = {}) => ({
  issuer,
  authorization_endpoint: `${issuer}/authorize`,
  token_endpoint: `${issuer}/token`,
  jwks_uri: `${issuer}/jwks`,
  response_types_supported: ['code'],
  subject_types_supported: ['public'],
  id_token_signing_alg_values_supported: ['ES256'],
  ...overrides,
});

/** The key of the users' identity provider, published by both key-set servers. */
const userKeys = await generateKeyPair('ES256');
const jwks = { keys: [{ ...(await exportJWK(userKeys.publicKey)), kid: 'user-key', alg: 'ES256' }] };

describe('egress guard in production (issue #18)', () => {
  const pair = trustTestCertificate();
  /** What reached the forbidden servers (127.0.0.1 and ::1): must stay empty after the setup. */
  const forbiddenSeen: Seen[] = [];
  const allowedSeen: Seen[] = [];
  let F = 0; // the forbidden port (127.0.0.1 and ::1)
  let A = 0; // the allowed host's port (127.0.0.2)
  let allowedBase = '';
  const servers: https.Server[] = [];
  let dev: TestBroker;
  let prod: TestBroker;
  let tokens = 0;

  /** Loopback in the notations the security pass used, and a name that resolves to it. */
  const loopbackForms = (path: string) => [
    `https://127.0.0.1:${F}${path}`,
    `https://localhost:${F}${path}`,
    `https://2130706433:${F}${path}`,
    `https://0177.0.0.1:${F}${path}`,
    `https://0x7f.1:${F}${path}`,
    `https://127.1:${F}${path}`,
    `https://127.0.0.1.:${F}${path}`,
    `https://[::ffff:127.0.0.1]:${F}${path}`,
    `https://[::1]:${F}${path}`,
  ];
  /** Link-local (the metadata service) and private ranges: nothing listens there, the reason tells. */
  const elsewhere = (path: string) => [
    `https://169.254.169.254${path}`,
    `https://[::ffff:169.254.169.254]${path}`,
    `https://10.0.0.1${path}`,
    `https://192.168.0.1${path}`,
    `https://[fd00::1]${path}`,
  ];
  const everyTarget = (path: string) => [...loopbackForms(path), ...elsewhere(path)];

  /** A forbidden-server route: whatever an identity provider would answer, so that a leak would work. */
  const forbiddenRoute: Route = (req, _body, res) => {
    const url = new URL(req.url ?? '/', `https://${req.headers.host}`);
    if (url.pathname.endsWith('/.well-known/openid-configuration'))
      return sendJson(
        res,
        200,
        documentFor(`https://${req.headers.host}${url.pathname.split('/.well-known')[0]}`),
      );
    if (url.pathname.endsWith('/token'))
      return sendJson(res, 200, { access_token: 'leaked', token_type: 'bearer', expires_in: 3600 });
    if (url.pathname.endsWith('/jwks')) return sendJson(res, 200, jwks);
    return sendJson(res, 200, { active: true, user_id: 'leaked' });
  };

  const allowedRoute: Route = (req, body, res) => {
    const url = new URL(req.url ?? '/', `https://${req.headers.host}`);
    const path = url.pathname;
    if (path.endsWith('/token')) {
      tokens++;
      const form = new URLSearchParams(body);
      if (form.get('grant_type') !== 'authorization_code' && form.get('grant_type') !== 'refresh_token')
        return sendJson(res, 400, { error: 'unsupported_grant_type' });
      return sendJson(res, 200, {
        access_token: `at-${tokens}`,
        refresh_token: `rt-${tokens}`,
        token_type: 'bearer',
        expires_in: 3600,
      });
    }
    if (path === '/revoke') return res.end();
    if (path === '/jwks') return sendJson(res, 200, jwks);
    if (path === '/verify') return sendJson(res, 200, { active: true, user_id: 'alice' });
    if (path === '/hook') return res.end();
    if (path === '/me' || path.startsWith('/api/data')) return sendJson(res, 200, { ok: true });
    if (path.startsWith('/api/redirect'))
      return res.writeHead(302, { location: `https://127.0.0.1:${F}/api/data` }).end();
    const iss = /^\/iss\/([a-z0-9-]+)\/\.well-known\/openid-configuration$/.exec(path);
    if (iss) {
      const issuer = `${allowedBase}/iss/${iss[1]}`;
      const name = iss[1]!;
      const target = documentTargets.get(name);
      return sendJson(res, 200, documentFor(issuer, target ?? {}));
    }
    res.writeHead(404).end();
  };
  /** Discovery documents on the allowed host that name an endpoint elsewhere, by issuer name. */
  const documentTargets = new Map<string, Record<string, string>>();

  before(async () => {
    const forbidden = recordingServer(pair, forbiddenSeen, forbiddenRoute);
    F = await listen(forbidden, '127.0.0.1');
    servers.push(forbidden);
    // The same port on ::1 when it is free (`localhost` may resolve there); else [::1] is refused all the same.
    const forbidden6 = recordingServer(pair, forbiddenSeen, forbiddenRoute);
    await new Promise<void>((resolve) => {
      forbidden6.once('error', () => resolve());
      forbidden6.listen(F, '::1', resolve);
    });
    servers.push(forbidden6);
    const allowed = recordingServer(pair, allowedSeen, allowedRoute);
    A = await listen(allowed, '127.0.0.2');
    allowedBase = `https://127.0.0.2:${A}`;
    servers.push(allowed);

    dev = await startBroker({ env: { NEXUS_EGRESS_ALLOWED_CIDRS: '0.0.0.0/0,::/0' } });
    const keys = {
      ENCRYPTION_KEY: dev.env.ENCRYPTION_KEY!,
      STATE_KEY: dev.env.STATE_KEY!,
      USER_SECRETS_KEY: dev.env.USER_SECRETS_KEY!,
    };
    prod = await startBroker({
      database: dev.db,
      env: {
        ...keys,
        NEXUS_ENV: 'production',
        BASE_URL: 'https://nexus.example.com',
        ALLOWED_RETURN_DOMAINS: 'app.example.com',
        NEXUS_EGRESS_ALLOWED_CIDRS: '127.0.0.2/32',
        NEXUS_UPSTREAM_TIMEOUT_SECONDS: '3',
        BACKEND_AUTH_URL: `${allowedBase}/verify`,
      },
    });
  });

  after(async () => {
    await prod?.close();
    await dev?.close();
    for (const server of servers) {
      server.closeAllConnections();
      server.close();
    }
  });

  /**
   * A provider row as an older version accepted it: registered (on the test-mode broker) with
   * harmless URLs, then `old` written into its stored profile, which no route would accept now.
   */
  async function registerOld(
    profile: Record<string, unknown>,
    old: Record<string, unknown> = {},
  ): Promise<string> {
    const res = await dev.request({ method: 'POST', url: '/providers', payload: { profile } });
    assert.equal(res.statusCode, 201, `${profile.name}: ${res.body}`);
    const id = json<{ id: string }>(res).id;
    if (Object.keys(old).length > 0) await rewrite(id, old);
    return id;
  }

  async function rewrite(id: string, old: Record<string, unknown>): Promise<void> {
    const db = dev.container.db.kysely;
    const row = await db
      .selectFrom('providers')
      .select('profile')
      .where('id', '=', id)
      .executeTakeFirstOrThrow();
    const stored = JSON.parse(row.profile) as Record<string, unknown>;
    const params = { ...(stored.params as Record<string, unknown>), ...((old.params as object) ?? {}) };
    await db
      .updateTable('providers')
      .set({ profile: JSON.stringify({ ...stored, ...old, params }) })
      .where('id', '=', id)
      .execute();
  }

  const oauthProfile = (name: string, extra: Record<string, unknown> = {}) => ({
    name,
    client_id: `${name}-client`,
    client_secret: `${name}-secret-value`,
    auth_url: `${allowedBase}/authorize`,
    token_url: `${allowedBase}/token`,
    scopes: ['read'],
    ...extra,
  });

  async function start(provider: string) {
    const res = await prod.request({
      method: 'POST',
      url: '/v1/request-connection',
      payload: { user_id: 'u1', provider_name: provider, return_url: RETURN },
    });
    return res;
  }

  /** request-connection, then the provider's redirect back to our callback with a code. */
  async function callback(provider: string) {
    const started = await start(provider);
    assert.equal(started.statusCode, 200, started.body);
    const { authUrl, connection_id } = json<{ authUrl: string; connection_id: string }>(started);
    const state = new URL(authUrl).searchParams.get('state')!;
    const res = await prod.request({
      method: 'GET',
      url: `/auth/callback?code=the-code&state=${encodeURIComponent(state)}`,
      key: null,
    });
    assert.equal(res.statusCode, 302, res.body);
    return { connectionId: connection_id, back: new URL(res.headers.location as string) };
  }

  async function auditDetail(connectionId: string): Promise<string> {
    await prod.container.audit.flush();
    const res = await prod.request({ method: 'GET', url: `/audit?resource=connection:${connectionId}` });
    const events = json<{ events: { event_type: string; details: { detail?: string } | null }[] }>(
      res,
    ).events;
    return events.find((e) => e.event_type === 'connection.failed')?.details?.detail ?? '';
  }

  const nothingReached = (label: string) =>
    assert.deepEqual(
      forbiddenSeen.map((s) => `${s.method} ${s.host}${s.url}`),
      [],
      `${label}: the forbidden address was called`,
    );

  it('registration refuses special-purpose literals in any notation, and loopback names, with 400 invalid_provider', async () => {
    const fields: [string, (u: string) => Record<string, unknown>][] = [
      ['token_url', (u) => oauthProfile('reg', { token_url: u })],
      ['issuer', (u) => oauthProfile('reg', { issuer: u })],
      ['params.revocation_endpoint', (u) => oauthProfile('reg', { params: { revocation_endpoint: u } })],
      ['api_base_url', (u) => ({ name: 'reg', auth_type: 'api_key', api_base_url: u })],
      ['user_info_endpoint', (u) => ({ name: 'reg', auth_type: 'api_key', user_info_endpoint: u })],
      [
        'params.validation.url',
        (u) => ({
          name: 'reg',
          auth_type: 'api_key',
          api_base_url: allowedBase,
          params: { validation: { url: u } },
        }),
      ],
    ];
    for (const [path, profileWith] of fields) {
      for (const target of [...everyTarget('/x'), `https://LOCALHOST.:${F}/x`, `https://idp.localhost/x`]) {
        const res = await prod.request({
          method: 'POST',
          url: '/providers',
          payload: { profile: profileWith(target) },
        });
        assert.equal(res.statusCode, 400, `${path} ${target}: ${res.body}`);
        const body = json<{ error: string; details: { path: string; message: string }[] }>(res);
        assert.equal(body.error, 'invalid_provider');
        assert.ok(
          body.details.some((d) => d.path === path && /^must not name /.test(d.message)),
          `${path} ${target}: ${res.body}`,
        );
      }
      // Plain http is refused first, with the message it always had.
      const http = await prod.request({
        method: 'POST',
        url: '/providers',
        payload: { profile: profileWith(`http://127.0.0.1:${F}/x`) },
      });
      assert.ok(
        json<{ details: { path: string; message: string }[] }>(http).details.some(
          (d) => d.path === path && d.message === 'must use https',
        ),
        http.body,
      );
    }
    // The browser opens auth_url; the broker never calls it, so only its scheme is checked.
    const browserOnly = await prod.request({
      method: 'POST',
      url: '/providers',
      payload: {
        profile: oauthProfile('reg', {
          auth_url: 'https://10.0.0.1/authorize',
          token_url: 'https://10.0.0.1/token',
        }),
      },
    });
    assert.deepEqual(
      json<{ details: { path: string }[] }>(browserOnly).details.map((d) => d.path),
      ['token_url'],
    );
    assert.equal((await prod.request({ method: 'GET', url: '/providers' })).body, '[]', 'nothing was stored');
    nothingReached('registration');
    // A literal inside NEXUS_EGRESS_ALLOWED_CIDRS is the operator's choice: it registers.
    const allowedLiteral = await prod.request({
      method: 'POST',
      url: '/providers',
      payload: { profile: oauthProfile('reg-allowed', { token_url: `${allowedBase}/token` }) },
    });
    assert.equal(allowedLiteral.statusCode, 201, allowedLiteral.body);
    const id = json<{ id: string }>(allowedLiteral).id;
    assert.equal((await prod.request({ method: 'DELETE', url: `/providers/${id}` })).statusCode, 200);
  });

  it('code exchange: the code, verifier and client secret never reach a forbidden token endpoint', async () => {
    await registerOld(oauthProfile('code-ok'));
    const ok = await callback('code-ok');
    assert.equal(ok.back.searchParams.get('status'), 'success', 'control: the allowed host is reached');
    const targets = everyTarget('/token');
    for (const [i, target] of targets.entries())
      await registerOld(oauthProfile(`code-${i}`), { token_url: target });
    for (const [i, target] of targets.entries()) {
      const { connectionId, back } = await callback(`code-${i}`);
      assert.equal(back.searchParams.get('status'), 'failed', target);
      assert.equal(back.searchParams.get('error'), 'provider_unavailable', target);
      assert.match(await auditDetail(connectionId), REFUSAL, target);
    }
    nothingReached('code exchange');
  });

  it('refresh: the refresh token never reaches a forbidden token endpoint, and counts as not sent', async () => {
    await registerOld(oauthProfile('refresh-ok'));
    const ok = await callback('refresh-ok');
    const before = tokens;
    const control = await prod.request({ method: 'POST', url: `/v1/refresh/${ok.connectionId}` });
    assert.equal(control.statusCode, 200, `control: ${control.body}`);
    assert.equal(tokens, before + 1, 'control: the allowed token endpoint was called');
    for (const [i, target] of everyTarget('/token').entries()) {
      const id = await registerOld(oauthProfile(`refresh-${i}`));
      const { connectionId, back } = await callback(`refresh-${i}`);
      assert.equal(back.searchParams.get('status'), 'success', back.toString());
      // The row an older version accepted: the token URL now points inside the network.
      await rewrite(id, { token_url: target });
      const res = await prod.request({ method: 'POST', url: `/v1/refresh/${connectionId}` });
      assert.equal(res.statusCode, 502, `${target}: ${res.body}`);
      assert.equal(json(res).error, 'provider_unavailable');
      const row = await prod.container.connectionsStore.find(connectionId);
      assert.match(row?.last_error ?? '', REFUSAL, target);
      // Refused before sending: the refresh token was not spent, so no outcome is left unknown.
      assert.equal(row?.refresh_started_at, null, `${target}: the call was recorded as maybe sent`);
      assert.equal(row?.status, 'active');
    }
    nothingReached('refresh');
  });

  it('revocation: a forbidden revocation_endpoint is not called', async () => {
    await registerOld(
      oauthProfile('revoke-ok', { params: { revocation_endpoint: `${allowedBase}/revoke` } }),
    );
    const ok = await callback('revoke-ok');
    const okRes = await prod.request({ method: 'DELETE', url: `/v1/connections/${ok.connectionId}` });
    assert.equal(json(okRes).provider_revoked, true, `control: ${okRes.body}`);
    for (const [i, target] of loopbackForms('/revoke').entries()) {
      await registerOld(oauthProfile(`revoke-${i}`), { params: { revocation_endpoint: target } });
      const { connectionId } = await callback(`revoke-${i}`);
      const res = await prod.request({ method: 'DELETE', url: `/v1/connections/${connectionId}` });
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(json(res).provider_revoked, false, target);
    }
    nothingReached('revocation');
  });

  it('discovery: a forbidden issuer is never fetched', async () => {
    const targets = loopbackForms('/iss/x');
    for (const [i, target] of targets.entries())
      await registerOld(
        oauthProfile(`disc-${i}`, {
          issuer: target,
          enable_discovery: true,
          auth_url: undefined,
          token_url: undefined,
        }),
      );
    forbiddenSeen.length = 0; // the test-mode broker read the documents when they were registered
    for (const [i, target] of targets.entries()) {
      const res = await start(`disc-${i}`);
      assert.equal(res.statusCode, 422, `${target}: ${res.body}`);
      assert.equal(json(res).error, 'discovery_failed');
      assert.match(json<{ message: string }>(res).message, REFUSAL, target);
    }
    nothingReached('discovery');
  });

  it('discovery: a document from the allowed host that names endpoints elsewhere is refused whole', async () => {
    documentTargets.set('clean', {});
    await registerOld(
      oauthProfile('doc-clean', {
        issuer: `${allowedBase}/iss/clean`,
        enable_discovery: true,
        auth_url: undefined,
        token_url: undefined,
      }),
    );
    const clean = await callback('doc-clean');
    assert.equal(clean.back.searchParams.get('status'), 'success', 'control: a clean document works');
    const cases: Record<string, string>[] = [
      ...everyTarget('/token').map((t) => ({ token_endpoint: t })),
      ...everyTarget('/jwks').map((t) => ({ jwks_uri: t })),
      { revocation_endpoint: `https://127.0.0.1:${F}/revoke` },
      { userinfo_endpoint: 'https://169.254.169.254/userinfo' },
      { token_endpoint: `http://127.0.0.2:${A}/token` }, // the allowed host, but not https
    ];
    for (const [i, overrides] of cases.entries()) {
      const name = `points-${i}`;
      documentTargets.set(name, overrides);
      await registerOld(
        oauthProfile(`doc-${i}`, {
          issuer: `${allowedBase}/iss/${name}`,
          enable_discovery: true,
          auth_url: undefined,
          token_url: undefined,
        }),
      );
      const res = await start(`doc-${i}`);
      assert.equal(res.statusCode, 422, `${JSON.stringify(overrides)}: ${res.body}`);
      const message = json<{ message: string }>(res).message;
      const [field] = Object.keys(overrides);
      assert.match(message, new RegExp(`is refused: ${field}: must`), message);
    }
    nothingReached('discovery document');
  });

  it('credential probes: user_info_endpoint and validation URLs, and a redirect from the allowed host', async () => {
    const probe = async (name: string, profile: Record<string, unknown>, old?: Record<string, unknown>) => {
      await registerOld({ name, auth_type: 'api_key', ...profile }, old);
      const started = json<{ authUrl: string }>(await start(name));
      const state = new URL(started.authUrl).searchParams.get('state')!;
      return prod.request({
        method: 'POST',
        url: '/v1/capture-credential',
        key: null,
        payload: { state, credentials: { api_key: 'captured-key-value' } },
      });
    };
    const ok = await probe('probe-ok', { api_base_url: allowedBase, params: { validation: { url: '/me' } } });
    assert.equal(ok.statusCode, 200, `control: ${ok.body}`);
    const targets = [...everyTarget('/me'), `${allowedBase}/api/redirect`];
    for (const [i, target] of targets.entries()) {
      const res = await probe(
        `probe-${i}`,
        { user_info_endpoint: `${allowedBase}/me`, params: { validation: {} } },
        { user_info_endpoint: target },
      );
      assert.equal(res.statusCode, 502, `${target}: ${res.body}`);
      assert.equal(json(res).error, 'credentials_unverifiable');
      const requestId = json<{ request_id: string }>(res).request_id;
      const logged = prod.logs.filter((l) => l.includes(requestId)).join('\n');
      assert.match(logged, REFUSAL, `${target}: the log says why`);
    }
    nothingReached('probe');
  });

  it('the proxy: a forbidden api_base_url, and a redirect from the allowed host, are not followed', async () => {
    const connect = async (name: string, apiBase: string) => {
      await registerOld({ name, auth_type: 'api_key', api_base_url: allowedBase }, { api_base_url: apiBase });
      const started = json<{ authUrl: string; connection_id: string }>(await start(name));
      const state = new URL(started.authUrl).searchParams.get('state')!;
      const captured = await prod.request({
        method: 'POST',
        url: '/v1/capture-credential',
        key: null,
        payload: { state, credentials: { api_key: 'proxied-key-value' } },
      });
      assert.equal(captured.statusCode, 200, captured.body);
      return started.connection_id;
    };
    const call = (route: string, connectionId: string, path = 'data') =>
      prod.request({
        method: 'GET',
        url: `/proxy/${route}/${path}`,
        headers: { 'x-nexus-connection-id': connectionId },
      });
    const okId = await connect('proxy-ok', `${allowedBase}/api`);
    assert.equal((await call('proxy-ok', okId)).statusCode, 200, 'control: the allowed host is reached');
    // The agent is told the address was refused; which address a name resolved to is logged only.
    const refused = (res: Awaited<ReturnType<typeof call>>, target: string) => {
      assert.equal(res.statusCode, 502, `${target}: ${res.body}`);
      const body = json<{ message: string; request_id: string }>(res);
      assert.match(body.message, /^The upstream address is not allowed or not resolvable/, target);
      assert.doesNotMatch(body.message, REFUSAL, target);
      const logged = prod.logs.filter((l) => l.includes(body.request_id)).join('\n');
      assert.match(logged, REFUSAL, `${target}: the log says why`);
    };
    refused(await call('proxy-ok', okId, 'redirect'), 'redirect');
    for (const [i, target] of everyTarget('/api').entries()) {
      const id = await connect(`proxy-${i}`, target);
      refused(await call(`proxy-${i}`, id), target);
    }
    nothingReached('proxy');
  });

  it('webhooks: deliveries to forbidden targets are not sent, with the reason', async () => {
    const hooks: { id: string; url: string }[] = [];
    for (const url of [`${allowedBase}/hook`, ...everyTarget('/hook')]) {
      const res = await dev.request({ method: 'POST', url: '/admin/v1/webhooks', payload: { url } });
      assert.equal(res.statusCode, 201, res.body);
      hooks.push({ id: json<{ id: string }>(res).id, url });
    }
    // An event for every webhook: a connection of the production broker is revoked.
    await registerOld(oauthProfile('hook-events'));
    const { connectionId } = await callback('hook-events');
    await prod.request({ method: 'DELETE', url: `/v1/connections/${connectionId}` });
    await prod.container.webhookDelivery.runOnce();
    for (const [i, hook] of hooks.entries()) {
      const res = await prod.request({ method: 'GET', url: `/admin/v1/webhooks/${hook.id}/deliveries` });
      const deliveries = json<{ deliveries: { status: string; last_error: string | null }[] }>(
        res,
      ).deliveries;
      assert.ok(deliveries.length > 0, `${hook.url}: ${res.body}`);
      if (i === 0) {
        assert.ok(
          deliveries.every((d) => d.status === 'delivered'),
          `control: ${res.body}`,
        );
        continue;
      }
      for (const d of deliveries) {
        assert.equal(d.status, 'failed', hook.url);
        assert.match(d.last_error ?? '', REFUSAL, hook.url);
      }
    }
    nothingReached('webhooks');
  });

  /** A user token of `issuer`, signed with the key both key-set servers publish. */
  const userToken = (issuer: string) =>
    new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', kid: 'user-key' })
      .setIssuer(issuer)
      .setAudience('nexus-obo')
      .setSubject('alice')
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(userKeys.privateKey);

  /** An agent of `broker` asks for an on-behalf-of session with `presented` as the user token. */
  const oboWith = async (broker: TestBroker, presented = 'opaque-user-token') => {
    await broker.request({ method: 'POST', url: '/admin/v1/scopes', payload: { name: 'crm:read' } });
    const agentId = `obo-${Math.random().toString(36).slice(2, 8)}`;
    const { token } = await createAgentWithToken(broker, agentId, {
      allowed_scopes: ['crm:read'],
      allowed_workspaces: ['*'],
    });
    return broker.request({
      method: 'POST',
      url: '/v1/agent-sessions/obo',
      key: null,
      headers: { authorization: `Bearer ${token}` },
      payload: { user_token: presented, scopes: ['crm:read'] },
    });
  };

  it("key sets: a trusted issuer's jwks_uri inside the network is never fetched", async () => {
    const control = await dev.request({
      method: 'POST',
      url: '/admin/v1/trusted-issuers',
      payload: { issuer: 'https://users-ok.example', jwks_uri: `${allowedBase}/jwks`, audience: 'nexus-obo' },
    });
    assert.equal(control.statusCode, 201, control.body);
    const before = allowedSeen.filter((s) => s.url === '/jwks').length;
    await oboWith(prod, await userToken('https://users-ok.example'));
    assert.equal(allowedSeen.filter((s) => s.url === '/jwks').length, before + 1, 'control: keys fetched');
    for (const [i, target] of loopbackForms('/jwks').entries()) {
      const issuer = `https://users-${i}.example`;
      const res = await dev.request({
        method: 'POST',
        url: '/admin/v1/trusted-issuers',
        payload: { issuer, jwks_uri: target, audience: 'nexus-obo' },
      });
      assert.equal(res.statusCode, 201, res.body);
      const obo = await oboWith(prod, await userToken(issuer));
      assert.equal(obo.statusCode, 400, `${target}: ${obo.body}`);
      assert.equal(json<{ details: { reason: string } }>(obo).details.reason, 'keys_unavailable', target);
    }
    nothingReached('key sets');
  });

  it('BACKEND_AUTH_URL: opaque user tokens are not sent to a forbidden callback', async () => {
    const before = allowedSeen.filter((s) => s.url === '/verify').length;
    const control = await oboWith(prod);
    assert.equal(
      allowedSeen.filter((s) => s.url === '/verify').length,
      before + 1,
      `control: ${control.body}`,
    );
    for (const target of [`https://127.0.0.1:${F}/verify`, `https://localhost:${F}/verify`]) {
      const other = await startBroker({
        database: dev.db,
        env: {
          ENCRYPTION_KEY: dev.env.ENCRYPTION_KEY!,
          STATE_KEY: dev.env.STATE_KEY!,
          USER_SECRETS_KEY: dev.env.USER_SECRETS_KEY!,
          NEXUS_ENV: 'production',
          BASE_URL: 'https://nexus.example.com',
          NEXUS_EGRESS_ALLOWED_CIDRS: '127.0.0.2/32',
          BACKEND_AUTH_URL: target,
        },
      });
      try {
        const res = await oboWith(other);
        assert.notEqual(res.statusCode, 200, `${target}: ${res.body}`);
      } finally {
        await other.close();
      }
    }
    nothingReached('BACKEND_AUTH_URL');
  });
});

describe('Vault egress: the configured origin only, never a redirect', () => {
  it('does not follow a redirect, so the token never leaves VAULT_ADDR', async () => {
    const elsewhereSeen: string[] = [];
    const elsewhere = http.createServer((req, res) => {
      elsewhereSeen.push(`${req.method} ${req.url} ${req.headers['x-vault-token'] ?? ''}`);
      res.end('{}');
    });
    const elsewherePort = await listen(elsewhere, '127.0.0.2');
    const vaultSeen: string[] = [];
    const vault = http.createServer((req, res) => {
      vaultSeen.push(`${req.method} ${req.url}`);
      res.writeHead(307, { location: `http://127.0.0.2:${elsewherePort}${req.url}` }).end();
    });
    const vaultPort = await listen(vault, '127.0.0.1');
    const backend = createVaultBackend({
      kind: 'openbao',
      addr: `http://127.0.0.1:${vaultPort}`,
      mount: 'secret',
      kvVersion: 2,
      prefix: 'nexus',
      auth: { method: 'token', token: 'vault-token-never-elsewhere' },
      attempts: 1,
      timeoutMs: 2000,
    });
    try {
      await assert.rejects(backend.get('providers/x/client_secret'), (error: { code?: string }) => {
        assert.match(String(error.code), /^secret_backend_/);
        return true;
      });
      assert.ok(
        vaultSeen.length > 0,
        'the configured address (loopback, operator infrastructure) is reached',
      );
      assert.deepEqual(elsewhereSeen, [], 'the redirect was not followed');
    } finally {
      await backend.close();
      vault.close();
      elsewhere.close();
    }
  });
});
