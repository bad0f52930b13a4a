/**
 * Issue #22, part 1: Nexus as an MCP server over Streamable HTTP (`/mcp`), driven by the official
 * SDK client. Every tool is called; the grants of two agents are enforced as REST enforces them
 * (outside the grant is "not found"); every call is audited with the agent, the user it acts for
 * and the tool; no result carries a credential.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { capture } from './capture-helpers.ts';
import { DIALECT } from './harness.ts';
import {
  CAPTURE_RETURN_URL,
  call,
  httpClient,
  type McpWorld,
  startMcpWorld,
  toolAudit,
} from './mcp-fixture.ts';

describe(`MCP over Streamable HTTP (${DIALECT})`, () => {
  let w: McpWorld;
  let a: Awaited<ReturnType<typeof httpClient>>;
  let b: Awaited<ReturnType<typeof httpClient>>;
  before(async () => {
    w = await startMcpWorld();
    a = await httpClient(w, w.agents.a.token, { user: 'user-1' });
    b = await httpClient(w, w.agents.b.token, { user: 'user-2' });
  });
  after(async () => {
    await a?.client.close();
    await b?.client.close();
    await w?.close();
  });

  it('lists the five tools; get_secret says it returns a secret value', async () => {
    const { tools } = await a.client.listTools();
    assert.deepEqual(tools.map((t) => t.name).sort(), [
      'connect',
      'connection_status',
      'get_secret',
      'http_request',
      'list_connections',
    ]);
    const getSecret = tools.find((t) => t.name === 'get_secret')!;
    assert.match(getSecret.description ?? '', /SECRET VALUE/);
  });

  it("list_connections shows the agent's own users' connections only", async () => {
    const mine = await call(a.client, 'list_connections');
    assert.equal(mine.isError, false, mine.text);
    assert.deepEqual(
      mine.body.connections.map((c: { connection_id: string; status: string; user_id: string }) => [
        c.connection_id,
        c.user_id,
        c.status,
      ]),
      [[w.connections['user-1'], 'user-1', 'active']],
    );
    // Naming a user outside the grant shows nothing, as if there were no connection.
    const other = await call(a.client, 'list_connections', { user_id: 'user-2' });
    assert.deepEqual(other.body.connections, []);
    const theirs = await call(b.client, 'list_connections');
    assert.deepEqual(
      theirs.body.connections.map((c: { connection_id: string }) => c.connection_id),
      [w.connections['user-2']],
    );
  });

  it("connection_status answers within the grant; another user's connection is not found", async () => {
    const own = await call(a.client, 'connection_status', { connection_id: w.connections['user-1'] });
    assert.deepEqual(own.body, { connection_id: w.connections['user-1'], status: 'active' });
    const foreign = await call(a.client, 'connection_status', { connection_id: w.connections['user-2'] });
    assert.equal(foreign.isError, true);
    assert.equal(foreign.body.error, 'connection_not_found');
  });

  it('http_request goes through the proxy with the credential, which never reaches the result', async () => {
    const before = w.upstream.seen.length;
    const res = await call(a.client, 'http_request', {
      provider: 'echo',
      path: '/things?limit=2',
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        Authorization: 'Bearer smuggled',
        'X-Nexus-User-ID': 'user-2',
      },
      body: '{"name":"x"}',
    });
    assert.equal(res.isError, false, res.text);
    assert.equal(res.body.status, 200, res.text);
    assert.deepEqual(JSON.parse(res.body.body), { reached: '/api/things?limit=2', method: 'POST', size: 12 });
    assert.deepEqual(res.body.refused_headers, ['authorization', 'x-nexus-user-id']);
    assert.equal(res.body.headers['set-cookie'], undefined);
    const reached = w.upstream.seen.slice(before);
    assert.equal(reached.length, 1);
    // The user-1 credential (not user-2's, which the smuggled header asked for) reached the upstream…
    assert.equal(reached[0]!.headers['x-api-key'], w.apiKeys['user-1']);
    assert.equal(reached[0]!.headers.authorization, undefined);
    // …and neither it nor the agent's token is in the result.
    assert.ok(!res.text.includes(w.apiKeys['user-1']));
    assert.ok(!res.text.includes(w.agents.a.token));
  });

  it("http_request on another agent's connection is not found, and nothing is sent upstream", async () => {
    const before = w.upstream.seen.length;
    const res = await call(b.client, 'http_request', {
      provider: 'echo',
      path: '/x',
      connection_id: w.connections['user-1'],
    });
    assert.equal(res.body.status, 404);
    assert.equal(JSON.parse(res.body.body).error, 'connection_not_found');
    for (const path of ['/x/../../../admin/v1/agents', '/%2E%2e/admin', '/./x']) {
      const climbing = await call(a.client, 'http_request', { provider: 'echo', path });
      assert.equal(climbing.isError, true, path);
      assert.match(climbing.text, /no \. or \.\. segments/);
    }
    const unknown = await call(a.client, 'http_request', { provider: 'nowhere', path: '/x' });
    assert.equal(JSON.parse(unknown.body.body).error, 'unknown_route');
    assert.equal(w.upstream.seen.length, before);
  });

  it('http_request cannot leave the proxy: a provider of `.` or `..` is refused, and no credential comes back', async () => {
    // Security review (2026-12-07): `provider: ".."` made the in-process request
    // `/proxy/../v1/token/<id>`, which URL normalisation turned into `/v1/token/<id>`: the agent's
    // token read the raw credential, past the proxy's allow-list, audit and a pinned caller's user.
    const before = w.upstream.seen.length;
    for (const provider of ['..', '.', 'Echo', 'echo.']) {
      const res = await call(a.client, 'http_request', {
        provider,
        path: `/v1/token/${w.connections['user-1']}`,
      });
      assert.equal(res.isError, true, provider);
      assert.match(res.text, /Input validation error.*a route name: lower-case letters, digits and dashes/);
      assert.ok(!res.text.includes(w.apiKeys['user-1']), 'no credential in the result');
    }
    assert.equal(w.upstream.seen.length, before, 'nothing sent upstream');
    // The in-process call itself refuses a URL that normalisation would move out of the route.
    const { inProcessProxy } = await import('../src/modules/mcp/mcp.in-process.ts');
    const proxy = inProcessProxy(w.broker.app);
    const caller = { proxyToken: async () => w.agents.a.token, ip: '127.0.0.1' };
    await assert.rejects(
      proxy(
        caller as never,
        { route: '..', path: `/v1/token/${w.connections['user-1']}`, method: 'GET', headers: {} } as never,
        {
          maxBytes: 1024,
          signal: new AbortController().signal,
        },
      ),
      (error: Error & { code?: string }) => error.code === 'invalid_request',
    );
  });

  it('http_request refuses header values with control or non-Latin-1 characters as invalid arguments', async () => {
    // Security review, MCP defect 5: they reached the proxy and came back as a 502 "the credential
    // could not be applied", logged as a broker failure.
    const before = w.upstream.seen.length;
    const errorsBefore = w.broker.logs.filter((l) => l.includes('"level":50')).length;
    for (const value of ['a\r\nx-injected: 1', 'bell\u0007', 'euro €', 'c1 \u0085']) {
      const res = await call(a.client, 'http_request', {
        provider: 'echo',
        path: '/x',
        headers: { 'x-a': value },
      });
      assert.equal(res.isError, true, JSON.stringify(value));
      assert.match(
        res.text,
        /Input validation error.*no control characters \(but tab\) and no characters past U\+00FF/,
      );
    }
    assert.equal(w.upstream.seen.length, before, 'nothing sent upstream');
    assert.equal(
      w.broker.logs.filter((l) => l.includes('"level":50')).length,
      errorsBefore,
      'no broker failure',
    );
    // Tab and Latin-1 letters are what HTTP carries as they are.
    const latin = await call(a.client, 'http_request', {
      provider: 'echo',
      path: '/x',
      headers: { 'x-a': 'ünï\tcafé' },
    });
    assert.equal(latin.body.status, 200, latin.text);
    assert.equal(w.upstream.seen.at(-1)!.headers['x-a'], 'ünï\tcafé');
  });

  it('connect without elicitation returns the link; the connection is pending', async () => {
    const res = await call(a.client, 'connect', { provider: 'echo', return_url: CAPTURE_RETURN_URL });
    assert.equal(res.isError, false, res.text);
    assert.equal(res.body.status, 'pending');
    assert.match(res.body.authorization_url, /\/connect\/capture\?state=/);
    const status = await call(a.client, 'connection_status', { connection_id: res.body.connection_id });
    assert.equal(status.body.status, 'pending');
    // For a user outside the grant REST refuses (403), and so does the tool.
    const refused = await call(a.client, 'connect', {
      provider: 'echo',
      user_id: 'user-2',
      return_url: CAPTURE_RETURN_URL,
    });
    assert.equal(refused.isError, true);
    assert.equal(refused.body.error, 'forbidden');
  });

  it('connect with URL elicitation: the link goes to the client, the tool waits until active', async () => {
    const elicit = await httpClient(w, w.agents.a.token, {
      user: 'user-1',
      capabilities: { capabilities: { elicitation: { url: {} } } },
    });
    try {
      const asked: string[] = [];
      elicit.client.setRequestHandler(ElicitRequestSchema, async (request) => {
        const params = request.params as { mode?: string; url?: string };
        assert.equal(params.mode, 'url');
        asked.push(params.url!);
        // The person opens the link and completes the hosted form.
        const state = new URL(params.url!).searchParams.get('state')!;
        const done = await capture(w.broker, state, { api_key: 'fresh-key-123' });
        assert.equal(done.statusCode, 200, done.body);
        return { action: 'accept' };
      });
      const res = await call(elicit.client, 'connect', {
        provider: 'echo',
        return_url: CAPTURE_RETURN_URL,
        wait_seconds: 30,
      });
      assert.equal(res.isError, false, res.text);
      assert.equal(asked.length, 1);
      assert.equal(res.body.status, 'active');
      assert.equal(res.body.elicitation, 'accept');
      assert.equal(res.body.authorization_url, undefined, 'the link went to the person, not the model');
      assert.ok(!res.text.includes('fresh-key-123'));
    } finally {
      await elicit.client.close();
    }
  });

  it('get_secret reads only an explicitly granted secret', async () => {
    const granted = await call(a.client, 'get_secret', { name: 'api-key' });
    assert.equal(granted.isError, false, granted.text);
    assert.deepEqual(granted.body, { name: 'api-key', zone: 'default', version: 1, value: w.secretValue });
    const notGranted = await call(a.client, 'get_secret', { name: 'not-granted' });
    assert.equal(notGranted.body.error, 'user_secret_not_found');
    const otherAgent = await call(b.client, 'get_secret', { name: 'api-key', user_id: 'user-1' });
    assert.equal(otherAgent.body.error, 'user_secret_not_found');
    assert.ok(!otherAgent.text.includes(w.secretValue));
  });

  it('audits every call with the agent, the user it acts for and the tool', async () => {
    const events = await toolAudit(w);
    const of = (actor: string, tool: string) =>
      events.filter((e) => e.actor === actor && e.resource_id === tool);
    assert.ok(of('agent:mcp-a', 'list_connections').length >= 2);
    const secretReads = of('agent:mcp-a', 'get_secret');
    assert.deepEqual(
      secretReads.map((e) => [e.outcome, e.details.acting_user, e.details.error ?? null]),
      [
        ['success', 'user-1', null],
        ['denied', 'user-1', 'user_secret_not_found'],
      ],
    );
    assert.deepEqual(
      of('agent:mcp-b', 'get_secret').map((e) => [e.outcome, e.details.acting_user]),
      [['denied', 'user-1']],
    );
    for (const tool of ['connect', 'connection_status', 'http_request'])
      assert.ok(of('agent:mcp-a', tool).length > 0, `${tool} audited`);
    assert.ok(!JSON.stringify(events).includes(w.secretValue), 'no secret value in the audit log');
  });

  it('refuses callers without an agent token, and sessions of another agent', async () => {
    const initialize = {
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } },
    };
    const post = (headers: Record<string, string>) =>
      fetch(`${w.url}/mcp`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          ...headers,
        },
        body: JSON.stringify(initialize),
      });
    assert.equal((await post({})).status, 401);
    assert.equal((await post({ 'x-api-key': w.broker.adminKey })).status, 403);
    // Agent B presenting agent A's session id finds nothing.
    const session = a.transport.sessionId!;
    const hijack = await fetch(`${w.url}/mcp`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: `Bearer ${w.agents.b.token}`,
        'mcp-session-id': session,
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }),
    });
    assert.equal(hijack.status, 404);
  });
});
