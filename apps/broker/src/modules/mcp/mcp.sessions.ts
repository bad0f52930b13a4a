import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';

/**
 * Open MCP sessions of this process (Streamable HTTP, stateful: an elicitation's answer must reach
 * the server that asked). A session belongs to the agent that opened it: another agent presenting
 * its id finds nothing. Bounded in number and idle time; the oldest idle session goes first.
 * Sessions are not shared between replicas: behind a load balancer, route `/mcp` by the
 * `Mcp-Session-Id` header (sticky), or a client re-initializes after a 404.
 */
export interface McpSession {
  readonly transport: StreamableHTTPServerTransport;
  readonly server: McpServer;
  /**
   * Who may use the session: the agent's row id, with the user when the caller is pinned to one (an
   * on-behalf-of session, a trusted issuer's token), so people an agent acts for share no session.
   */
  readonly owner: string;
  lastSeen: number;
}

export function createMcpSessions(options: { max: number; idleMs: number; now?: () => number }) {
  const now = options.now ?? Date.now;
  const sessions = new Map<string, McpSession>();

  function close(id: string, session: McpSession): void {
    sessions.delete(id);
    void session.server.close().catch(() => undefined);
  }

  /** Closes sessions idle for longer than `idleMs`, then the oldest ones beyond `max - room`. */
  function sweep(room = 0): void {
    const t = now();
    for (const [id, s] of sessions) if (t - s.lastSeen > options.idleMs) close(id, s);
    // Map order is least recently used first: `touch` re-inserts.
    for (const [id, s] of sessions) {
      if (sessions.size <= options.max - room) break;
      close(id, s);
    }
  }

  return {
    /** The session with this id when `owner` opened it; touches it. */
    find(id: string, owner: string): McpSession | undefined {
      const s = sessions.get(id);
      if (s === undefined || s.owner !== owner) return undefined;
      if (now() - s.lastSeen > options.idleMs) {
        close(id, s);
        return undefined;
      }
      s.lastSeen = now();
      sessions.delete(id);
      sessions.set(id, s);
      return s;
    },
    add(id: string, session: Omit<McpSession, 'lastSeen'>): void {
      sweep(1);
      sessions.set(id, { ...session, lastSeen: now() });
    },
    remove(id: string): void {
      sessions.delete(id);
    },
    get size() {
      return sessions.size;
    },
    closeAll(): void {
      for (const [id, s] of sessions) close(id, s);
    },
  };
}

export type McpSessions = ReturnType<typeof createMcpSessions>;
