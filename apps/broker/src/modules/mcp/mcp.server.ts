import { randomUUID } from 'node:crypto';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { VERSION } from '../../version.ts';
import type { createMcpSessions } from './mcp.sessions.ts';
import { registerTools } from './mcp.tools.ts';
import type { McpToolDeps } from './mcp.types.ts';

/**
 * What `/mcp` needs of the MCP SDK at run time, in one module that mcp.routes.ts imports on the
 * first request: the SDK and its dependencies then cost nothing to a broker nobody reaches by MCP.
 */
export { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';

/** A new MCP session of `owner`: its server with the tools, and its Streamable HTTP transport. */
export async function openSession(
  toolDeps: McpToolDeps,
  sessions: ReturnType<typeof createMcpSessions>,
  owner: string,
): Promise<StreamableHTTPServerTransport> {
  const server = new McpServer({ name: 'nexus', version: VERSION }, { capabilities: { tools: {} } });
  registerTools(server, toolDeps);
  const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
    sessionIdGenerator: () => randomUUID(),
    onsessioninitialized: (id) => sessions.add(id, { transport, server, owner }),
    onsessionclosed: (id) => sessions.remove(id),
  });
  transport.onclose = () => {
    if (transport.sessionId !== undefined) sessions.remove(transport.sessionId);
  };
  await server.connect(transport);
  return transport;
}
