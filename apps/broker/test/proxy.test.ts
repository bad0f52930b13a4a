/**
 * The credential proxy, in the broker (`/proxy/<route>/…`) and as `nexus proxy` in its own process,
 * against real upstreams on loopback: the SDK testbed's verifier (it checks each strategy's credential
 * independently: userinfo at the real OpenID provider, HMAC and SigV4 recomputed), an echo server
 * that reports what reached it, and a server on 127.0.0.2, outside the allowed range, that must never
 * be reached.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { startUpstream } from '../../../sdks/testbed/upstream.ts';
import { freePort, killAllChildren, spawnCli } from './cli-helpers.ts';
import { createAgentWithToken, json } from './harness.ts';
import { clients, RETURN, Scenario } from './oauth-scenario.ts';

after(killAllChildren);

type Kind = 'oauth2' | 'header' | 'query_param' | 'basic_auth' | 'hmac_payload' | 'aws_sigv4';
const KINDS: Kind[] = ['oauth2', 'header', 'query_param', 'basic_auth', 'hmac_payload', 'aws_sigv4'];
const STRATEGY: Record<Exclude<Kind, 'oauth2'>, { auth_type: string; config: Record<string, string> }> = {
  header: { auth_type: 'header', config: { header_name: 'X-Api-Key', credential_field: 'api_key' } },
  query_param: { auth_type: 'query_param', config: { param_name: 'api_key', credential_field: 'api_key' } },
  basic_auth: { auth_type: 'basic_auth', config: {} },
  hmac_payload: {
    auth_type: 'hmac_payload',
    config: { header_name: 'X-Signature', secret_field: 'api_secret', algo: 'sha256', encoding: 'hex' },
  },
  aws_sigv4: { auth_type: 'aws_sigv4', config: { region: 'eu-west-1', service: 'testbed' } },
};
const CREDENTIALS: Record<Exclude<Kind, 'oauth2'>, () => Record<string, string>> = {
  header: () => ({ api_key: `k-${randomBytes(8).toString('hex')}` }),
  query_param: () => ({ api_key: `q-${randomBytes(8).toString('hex')}` }),
  basic_auth: () => ({ username: 'alice', password: `pw-${randomBytes(8).toString('hex')}` }),
  hmac_payload: () => ({ api_secret: `hs-${randomBytes(8).toString('hex')}` }),
  aws_sigv4: () => ({
    access_key: `AKIA${randomBytes(8).toString('hex').toUpperCase()}`,
    secret_key: randomBytes(30).toString('base64'),
    session_token: `st-${randomBytes(6).toString('hex')}`,
  }),
};

const listen = (server: Server, host = '127.0.0.1') =>
  new Promise<string>((done) =>
    server.listen(0, host, () => done(`http://${host}:${(server.address() as AddressInfo).port}`)),
  );

/** Reports what reached it; streams big bodies both ways; holds SSE events until the test has read the previous one. */
function echoServer() {
  const seen: { url: string; headers: IncomingMessage['headers'] }[] = [];
  let sseGate: (() => void) | undefined;
  /** Resolves when the answer to `/late-stream` is closed (by the proxy, since it never ends). */
  let lateClosed: (() => void) | undefined;
  const lateStreamClosed = new Promise<void>((done) => (lateClosed = done));
  const sseNext = () => new Promise<void>((done) => (sseGate = done));
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x');
    seen.push({ url: req.url ?? '', headers: req.headers });
    if (url.pathname.endsWith('/download')) {
      const total = Number(url.searchParams.get('mb')) * 1024 * 1024;
      const chunk = Buffer.alloc(64 * 1024, 7);
      let sent = 0;
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(total) });
      const stream = new Readable({
        read() {
          if (sent >= total) return this.push(null);
          sent += chunk.length;
          this.push(chunk);
        },
      });
      stream.pipe(res);
      return;
    }
    if (url.pathname.endsWith('/sse')) {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.write('data: one\n\n');
      void sseNext().then(() => {
        res.write('data: two\n\n');
        res.end();
      });
      return;
    }
    if (url.pathname.endsWith('/slow')) return; // never answers
    if (url.pathname.endsWith('/late-stream')) {
      // Answers after 300 ms, then streams until the other side goes away.
      res.once('close', () => lateClosed?.());
      setTimeout(() => {
        if (res.destroyed) return;
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        const tick = setInterval(() => (res.destroyed ? clearInterval(tick) : res.write('x')), 20);
      }, 300);
      return;
    }
    if (url.pathname.endsWith('/cut')) {
      // Promises 1 MiB, sends 64 KiB, then drops the connection.
      res.writeHead(200, {
        'content-type': 'application/octet-stream',
        'content-length': String(1024 * 1024),
      });
      res.write(Buffer.alloc(64 * 1024, 1), () => res.destroy());
      return;
    }
    if (url.pathname.endsWith('/redirect-private')) {
      res.writeHead(302, { location: String(url.searchParams.get('to')) }).end();
      return;
    }
    if (url.pathname.endsWith('/redirect-outside')) {
      // Same origin, outside the route's base path.
      res.writeHead(302, { location: '/outside/admin' }).end();
      return;
    }
    if (url.pathname.endsWith('/slash')) {
      // Like APPEND_SLASH servers: the query (credential included) comes back in the Location.
      req.resume();
      res.writeHead(308, { location: `${url.pathname}/${url.search}`, 'set-cookie': 'upstream=1' }).end();
      return;
    }
    const hash = createHash('sha256');
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      hash.update(chunk);
    });
    req.on('end', () => {
      res.writeHead(200, {
        'content-type': 'application/json',
        connection: 'close, x-hop',
        'x-hop': 'drop-me',
        'x-upstream': 'yes',
        'set-cookie': 'upstream-session=1; Path=/',
        'access-control-allow-origin': '*',
      });
      res.end(JSON.stringify({ url: req.url, headers: req.headers, size, sha256: hash.digest('hex') }));
    });
  });
  return { server, seen, releaseSse: () => sseGate?.(), lateStreamClosed };
}

