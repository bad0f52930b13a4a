import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { commonError } from '../../errors/common.errors.ts';

/** Sessions one process holds at most (each is a server with its tools: about 256 KB). */
export const MAX_SESSIONS = 1_000;
/**
 * Sessions one owner (an agent, or an agent and the person it is pinned to) holds at most: its
 * oldest goes when it opens another. A tenth of the process's, so that no owner fills it alone.
 */
export const MAX_SESSIONS_PER_OWNER = 100;
/** What a client refused for want of room is told to wait (Retry-After). */
const FULL_RETRY_AFTER_S = 60;

/**
 * Open MCP sessions of this process (Streamable HTTP, stateful: an elicitation's answer must reach
 * the server that asked). A session belongs to the agent that opened it: another agent presenting
 * its id finds nothing. Bounded in idle time, per owner and in all: an owner over its quota loses
 * its own least recently used session, never another owner's; in a process that holds `max`, a new
 * session takes the place of the oldest of whoever holds the most (when that owner holds more than
 * the newcomer would), and when every owner holds as few, it is refused (503, Retry-After).
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

export function createMcpSessions(options: {
  max: number;
  perOwner: number;
  idleMs: number;
  now?: () => number;
}) {
  const now = options.now ?? Date.now;
  // Map order is least recently used first: `find` re-inserts.
  const sessions = new Map<string, McpSession>();
  const owned = new Map<string, number>();
  // Initializations under way, each with the room `reserve` kept for it.
  let opening = 0;

  function forget(id: string): McpSession | undefined {
    const s = sessions.get(id);
    if (s === undefined) return undefined;
    sessions.delete(id);
    const left = (owned.get(s.owner) ?? 1) - 1;
    if (left > 0) owned.set(s.owner, left);
    else owned.delete(s.owner);
    return s;
  }

  function close(id: string): void {
    void forget(id)
      ?.server.close()
      .catch(() => undefined);
  }

  /** Closes the owner's least recently used sessions until it holds fewer than `keep`. */
  function shrink(owner: string, keep: number): void {
    for (const [id, s] of sessions) {
      if ((owned.get(owner) ?? 0) < keep) return;
      if (s.owner === owner) close(id);
    }
  }

  function sweepIdle(): void {
    const t = now();
    for (const [id, s] of sessions) if (t - s.lastSeen > options.idleMs) close(id);
  }

  return {
    /** The session with this id when `owner` opened it; touches it. */
    find(id: string, owner: string): McpSession | undefined {
      const s = sessions.get(id);
      if (s === undefined || s.owner !== owner) return undefined;
      if (now() - s.lastSeen > options.idleMs) {
        close(id);
        return undefined;
      }
      s.lastSeen = now();
      sessions.delete(id);
      sessions.set(id, s);
      return s;
    },
    /**
     * Room for a session `owner` is about to open: its own oldest session goes when it holds its
     * quota. With the process full, the oldest session of whoever holds the most goes, when that
     * owner holds more than this one would (so a few owners at their quota cannot lock everyone
     * else out); when nobody does, 503 (`service_unavailable`, Retry-After).
     * Call the returned function once the initialization is over, whether it opened one or not.
     */
    reserve(owner: string): () => void {
      sweepIdle();
      shrink(owner, options.perOwner);
      if (sessions.size + opening >= options.max) {
        const [largest, held] = [...owned].reduce((a, b) => (b[1] > a[1] ? b : a), ['', 0]);
        if (held > (owned.get(owner) ?? 0) + 1) shrink(largest, held);
      }
      if (sessions.size + opening >= options.max)
        throw commonError('service_unavailable', {
          message: `This broker holds as many MCP sessions as it may (${options.max}): retry after ${FULL_RETRY_AFTER_S} s.`,
          details: { retry_after_seconds: FULL_RETRY_AFTER_S },
        });
      opening += 1;
      let done = false;
      return () => {
        if (!done) opening -= 1;
        done = true;
      };
    },
    /** A session that initialized (within a `reserve`); the owner's oldest go beyond its quota. */
    add(id: string, session: Omit<McpSession, 'lastSeen'>): void {
      shrink(session.owner, options.perOwner);
      sessions.set(id, { ...session, lastSeen: now() });
      owned.set(session.owner, (owned.get(session.owner) ?? 0) + 1);
    },
    remove(id: string): void {
      forget(id);
    },
    get size() {
      return sessions.size;
    },
    closeAll(): void {
      for (const id of [...sessions.keys()]) close(id);
    },
  };
}

export type McpSessions = ReturnType<typeof createMcpSessions>;
