/**
 * Security review, MCP defect 3: one owner cannot push another's MCP sessions out. Over the
 * process's cap (1000), the least recently used sessions used to be closed whoever owned them, so
 * one agent opening 1000 sessions (about a second and a half) ended every other agent's and
 * person's. Now an owner beyond its quota (100) loses its own oldest, and in a full process the
 * biggest holder gives way (mcp.sessions.test.ts has the refusal when nobody holds more).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MAX_SESSIONS, MAX_SESSIONS_PER_OWNER } from '../src/modules/mcp/mcp.sessions.ts';
import { createAgentWithToken, DIALECT, startBroker, type TestBroker } from './harness.ts';

const HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

describe(`MCP sessions: per-owner quota, process cap (${DIALECT})`, () => {
  let b: TestBroker;
  let victim: { token: string; session: string };
  let hostile: { token: string; sessions: string[] };

  const initialize = async (token: string) => {
    const res = await b.app.inject({
      method: 'POST',
      url: '/mcp',
      headers: { ...HEADERS, authorization: `Bearer ${token}` },
      payload: {
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } },
      },
    });
    return { res, session: res.headers['mcp-session-id'] as string | undefined };
  };
  const open = async (token: string) => {
    const { res, session } = await initialize(token);
    assert.equal(res.statusCode, 200, res.body);
    return session!;
  };
  const ping = async (token: string, session: string) =>
    (
      await b.app.inject({
        method: 'POST',
        url: '/mcp',
        headers: {
          ...HEADERS,
          authorization: `Bearer ${token}`,
          'mcp-session-id': session,
          'mcp-protocol-version': '2025-06-18',
        },
        payload: { jsonrpc: '2.0', id: 2, method: 'ping' },
      })
    ).statusCode;
  const agent = async (name: string) =>
    (await createAgentWithToken(b, name, { allowed_scopes: ['mcp'] })).token;

  before(async () => {
    b = await startBroker();
    const token = await agent('victim');
    victim = { token, session: await open(token) };
    hostile = { token: await agent('hostile'), sessions: [] };
  });
  after(async () => {
    await b?.close();
  });

  it("an agent opening 1000 sessions loses its own oldest; another agent's session lives on", async () => {
    for (let i = 0; i < MAX_SESSIONS; i++) hostile.sessions.push(await open(hostile.token));
    assert.equal(await ping(victim.token, victim.session), 200, "the other agent's session still works");
    // The hostile agent keeps its newest sessions, up to its quota.
    assert.equal(await ping(hostile.token, hostile.sessions.at(-1)!), 200);
    assert.equal(await ping(hostile.token, hostile.sessions.at(-MAX_SESSIONS_PER_OWNER)!), 200);
    assert.equal(await ping(hostile.token, hostile.sessions.at(-MAX_SESSIONS_PER_OWNER - 1)!), 404);
    assert.equal(await ping(hostile.token, hostile.sessions[0]!), 404);
  });

  it("in a full process a newcomer takes the place of the biggest holder's oldest session; the small holder keeps its own", async () => {
    // 1 (victim) + 100 (hostile) open; fill the rest with other agents' sessions, each within its quota.
    let held = 1 + MAX_SESSIONS_PER_OWNER;
    for (let n = 0; held < MAX_SESSIONS; n++) {
      const filler = await agent(`filler-${n}`);
      for (let i = 0; i < MAX_SESSIONS_PER_OWNER && held < MAX_SESSIONS; i++, held++) await open(filler);
    }
    // Ten owners at their quota do not lock a newcomer out.
    const newcomer = await agent('newcomer');
    const first = await open(newcomer);
    assert.equal(await ping(newcomer, first), 200);
    // The hostile agent holds the most (100, with the fillers' first): its least recently used
    // session (the one after the two pinged in the first test) made the room.
    assert.equal(await ping(hostile.token, hostile.sessions.at(-MAX_SESSIONS_PER_OWNER + 1)!), 404);
    assert.equal(await ping(hostile.token, hostile.sessions.at(-MAX_SESSIONS_PER_OWNER + 2)!), 200);
    assert.equal(await ping(victim.token, victim.session), 200, 'the one-session owner was not pushed out');
  });
});
