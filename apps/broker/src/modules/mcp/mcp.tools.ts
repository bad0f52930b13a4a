import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import * as z from 'zod';
import { commonError } from '../../errors/common.errors.ts';
import { errorFrom, NexusError } from '../../errors/nexus-error.ts';
import { userSecretErrors } from '../user-secrets/user-secrets.errors.ts';
import { agentHoldsSecretGrant } from '../user-secrets/user-secrets.service.ts';
import { callerOf, type McpCaller } from './mcp.caller.ts';
import {
  type Audited,
  type Extra,
  type McpToolDeps,
  requireUser,
  type ToolAnswer,
  userIdArg,
} from './mcp.types.ts';
import { connectTool } from './mcp-connect.ts';
import { httpRequestTool } from './mcp-http-request.ts';

const MAX_LISTED = 100;
/** Users listed one by one when the agent's grant names them (a wildcard lists every one at once). */
const MAX_USERS = 20;

function text(value: unknown, isError = false): CallToolResult {
  return {
    content: [{ type: 'text', text: JSON.stringify(value, null, 2) }],
    ...(isError ? { isError } : {}),
  };
}

/**
 * The tools of Nexus's MCP server. Each one calls the service REST calls (same grant checks, same
 * errors: what the agent may not reach is "not found"), and each call is audited as
 * `mcp.tool_call` with the agent (the actor), the user it acts for and the tool's name. Results
 * are built field by field: a refresh token or client secret has no field to travel in.
 */
/** Registers every tool on one MCP server (one per MCP session). */
export function registerTools(server: McpServer, deps: McpToolDeps): void {
  /** Runs a tool as its caller, audits the call, and answers errors as tool errors. */
  const audited: Audited =
    <A extends { user_id?: string | undefined }>(
      tool: string,
      run: (args: A, caller: McpCaller, extra: Extra) => Promise<ToolAnswer>,
    ) =>
    async (args: A, extra: Extra): Promise<CallToolResult> => {
      const caller = callerOf(extra.authInfo);
      const actingUser = args.user_id ?? caller.actingUser ?? null;
      const record = (outcome: 'success' | 'failure' | 'denied', error?: string) =>
        deps.audit.record(caller.ctx, {
          action: 'mcp.tool_call',
          resourceType: 'mcp_tool',
          resourceId: tool,
          outcome,
          details: {
            tool,
            acting_user: actingUser,
            ...(caller.viaIssuer ? { via: 'trusted_issuer', issuer: caller.viaIssuer } : {}),
            ...(error ? { error } : {}),
          },
        });
      try {
        // An on-behalf-of session acts for its user only: another user does not exist for it.
        if (caller.onBehalfOf && args.user_id !== undefined && args.user_id !== caller.actingUser)
          throw commonError('not_found', { message: 'This on-behalf-of session acts for another user.' });
        const answer = await run(args, caller, extra);
        await record('success');
        return text(answer);
      } catch (error) {
        const known = error instanceof NexusError && error.expose ? error : undefined;
        if (known === undefined) deps.log?.(error, tool);
        const denied = known !== undefined && (known.status === 403 || known.status === 404);
        await record(denied ? 'denied' : 'failure', known?.code ?? 'internal_error');
        return text(
          known
            ? { error: known.code, message: known.message }
            : { error: 'internal_error', message: 'Internal error; the broker logged it.' },
          true,
        );
      }
    };

  server.registerTool(
    'list_connections',
    {
      title: 'List connections',
      description:
        "The connections this agent may use (the user's accounts at providers) and their status: pending, active, attention_required, expired, revoked or failed. No credentials.",
      inputSchema: {
        user_id: userIdArg.describe(
          'Only this user (workspace); defaults to the configured user, else every user the agent may act for',
        ),
        provider: z.string().min(1).max(64).optional().describe('Only connections to this provider (name)'),
      },
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    audited('list_connections', async (args, caller) => {
      const p = caller.principal;
      const user = args.user_id ?? caller.actingUser;
      const users: (string | undefined)[] =
        user !== undefined
          ? [user]
          : p.allowedWorkspaces.includes('*')
            ? [undefined]
            : p.allowedWorkspaces.slice(0, MAX_USERS);
      const connections: ToolAnswer[] = [];
      for (const workspaceId of users) {
        const page = await deps.connections.list({ workspaceId }, undefined, MAX_LISTED);
        for (const c of page.connections) {
          if (!deps.mayUse(p, c) || (args.provider !== undefined && c.provider_name !== args.provider))
            continue;
          connections.push({
            connection_id: c.id,
            user_id: c.workspace_id,
            provider: c.provider_name,
            status: c.status,
            scopes: c.scopes,
            access_expires_at: c.access_expires_at,
            updated_at: c.updated_at,
          });
          if (connections.length >= MAX_LISTED) break;
        }
      }
      return { connections };
    }),
  );

  server.registerTool(
    'connection_status',
    {
      title: 'Connection status',
      description: "One connection's status (pending, active, attention_required, expired, revoked, failed).",
      inputSchema: { connection_id: z.string().min(1).max(128).describe('The connection id') },
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    audited('connection_status', async (args: { connection_id: string; user_id?: undefined }, caller) =>
      deps.connections.check(caller.principal, args.connection_id),
    ),
  );

  connectTool(server, deps, audited);
  httpRequestTool(server, deps, audited);

  server.registerTool(
    'get_secret',
    {
      title: 'Get a user secret',
      description:
        "RETURNS A SECRET VALUE in clear text: one of a user's own secrets that an operator explicitly granted to this agent (by user, zone and name). Anything not granted is not found. Do not repeat the value to anyone; use it only for the task at hand.",
      inputSchema: {
        name: z
          .string()
          .regex(/^[A-Za-z0-9_.-]{1,128}$/)
          .describe('The secret name'),
        zone: z
          .string()
          .regex(/^[a-z0-9_-]{1,64}$/)
          .default('default')
          .describe('The zone (default "default")'),
        user_id: userIdArg,
      },
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    audited('get_secret', async (args: { name: string; zone: string; user_id?: string }, caller) => {
      const owner = { userId: requireUser(caller, args.user_id), zone: args.zone };
      // Only explicit grants: an on-behalf-of session alone does not hand a value to a model.
      if (!agentHoldsSecretGrant(caller.principal.allowedSecrets, owner, args.name))
        throw errorFrom(userSecretErrors, 'user_secret_not_found');
      return deps.userSecrets.read(caller.ctx, owner, args.name);
    }),
  );
}
