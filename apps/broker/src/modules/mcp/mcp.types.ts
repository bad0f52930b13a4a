import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import type { CallToolResult, ServerNotification, ServerRequest } from '@modelcontextprotocol/sdk/types.js';
import * as z from 'zod';
import type { AgentPrincipal } from '../../auth/principal.ts';
import { commonError } from '../../errors/common.errors.ts';
import type { AuditService } from '../audit/audit.service.ts';
import type { ConnectionsService } from '../connections/connections.service.ts';
import type { UserSecrets } from '../user-secrets/user-secrets.service.ts';
import type { McpCaller } from './mcp.caller.ts';

/**
 * A call to the credential proxy as the agent: `/proxy/<route><path>` (mcp.in-process.ts makes
 * it). It reads at most `maxBytes` of the answer, then ends the upstream request; so does `signal`
 * (the call cancelled, its session closed, its deadline) at any time.
 */
export type ProxyCall = (
  caller: McpCaller,
  request: {
    route: string;
    path: string;
    method: string;
    headers: Record<string, string>;
    body: string | undefined;
  },
  options: { maxBytes: number; signal: AbortSignal },
) => Promise<{
  status: number;
  headers: Record<string, string | string[] | number | undefined>;
  /** At most `maxBytes`: the beginning of the answer's body. */
  body: Buffer;
  /** Whether `body` is the whole answer (not cut at `maxBytes`, by `signal` or by a broken upstream). */
  complete: boolean;
}>;

/**
 * `POST /v1/request-connection` as the agent (mcp.in-process.ts makes it): consent's `start`
 * behind the route's grant checks and rate limit. A refusal is thrown as the route's NexusError.
 */
export type ConnectCall = (
  caller: McpCaller,
  request: { userId: string; provider: string; scopes: string[] | undefined; returnUrl: string },
) => Promise<{ connection_id: string; authUrl: string }>;

/**
 * The tools of Nexus's MCP server. Each one calls the service REST calls, or the REST route itself
 * where that has limits of its own (same grant checks, same errors: what the agent may not reach is
 * "not found"), and each call is audited as
 * `mcp.tool_call` with the agent (the actor), the user it acts for and the tool's name. Results
 * are built field by field: a refresh token or client secret has no field to travel in.
 */
export interface McpToolDeps {
  readonly connections: Pick<ConnectionsService, 'list' | 'check'>;
  /** Starts a connection as `POST /v1/request-connection` does (the `connect` tool). */
  readonly startConnection: ConnectCall;
  readonly userSecrets: Pick<UserSecrets, 'read'>;
  readonly audit: Pick<AuditService, 'record'>;
  /** The agents module's grant check (`agentMayUse`): which connections an agent sees. */
  readonly mayUse: (
    principal: AgentPrincipal,
    target: { workspace_id: string; provider_id: string },
  ) => boolean;
  /** The credential proxy, called in process as the agent (see mcp-http-request.ts). */
  readonly proxy: ProxyCall;
  /** The longest an `http_request` call lasts, whatever the upstream does (ms). */
  readonly callDeadlineMs?: number;
  /** Where the person lands after connecting when the tool names no `return_url`. */
  readonly defaultReturnUrl: string;
  /** How often `connect` reads the status while it waits (ms). */
  readonly pollMs?: number;
  /** Where unexpected failures are logged (never sent to the client). */
  readonly log?: (error: unknown, tool: string) => void;
}

/** What a tool handler is given besides its arguments (the SDK's). */
export type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

/** What a tool's implementation returns: plain data, shown to the client as JSON text. */
export type ToolAnswer = Record<string, unknown>;

export const userIdArg = z
  .string()
  .trim()
  .min(1)
  .max(200)
  .optional()
  .describe('The user (workspace) to act for; defaults to the user the MCP client was configured for');
/** The user a call acts for, or a 400 saying how to name one. */
export function requireUser(caller: McpCaller, given: string | undefined): string {
  const user = given ?? caller.actingUser;
  if (user === undefined)
    throw commonError('invalid_request', {
      message:
        "Name the user to act for: the tool's user_id, or X-Nexus-User-ID (NEXUS_USER_ID) on the MCP client.",
    });
  return user;
}

/** Wraps a tool's implementation: runs it as its caller, audits the call, answers errors as tool errors. */
export type Audited = <A extends { user_id?: string | undefined }>(
  tool: string,
  run: (args: A, caller: McpCaller, extra: Extra) => Promise<ToolAnswer>,
) => (args: A, extra: Extra) => Promise<CallToolResult>;
