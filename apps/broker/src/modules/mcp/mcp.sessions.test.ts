import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMcpSessions, type McpSession } from './mcp.sessions.ts';

/**
 * The room policy of mcp.sessions.ts on a small process (the SDK's transport and server replaced
 * by objects that only record being closed; /mcp with the real ones is in test/mcp-sessions.test.ts).
 */
describe('MCP sessions: room in a full process', () => {
  const closed: string[] = [];
  const session = (id: string, owner: string): Omit<McpSession, 'lastSeen'> =>
    ({
      owner,
      transport: {},
      server: { close: async () => void closed.push(id) },
    }) as unknown as Omit<McpSession, 'lastSeen'>;

  it('gives the biggest holder’s oldest session to a newcomer, and refuses when every owner holds one', () => {
    const sessions = createMcpSessions({ max: 4, perOwner: 3, idleMs: 60_000 });
    const opened = (owner: string, id: string) => {
      const done = sessions.reserve(owner);
      sessions.add(id, session(id, owner));
      done();
    };
    opened('a', 'a1');
    opened('a', 'a2');
    opened('a', 'a3');
    opened('b', 'b1');
    // Full: `c` takes the place of `a`'s oldest (a holds 3, more than c would).
    opened('c', 'c1');
    assert.deepEqual(closed, ['a1']);
    opened('d', 'd1');
    assert.deepEqual(closed, ['a1', 'a2']);
    // a, b, c and d hold one each: nobody holds more than a newcomer would, so it waits.
    assert.throws(
      () => sessions.reserve('e'),
      (error: { code?: string; details?: unknown }) =>
        error.code === 'service_unavailable' &&
        JSON.stringify(error.details) === JSON.stringify({ retry_after_seconds: 60 }),
    );
    assert.deepEqual(closed, ['a1', 'a2'], 'nobody closed for it');
    assert.equal(sessions.size, 4);
  });
});