describe('credential proxy', { timeout: 240_000 }, () => {
  const s = new Scenario();
  const issued: Record<Kind, Record<string, string>[]> = {
    oauth2: [],
    header: [],
    query_param: [],
    basic_auth: [],
    hmac_payload: [],
    aws_sigv4: [],
  };
  const connections = {} as Record<Kind | 'echo' | 'private' | 'echo-q' | 'echo-crlf', string>;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  const echo = echoServer();
  let echoUrl: string;
  const privateHits: string[] = [];
  const privateServer = createServer((req, res) => {
    privateHits.push(req.url ?? '');
    res.end('private');
  });
  let privateUrl: string;
  let brokerUrl: string;
  let agent: { token: string };
  let stranger: { token: string };

  const proxy = (path: string, init: RequestInit & { connection?: string; key?: string | null } = {}) => {
    const headers = new Headers(init.headers);
    if (init.connection) headers.set('x-nexus-connection-id', init.connection);
    if (init.key !== null && !headers.has('authorization'))
      headers.set('x-api-key', init.key ?? s.broker.adminKey);
    return fetch(`${brokerUrl}/proxy${path}`, {
      ...init,
      headers,
      ...(init.body ? { duplex: 'half' } : {}),
    } as RequestInit);
  };

  async function capture(provider: string, credentials: Record<string, string>, workspace = 'user-1') {
    const started = json<{ state: string; connection_id: string }>(
      await s.call(
        {
          method: 'POST',
          url: '/v1/request-connection',
          payload: { user_id: workspace, provider_name: provider, return_url: RETURN },
        },
        200,
      ),
    );
    await s.call(
      {
        method: 'POST',
        url: '/v1/capture-credential',
        key: null,
        payload: { state: started.state, credentials },
      },
      200,
    );
    return started.connection_id;
  }

  const agentToken = async (agentId: string, grants: Record<string, unknown>) => {
    const agent = await createAgentWithToken(s.broker, agentId, grants);
    return { token: agent.token, secret: agent.secret };
  };

  before(async () => {
    echoUrl = await listen(echo.server);
    privateUrl = await listen(privateServer, '127.0.0.2');
    await s.start({
      env: {
        NEXUS_EGRESS_ALLOWED_CIDRS: '127.0.0.1/32',
        NEXUS_PROXY_TIMEOUT_SECONDS: '2',
        NEXUS_PROXY_BODY_LIMIT_BYTES: String(256 * 1024 * 1024),
        NEXUS_PROXY_ROUTES: `private=${privateUrl}`,
      },
    });
    upstream = await startUpstream({ idp: s.idp, issued });
    const client = clients[0]!;
    await s.call(
      {
        method: 'POST',
        url: '/providers',
        payload: {
          profile: {
            name: 'tb-oauth2',
            client_id: client.client_id,
            client_secret: client.client_secret,
            issuer: s.idp.issuer,
            enable_discovery: true,
            scopes: ['openid', 'email'],
            api_base_url: `${upstream.url}/oauth2`,
          },
        },
      },
      201,
    );
    for (const kind of KINDS.filter((k) => k !== 'oauth2') as Exclude<Kind, 'oauth2'>[]) {
      const { auth_type, config } = STRATEGY[kind];
      await s.call(
        {
          method: 'POST',
          url: '/providers',
          payload: {
            profile: {
              name: `tb-${kind.replace('_', '-')}`,
              auth_type,
              api_base_url: `${upstream.url}/${kind}`,
              params: { auth_strategy: { type: kind, config } },
            },
          },
        },
        201,
      );
      const credentials = CREDENTIALS[kind]();
      issued[kind].push(credentials);
      connections[kind] = await capture(`tb-${kind.replace('_', '-')}`, credentials);
    }
    connections.oauth2 = await s.connect('tb-oauth2');
    for (const [name, base] of [
      ['echo', `${echoUrl}/base`],
      ['private', undefined],
      ['echo-crlf', `${echoUrl}/base`],
    ] as const) {
      await s.call(
        {
          method: 'POST',
          url: '/providers',
          payload: {
            profile: {
              name,
              auth_type: 'header',
              ...(base ? { api_base_url: base } : {}),
              params: {
                auth_strategy: {
                  type: 'header',
                  config: { header_name: 'X-Api-Key', credential_field: 'api_key' },
                },
              },
            },
          },
        },
        201,
      );
      connections[name] = await capture(name, {
        api_key:
          name === 'echo-crlf'
            ? // Capture refuses control characters (CR, LF…); a character beyond Latin-1 passes it and
              // still cannot travel in an HTTP header.
              'secret-with-€-sign'
            : `secret-${name}-${randomBytes(6).toString('hex')}`,
      });
    }
    await s.call(
      {
        method: 'POST',
        url: '/providers',
        payload: {
          profile: {
            name: 'echo-q',
            auth_type: 'query_param',
            api_base_url: `${echoUrl}/base`,
            params: { auth_strategy: { type: 'query_param', config: { param_name: 'api_key' } } },
          },
        },
      },
      201,
    );
    connections['echo-q'] = await capture('echo-q', { api_key: 'secret-query-key-123' });
    agent = await agentToken('proxy-user', { allowed_providers: ['*'], allowed_workspaces: ['user-1'] });
    stranger = await agentToken('stranger', {
      allowed_providers: ['*'],
      allowed_workspaces: ['someone-else'],
    });
    brokerUrl = await s.broker.app.listen({ port: 0, host: '127.0.0.1' });
  });
  after(async () => {
    await upstream?.close();
    echo.server.closeAllConnections();
    echo.server.close();
    privateServer.close();
    await s.close();
  });

  it('applies each of the six strategies; the upstream checks the credential and the answer comes back', async () => {
    for (const kind of KINDS) {
      const route = kind === 'oauth2' ? 'tb-oauth2' : `tb-${kind.replace('_', '-')}`;
      const body = JSON.stringify({ kind, n: 1 });
      const res = await proxy(`/${route}/things?x=1`, {
        method: 'POST',
        connection: connections[kind],
        headers: { 'content-type': 'application/json', authorization: `Bearer ${agent.token}` },
        body,
      });
      const answer = (await res.json()) as {
        ok: boolean;
        strategy: string;
        path: string;
        body_sha256: string;
      };
      assert.equal(res.status, 200, `${kind}: ${JSON.stringify(answer)}`);
      assert.equal(answer.strategy, kind);
      assert.equal(answer.path, `/${kind}/things`);
      assert.equal(
        answer.body_sha256,
        createHash('sha256').update(body).digest('hex'),
        'the body arrived unchanged',
      );
    }
    const stats = upstream.stats() as Record<string, { accepted: number; rejected: number }>;
    for (const kind of KINDS) assert.deepEqual(stats[kind], { accepted: 1, rejected: 0 }, kind);
  });

  it('also finds the connection from the user and the route (X-Nexus-User-ID), and takes the route from X-Nexus-Provider', async () => {
    const byUser = await proxy('/tb-header/a', { headers: { 'x-nexus-user-id': 'user-1' } });
    assert.equal(byUser.status, 200, await byUser.clone().text());
    const byHeader = await proxy('/a', {
      connection: connections.header,
      headers: { 'x-nexus-provider': 'tb-header' },
    });
    assert.equal(byHeader.status, 200, await byHeader.clone().text());
  });

  it('refuses unauthenticated callers, and callers not allowed the connection get 404 like the token route', async () => {
    const anonymous = await proxy('/tb-header/a', { connection: connections.header, key: null });
    assert.equal(anonymous.status, 401);
    const other = await proxy('/tb-header/a', {
      connection: connections.header,
      headers: { authorization: `Bearer ${stranger.token}` },
    });
    assert.equal(other.status, 404);
    assert.equal(((await other.json()) as { error: string }).error, 'connection_not_found');
    const mismatch = await proxy('/tb-query-param/a', { connection: connections.header });
    assert.equal(mismatch.status, 400);
    assert.equal(
      ((await mismatch.json()) as { error: string }).error,
      'route_mismatch',
      "a credential never goes to another provider's route",
    );
    const unknown = await proxy('/no-such-route/a', { connection: connections.header });
    assert.equal(unknown.status, 404);
    assert.equal(((await unknown.json()) as { error: string }).error, 'unknown_route');
    const traversal = await proxy('/echo/..%2f..%2fother', { connection: connections.echo });
    assert.equal(traversal.status, 400);
    assert.equal(upstream.stats().header?.rejected ?? 0, 0, 'nothing refused reached the upstream');
  });

  it('strips hop-by-hop and Proxy-* headers, the caller credentials and every X-Nexus header before forwarding', async () => {
    // fetch() may not send Connection; a raw request can.
    const answer = await new Promise<{ status: number; headers: IncomingMessage['headers']; body: string }>(
      (done, fail) => {
        const req = request(`${brokerUrl}/proxy/echo/inspect`, {
          headers: {
            'x-api-key': s.broker.adminKey,
            'x-nexus-connection-id': connections.echo,
            authorization: `Bearer ${agent.token}`,
            cookie: 'session=abc',
            connection: 'keep-alive, x-custom-hop',
            'x-custom-hop': 'drop',
            'x-nexus-trace': 'drop',
            'proxy-foo': 'drop',
            'x-keep': 'kept',
          },
        });
        req.on('response', (res) => {
          let body = '';
          res.on('data', (c: Buffer) => {
            body += c.toString();
          });
          res.on('end', () => done({ status: res.statusCode ?? 0, headers: res.headers, body }));
        });
        req.on('error', fail);
        req.end();
      },
    );
    assert.equal(answer.status, 200, answer.body);
    const seen = JSON.parse(answer.body) as { headers: Record<string, string> };
    const names = Object.keys(seen.headers);
    for (const name of [
      'authorization',
      'cookie',
      'x-custom-hop',
      'x-nexus-trace',
      'x-nexus-connection-id',
      'proxy-foo',
    ])
      assert.ok(!names.includes(name), `${name} was forwarded`);
    assert.match(
      seen.headers['x-api-key']!,
      /^secret-echo-/,
      'X-Api-Key is the upstream credential, not the caller key',
    );
    const res = { headers: new Headers(answer.headers as Record<string, string>) };
    assert.equal(seen.headers['x-keep'], 'kept');
    assert.equal(res.headers.get('x-upstream'), 'yes');
    assert.equal(
      res.headers.get('x-hop'),
      null,
      'a header the upstream listed in Connection is not passed back',
    );
  });

  it('refuses a route at a private address and a redirect to one; neither is reached', async () => {
    const direct = await proxy('/private/x', { connection: connections.private });
    assert.equal(direct.status, 502);
    assert.equal(((await direct.json()) as { error: string }).error, 'upstream_error');
    const redirected = await proxy(
      `/echo/redirect-private?to=${encodeURIComponent(`${privateUrl}/stolen`)}`,
      {
        connection: connections.echo,
      },
    );
    assert.equal(redirected.status, 502);
    assert.deepEqual(privateHits, [], 'the private server saw nothing');
  });

  it('refreshes an OAuth token once when the upstream answers 401 and retries; a second 401 comes back unchanged', async () => {
    const before = s.idp.counts.refresh_token;
    upstream.rejectNext('oauth2', 1);
    const retried = await proxy('/tb-oauth2/me', { connection: connections.oauth2 });
    assert.equal(retried.status, 200, await retried.clone().text());
    assert.equal(s.idp.counts.refresh_token, before + 1, 'one refresh');

    s.clock += 31_000; // past the broker's floor between forced refreshes (30 s), so the next one reaches the provider
    upstream.rejectNext('oauth2', 2);
    const refused = await proxy('/tb-oauth2/me', { connection: connections.oauth2 });
    assert.equal(refused.status, 401, 'the upstream answer, after exactly one retry');
    assert.equal(((await refused.json()) as { error: string }).error, 'invalid_credential');
    assert.equal(s.idp.counts.refresh_token, before + 2);
  });

  it('counts a refreshed credential that no header can carry as injection_failed', async () => {
    s.clock += 31_000; // past the floor between forced refreshes
    upstream.rejectNext('oauth2', 1);
    s.idp.setTokenResponseRewrite((body) => ({ ...body, access_token: 'refreshed\r\nX-Injected: 1' }));
    try {
      const res = await proxy('/tb-oauth2/me', { connection: connections.oauth2 });
      assert.equal(res.status, 502);
      assert.equal(((await res.json()) as { error: string }).error, 'auth_injection_failed');
    } finally {
      s.idp.setTokenResponseRewrite(undefined);
    }
    const metrics = (await s.call({ method: 'GET', url: '/metrics' }, 200)).body;
    const counted = metrics
      .split('\n')
      .filter((l) => l.startsWith('nexus_proxy_requests_total{route="tb-oauth2"'));
    assert.ok(
      counted.includes(
        'nexus_proxy_requests_total{route="tb-oauth2",status="502",outcome="injection_failed"} 1',
      ),
      counted.join('\n'),
    );
    // A usable token again for the tests that follow.
    s.clock += 31_000;
    await s.call({ method: 'POST', url: `/v1/refresh/${connections.oauth2}` }, 200);
  });

  it('passes attention_required (409) through with its body', async () => {
    // Its own account at the provider and its own workspace, so other connections keep their grants.
    const started = json<{ authUrl: string; connection_id: string }>(
      await s.call(
        {
          method: 'POST',
          url: '/v1/request-connection',
          payload: { user_id: 'user-doomed', provider_name: 'tb-oauth2', return_url: RETURN },
        },
        200,
      ),
    );
    const callback = await s.idp.consent(started.authUrl, 'doomed-account');
    await s.call({ method: 'GET', url: callback.pathname + callback.search, key: null }, 302);
    const doomed = started.connection_id;
    await s.idp.revokeAllGrants('doomed-account');
    s.clock += 5_000;
    upstream.rejectNext('oauth2', 1);
    const res = await proxy('/tb-oauth2/me', { connection: doomed });
    assert.equal(res.status, 409);
    const body = (await res.json()) as { error: string; details: { connection_id: string } };
    assert.equal(body.error, 'attention_required');
    assert.equal(body.details.connection_id, doomed);
  });

  it('never hands a credential back: Location rewritten to the proxy path and stripped, upstream cookies and CORS dropped', async () => {
    const res = await proxy('/echo-q/items/slash?x=1', {
      method: 'POST',
      connection: connections['echo-q'],
      body: 'not replayable: streamed',
      redirect: 'manual',
    });
    assert.equal(res.status, 308);
    const location = res.headers.get('location') ?? '';
    assert.equal(location, '/proxy/echo-q/items/slash/?x=1', 'the proxy path, without the credential');
    assert.equal(res.headers.get('set-cookie'), null, 'an upstream cookie would land on the broker origin');
    const inspected = await proxy('/echo/inspect', { connection: connections.echo });
    assert.equal(inspected.headers.get('set-cookie'), null);
    assert.equal(inspected.headers.get('access-control-allow-origin'), null);
  });

  it('follows a same-origin redirect out of the base path without the credential', async () => {
    const before = echo.seen.length;
    const res = await proxy('/echo/redirect-outside', { connection: connections.echo });
    await res.arrayBuffer();
    const outside = echo.seen.slice(before).find((r) => r.url.startsWith('/outside/'));
    assert.ok(outside, 'the redirect was followed');
    assert.equal(outside.headers['x-api-key'], undefined, 'no credential outside the route base');
  });

  it('answers 502 auth_injection_failed for a credential no header can carry, never 500', async () => {
    const res = await proxy('/echo-crlf/x', { connection: connections['echo-crlf'] });
    assert.equal(res.status, 502);
    assert.equal(((await res.json()) as { error: string }).error, 'auth_injection_failed');
  });

  it('streams 200 MB up and down without holding them in memory', async () => {
    // Four times the 50 MB the issue names: a proxy that held a body whole would grow by at least
    // that much, while streaming stays well under half of it (sockets and stream buffers included).
    const size = 200 * 1024 * 1024;
    // Live memory only: a full collection before each sample, so garbage not yet collected does not count.
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    gc();
    const peak = { before: process.memoryUsage().arrayBuffers + process.memoryUsage().heapUsed, max: 0 };
    const sampler = setInterval(() => {
      gc();
      const m = process.memoryUsage();
      peak.max = Math.max(peak.max, m.arrayBuffers + m.heapUsed);
    }, 100);
    try {
      const chunk = Buffer.alloc(256 * 1024, 3);
      let sent = 0;
      const hash = createHash('sha256');
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent >= size) return controller.close();
          sent += chunk.length;
          hash.update(chunk);
          controller.enqueue(chunk);
        },
      });
      const up = await proxy('/echo/upload', { method: 'PUT', connection: connections.echo, body });
      assert.equal(up.status, 200);
      const seen = (await up.json()) as { size: number; sha256: string };
      assert.equal(seen.size, size);
      assert.equal(seen.sha256, hash.digest('hex'));

      const down = await proxy('/echo/download?mb=200', { connection: connections.echo });
      assert.equal(down.status, 200);
      let received = 0;
      for await (const part of down.body as unknown as AsyncIterable<Uint8Array>) received += part.length;
      assert.equal(received, size);
    } finally {
      clearInterval(sampler);
    }
    const grew = peak.max - peak.before;
    assert.ok(
      grew < 100 * 1024 * 1024,
      `memory grew by ${Math.round(grew / 1048576)} MB while 2 × 200 MB passed`,
    );
  });

  it('passes server-sent events through one by one', async () => {
    const res = await proxy('/echo/sse', { connection: connections.echo });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/event-stream');
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let text = '';
    while (!text.includes('data: one\n\n')) text += decoder.decode((await reader.read()).value);
    // The upstream sends the second event only now: a buffering proxy would never have delivered the first.
    echo.releaseSse();
    while (!text.includes('data: two\n\n')) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value);
    }
    assert.equal(text, 'data: one\n\ndata: two\n\n');
  });

  it('answers 413 over the body limit, 504 when the upstream is silent', async () => {
    const big = await proxy('/tb-hmac-payload/x', {
      method: 'POST',
      connection: connections.hmac_payload,
      body: Buffer.alloc(257 * 1024 * 1024, 1),
    });
    assert.equal(big.status, 413);
    const slow = await proxy('/echo/slow', { connection: connections.echo });
    assert.equal(slow.status, 504);
    assert.equal(((await slow.json()) as { error: string }).error, 'upstream_timeout');
  });

  it('audits each proxied call (route, connection, agent, status; no payload) and counts it in metrics', async () => {
    const marker = `marker-${randomBytes(6).toString('hex')}`;
    const res = await proxy(`/tb-header/audited?q=${marker}`, {
      connection: connections.header,
      headers: { authorization: `Bearer ${agent.token}` },
      body: marker,
      method: 'POST',
    });
    assert.equal(res.status, 200);
    const audit = json<{
      events: { action: string; actor: string; resource_id: string; details: Record<string, unknown> }[];
    }>(await s.call({ method: 'GET', url: '/audit?event_type=proxy.request&limit=5' }, 200));
    const event = audit.events[0]!;
    const reads = json<{ events: { resource_id: string }[] }>(
      await s.call({ method: 'GET', url: '/audit?event_type=connection.token_read&limit=200' }, 200),
    );
    assert.ok(
      !reads.events.some((e) => e.resource_id === connections.header),
      'a proxied call is audited once (proxy.request), not also as a token read',
    );
    assert.equal(event.actor, 'agent:proxy-user');
    assert.equal(event.resource_id, connections.header);
    assert.deepEqual(event.details, { route: 'tb-header', method: 'POST', status: 200, outcome: 'ok' });
    const everything = JSON.stringify(audit);
    assert.ok(!everything.includes(marker), 'no payload or query in the audit log');
    const metrics = (await s.call({ method: 'GET', url: '/metrics' }, 200)).body;
    assert.match(metrics, /nexus_proxy_requests_total\{route="tb-header",status="200",outcome="ok"\} \d+/);
    assert.match(metrics, /nexus_proxy_upstream_seconds_count\{route="tb-header"\} \d+/);
    assert.match(
      metrics,
      /nexus_proxy_requests_total\{route="unknown",status="404",outcome="unknown_route"\} \d+/,
    );
    for (const line of s.broker.logs)
      assert.ok(!line.includes(marker), `a log line holds the query or body: ${line}`);
  });

  it('`nexus proxy` in its own process: the caller is checked with the broker, the token fetched with the proxy agent credential', async () => {
    const sidecar = await agentToken('sidecar', { allowed_providers: ['*'], allowed_workspaces: ['*'] });
    const port = await freePort();
    const child = spawnCli(['proxy'], {
      PATH: process.env.PATH ?? '',
      NEXUS_URL: brokerUrl,
      NEXUS_CLIENT_ID: 'sidecar',
      NEXUS_CLIENT_SECRET: sidecar.secret,
      NEXUS_ROUTES: `tb-header=${upstream.url}/header,tb-oauth2=${upstream.url}/oauth2,private=${privateUrl},echo=${echoUrl}/base`,
      NEXUS_EGRESS_ALLOWED_CIDRS: '127.0.0.1/32',
      PROXY_PORT: String(port),
      TOKEN_CACHE_TTL: '30',
      LOG_LEVEL: 'info',
    });
    await child.waitFor('stdout', /nexus proxy ready/, 15_000);
    const base = `http://127.0.0.1:${port}`;
    const call = (path: string, headers: Record<string, string>) => fetch(`${base}${path}`, { headers });

    const ok = await call('/tb-header/via-sidecar', {
      authorization: `Bearer ${agent.token}`,
      'x-nexus-connection-id': connections.header,
    });
    assert.equal(ok.status, 200, await ok.clone().text());
    const anonymous = await call('/tb-header/x', { 'x-nexus-connection-id': connections.header });
    assert.equal(anonymous.status, 401);
    const other = await call('/tb-header/x', {
      authorization: `Bearer ${stranger.token}`,
      'x-nexus-connection-id': connections.header,
    });
    assert.equal(other.status, 404, 'knowing a connection id is not enough');
    const refused = await call('/private/x', {
      'x-api-key': s.broker.adminKey,
      'x-nexus-connection-id': connections.private,
    });
    assert.equal(refused.status, 502);

    // Answers stream through whole; an upstream that drops the connection mid-answer cuts the
    // caller's answer (never a complete-looking one), and the proxy goes on serving.
    const admin = { 'x-api-key': s.broker.adminKey, 'x-nexus-connection-id': connections.echo };
    const download = await call('/echo/download?mb=8', admin);
    assert.equal(download.status, 200);
    assert.equal((await download.arrayBuffer()).byteLength, 8 * 1024 * 1024);
    const cut = await call('/echo/cut', admin);
    assert.equal(cut.status, 200);
    await assert.rejects(cut.arrayBuffer(), 'the cut answer fails to read to its end');
    const after = await call('/echo/after-cut', admin);
    assert.equal(after.status, 200, await after.clone().text());
    // A caller that leaves before the upstream answers: the upstream's endless answer is stopped.
    await assert.rejects(
      fetch(`${base}/echo/late-stream`, { headers: admin, signal: AbortSignal.timeout(100) }),
    );
    await Promise.race([
      echo.lateStreamClosed,
      new Promise((_, fail) =>
        setTimeout(() => fail(new Error('the upstream answer was never stopped')), 5_000),
      ),
    ]);

    const before = s.idp.counts.refresh_token;
    s.clock += 31_000; // past the floor between forced refreshes of one connection
    upstream.rejectNext('oauth2', 1);
    const retried = await call('/tb-oauth2/me', {
      'x-api-key': s.broker.adminKey,
      'x-nexus-connection-id': connections.oauth2,
    });
    assert.equal(retried.status, 200, await retried.clone().text());
    assert.equal(s.idp.counts.refresh_token, before + 1);

    const audit = json<{ events: { actor: string }[] }>(
      await s.call({ method: 'GET', url: `/audit?event_type=connection.token_read&limit=20` }, 200),
    );
    assert.ok(
      audit.events.some((e) => e.actor === 'agent:sidecar'),
      'the sidecar read the token under its own identity',
    );
    assert.ok(
      !child.stdout().includes(agent.token) && !child.stdout().includes(sidecar.secret),
      'no credential in its log',
    );
    assert.deepEqual(privateHits, []);
  });
});
