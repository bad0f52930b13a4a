import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';

/**
 * `nexus mcp`: Nexus's MCP server over stdio, the way agents run local MCP servers. It is a relay:
 * every JSON-RPC message from stdin goes to the broker's `/mcp` (Streamable HTTP) with the agent's
 * access token, and every message from the broker (answers, elicitations) comes back on stdout. The
 * tools, their grant checks and their audit are the broker's; this process holds only the agent's
 * credential and never a user's.
 */
export interface StdioRelayOptions {
  readonly brokerUrl: URL;
  /** An access token, or the agent's client credentials (logged in, and again before expiry). */
  readonly credential: { token: string } | { clientId: string; clientSecret: string };
  /** The user the agent acts for (`X-Nexus-User-ID`), when configured. */
  readonly userId?: string | undefined;
  readonly stdin?: NodeJS.ReadableStream;
  readonly stdout?: NodeJS.WritableStream;
  /** Where relay failures are reported (stderr); stdout carries only MCP messages. */
  readonly report: (line: string) => void;
  readonly timeoutMs?: number;
}

const EXPIRY_SKEW_MS = 30_000;

/** The agent's access token: the given one, or a client-credentials login renewed before expiry. */
function tokenSource(options: StdioRelayOptions) {
  const credential = options.credential;
  let current: { token: string; until: number } | undefined;
  let pending: Promise<string> | undefined;
  async function login(clientId: string, clientSecret: string): Promise<string> {
    const res = await fetch(new URL('/oauth/token', options.brokerUrl), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: clientId,
        client_secret: clientSecret,
      }),
      signal: AbortSignal.timeout(options.timeoutMs ?? 30_000),
    });
    const body = (await res.json().catch(() => ({}))) as { access_token?: unknown; expires_in?: unknown };
    if (!res.ok || typeof body.access_token !== 'string')
      throw new Error(`the broker refused the agent's client credentials (HTTP ${res.status})`);
    const ttl = typeof body.expires_in === 'number' ? body.expires_in * 1000 : 300_000;
    current = { token: body.access_token, until: Date.now() + Math.max(ttl - EXPIRY_SKEW_MS, 1_000) };
    return body.access_token;
  }
  return {
    renewable: !('token' in credential),
    async get(): Promise<string> {
      if ('token' in credential) return credential.token;
      if (current !== undefined && current.until > Date.now()) return current.token;
      pending ??= login(credential.clientId, credential.clientSecret).finally(() => {
        pending = undefined;
      });
      return pending;
    },
    invalidate(): void {
      current = undefined;
    },
  };
}

/** Runs the relay until stdin ends; resolves then. */
export async function runStdioRelay(options: StdioRelayOptions): Promise<void> {
  const tokens = tokenSource(options);
  const authorized = async (url: string | URL, init?: RequestInit, retry = true): Promise<Response> => {
    const headers = new Headers(init?.headers);
    headers.set('authorization', `Bearer ${await tokens.get()}`);
    if (options.userId !== undefined) headers.set('x-nexus-user-id', options.userId);
    const res = await fetch(url, { ...init, headers });
    // An expired token is renewed once; the body of the SDK's requests is a string, safe to resend.
    if (res.status === 401 && retry && tokens.renewable) {
      tokens.invalidate();
      return authorized(url, init, false);
    }
    return res;
  };
  const remote = new StreamableHTTPClientTransport(new URL('/mcp', options.brokerUrl), { fetch: authorized });
  const local = new StdioServerTransport(
    (options.stdin ?? process.stdin) as typeof process.stdin,
    (options.stdout ?? process.stdout) as typeof process.stdout,
  );
  const initializeIds = new Set<string | number>();

  local.onmessage = (message: JSONRPCMessage) => {
    if ('method' in message && message.method === 'initialize' && 'id' in message)
      initializeIds.add(message.id);
    remote.send(message).catch((error: unknown) => {
      const reason = error instanceof Error ? error.message : String(error);
      options.report(`nexus mcp: the broker did not take a message: ${reason}`);
      // A request gets an answer either way, so the client does not wait forever.
      if ('method' in message && 'id' in message)
        void local.send({
          jsonrpc: '2.0',
          id: message.id,
          error: { code: -32603, message: `Nexus could not be reached or refused the request: ${reason}` },
        });
    });
  };
  remote.onmessage = (message: JSONRPCMessage) => {
    // The negotiated version goes on every later request (Streamable HTTP's MCP-Protocol-Version).
    if ('id' in message && 'result' in message && initializeIds.delete(message.id)) {
      const version = (message.result as { protocolVersion?: unknown }).protocolVersion;
      if (typeof version === 'string') remote.setProtocolVersion(version);
    }
    void local.send(message);
  };
  remote.onerror = (error) => options.report(`nexus mcp: ${error.message}`);
  local.onerror = (error) => options.report(`nexus mcp: ${error.message}`);

  await remote.start();
  const ended = new Promise<void>((resolve) => {
    local.onclose = () => resolve();
    (options.stdin ?? process.stdin).once('end', () => void local.close());
  });
  await local.start();
  await ended;
  await remote.terminateSession().catch(() => undefined);
  await remote.close().catch(() => undefined);
}
