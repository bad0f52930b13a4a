/**
 * Security review, MCP defect 1: `http_request` ends its upstream request when it has read what a
 * result holds, when the call is cancelled, when its session ends and at the call's deadline. It
 * used to leave the answer unread: the upstream connection stayed open and its socket busy in the
 * route's pool (256), so after 256 downloads nobody reached the provider through the broker.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { capture, startCapture } from './capture-helpers.ts';
import { createAgentWithToken, DIALECT } from './harness.ts';
import { call, httpClient, type McpWorld, startMcpWorld, toolClient } from './mcp-fixture.ts';

const BIG = Buffer.alloc(16 * 1024 * 1024, 7);

/**
 * Polls `check` until it holds, at most `ms`: well under the proxy's own deadline (30 s here),
 * after which the proxy releases an answer nobody reads by itself. What is tested is that the tool
 * releases it at once.
 */
async function eventually(check: () => boolean, ms = 10_000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(50)) if (check()) return true;
  return check();
}

describe(`MCP http_request releases its upstream request (${DIALECT})`, () => {
  let w: McpWorld;
  let connection: string;
  let open = 0;
  const upstream = createServer((req, res) => {
    if (req.url?.endsWith('/plain')) return void res.end('plain ok');
    open++;
    res.once('close', () => open--);
    if (req.url?.endsWith('/silent')) return; // never answers
    if (req.url?.endsWith('/events')) {
      // A few bytes now and then, for ever: an event stream that never fills a result.
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(': tick\n\n');
      const tick = setInterval(() => (res.destroyed ? clearInterval(tick) : res.write(': tick\n\n')), 100);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': BIG.length });
    res.end(BIG);
  });

  before(async () => {
    await new Promise<void>((done) => upstream.listen(0, '127.0.0.1', done));
    const base = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/api`;
    w = await startMcpWorld({ env: { NEXUS_PROXY_TIMEOUT_SECONDS: '30' } });
    const created = await w.broker.request({
      method: 'POST',
      url: '/providers',
      payload: {
        profile: {
          name: 'files',
          auth_type: 'header',
          api_base_url: base,
          params: {
            auth_strategy: { type: 'header', config: { header_name: 'X-Key', credential_field: 'api_key' } },
          },
        },
      },
    });
    assert.equal(created.statusCode, 201, created.body);
    const flow = await startCapture(w.broker, 'files', 'user-1');
    assert.equal((await capture(w.broker, flow.state, { api_key: 'files-key-1' })).statusCode, 200);
    connection = flow.connection_id;
  });
  after(async () => {
    await w?.close();
    upstream.closeAllConnections();
    await new Promise((done) => upstream.close(done));
  });

  it('after 256 downloads bigger than a result, every upstream connection is closed and the provider answers everyone', async () => {
    const { client } = await httpClient(w, w.agents.a.token, { user: 'user-1' });
    try {
      for (let i = 0; i < 256; i++) {
        const res = await call(client, 'http_request', { provider: 'files', path: '/file.bin' });
        assert.equal(res.body.status, 200, res.text);
        assert.equal(res.body.truncated, true);
        assert.equal(Buffer.from(res.body.body_base64, 'base64').length, 256 * 1024);
      }
    } finally {
      await client.close();
    }
    assert.ok(await eventually(() => open === 0), `${open} upstream answers still open`);
    // Another agent, straight through /proxy: the route's pool has room.
    const other = await createAgentWithToken(w.broker, 'downloads-bystander', {
      allowed_providers: ['*'],
      allowed_workspaces: ['user-1'],
    });
    const res = await fetch(`${w.url}/proxy/files/plain`, {
      headers: { authorization: `Bearer ${other.token}`, 'x-nexus-connection-id': connection },
      signal: AbortSignal.timeout(10_000),
    });
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'plain ok');
  });

  it('a cancelled call ends its upstream request; the session goes on', async () => {
    const { client } = await httpClient(w, w.agents.a.token, { user: 'user-1' });
    try {
      // The SDK client cancels (notifications/cancelled) when its timeout passes.
      await assert.rejects(
        client.callTool(
          { name: 'http_request', arguments: { provider: 'files', path: '/events' } },
          undefined,
          {
            timeout: 500,
          },
        ),
        /timed out/i,
      );
      assert.ok(await eventually(() => open === 0), 'the event stream is closed upstream');
      const listed = await call(client, 'list_connections');
      assert.equal(listed.isError, false, listed.text);
    } finally {
      await client.close();
    }
  });

  it('a call cancelled while it starts (tools/call and its cancellation in one batch) releases its answer', async () => {
    const headers = {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      authorization: `Bearer ${w.agents.a.token}`,
      'x-nexus-user-id': 'user-1',
    };
    const post = (body: unknown, extra: Record<string, string> = {}) =>
      fetch(`${w.url}/mcp`, {
        method: 'POST',
        headers: { ...headers, ...extra },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(3_000),
      });
    const init = await post({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } },
    });
    const session = {
      'mcp-session-id': init.headers.get('mcp-session-id')!,
      'mcp-protocol-version': '2025-06-18',
    };
    await init.text();
    await (await post({ jsonrpc: '2.0', method: 'notifications/initialized' }, session)).text();
    for (let id = 100; id < 105; id++) {
      const res = await post(
        [
          {
            jsonrpc: '2.0',
            id,
            method: 'tools/call',
            params: { name: 'http_request', arguments: { provider: 'files', path: '/file.bin' } },
          },
          { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: id, reason: 'user' } },
        ],
        session,
      ).catch((error: Error) => error);
      if (!(res instanceof Error)) void res.text().catch(() => {});
    }
    assert.ok(await eventually(() => open === 0), `${open} upstream answers still open`);
  });

  it("closing the session ends its calls' upstream requests", async () => {
    const { client, transport } = await httpClient(w, w.agents.a.token, { user: 'user-1' });
    const pending = client
      .callTool({ name: 'http_request', arguments: { provider: 'files', path: '/events' } })
      .catch(() => 'ended');
    assert.ok(await eventually(() => open === 1), 'the call reached the upstream');
    await transport.terminateSession();
    assert.ok(await eventually(() => open === 0), 'the event stream is closed upstream');
    await client.close();
    assert.equal(await pending, 'ended');
  });

  it('at the deadline, a call answers what arrived, or upstream_timeout before any answer', async () => {
    const tools = await toolClient(w, w.agents.a.token, { user: 'user-1', deps: { callDeadlineMs: 1_500 } });
    try {
      const started = Date.now();
      // Well before the client's own timeout, which would cancel the call.
      const within = { timeout: 8_000 };
      const streamed = await call(
        tools.client,
        'http_request',
        { provider: 'files', path: '/events' },
        within,
      );
      assert.equal(streamed.isError, false, streamed.text);
      assert.equal(streamed.body.status, 200);
      assert.equal(streamed.body.truncated, true);
      assert.match(streamed.body.body, /^: tick\n\n/);
      assert.ok(Date.now() - started < 5_000, 'answered at the deadline');
      assert.ok(await eventually(() => open === 0), 'the event stream is closed upstream');

      const silent = await call(tools.client, 'http_request', { provider: 'files', path: '/silent' }, within);
      assert.equal(silent.isError, true);
      assert.equal(silent.body.error, 'upstream_timeout');
      assert.match(silent.body.message, /within 1.5 s/);
    } finally {
      await tools.close();
    }
  });
});
