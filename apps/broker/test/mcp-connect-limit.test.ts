/**
 * Security review, MCP defect 4: the `connect` tool counts against the `request_connection` rate
 * limit of `POST /v1/request-connection`, for the same agent. It called consent directly, so with
 * RATE_LIMIT_REQUEST_CONNECTION_RPM=2 REST answered 429 after two while MCP started fifty.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { DIALECT } from './harness.ts';
import { CAPTURE_RETURN_URL, call, httpClient, type McpWorld, startMcpWorld } from './mcp-fixture.ts';

describe(`MCP connect and the request_connection rate limit (${DIALECT})`, () => {
  let w: McpWorld;
  before(async () => {
    w = await startMcpWorld({ env: { RATE_LIMIT_ENABLED: 'true', RATE_LIMIT_REQUEST_CONNECTION_RPM: '3' } });
  });
  after(async () => {
    await w?.close();
  });

  it('MCP connect and REST share one budget per agent; another agent keeps its own', async () => {
    const a = await httpClient(w, w.agents.a.token, { user: 'user-1' });
    const b = await httpClient(w, w.agents.b.token, { user: 'user-2' });
    const rest = (token: string) =>
      w.broker.request({
        method: 'POST',
        url: '/v1/request-connection',
        key: null,
        headers: { authorization: `Bearer ${token}` },
        payload: { user_id: 'user-1', provider_name: 'echo', return_url: CAPTURE_RETURN_URL },
      });
    const connect = (client: typeof a.client) =>
      call(client, 'connect', { provider: 'echo', return_url: CAPTURE_RETURN_URL });
    try {
      // The windows are aligned on the clock: start right after a boundary, not just before one.
      const wait = 60_000 - (Date.now() % 60_000);
      if (wait < 3_000) await sleep(wait + 50);

      for (let i = 0; i < 2; i++) {
        const started = await connect(a.client);
        assert.equal(started.isError, false, started.text);
        assert.equal(started.body.status, 'pending');
      }
      assert.equal((await rest(w.agents.a.token)).statusCode, 200, 'the third of three');
      const limited = await connect(a.client);
      assert.equal(limited.isError, true, limited.text);
      assert.equal(limited.body.error, 'rate_limited');
      assert.match(limited.body.message, /at most 3 per 60 s\. Retry after \d+ s\./);
      assert.equal((await rest(w.agents.a.token)).statusCode, 429);

      const other = await connect(b.client);
      assert.equal(other.isError, false, 'another agent has its own budget');
    } finally {
      await a.client.close();
      await b.client.close();
    }
  });
});
