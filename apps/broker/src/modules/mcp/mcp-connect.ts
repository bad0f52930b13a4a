import { setTimeout as sleep } from 'node:timers/promises';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { ElicitResultSchema } from '@modelcontextprotocol/sdk/types.js';
import * as z from 'zod';
import type { Audited, Extra, McpToolDeps, ToolAnswer } from './mcp.types.ts';
import { requireUser, userIdArg } from './mcp.types.ts';

/** The longest `connect` waits for the person to finish, whatever the tool asks. */
export const MAX_WAIT_SECONDS = 120;
const DEFAULT_POLL_MS = 1_000;

/**
 * `connect`: starts a connection for the user the agent acts for (`POST /v1/request-connection`,
 * in process: same grant checks, rate limit and audit event) and brings the link to the
 * person. With a client that declared URL-mode elicitation (MCP 2025-11-25 and later), the link is
 * sent to the client as an elicitation and never shown to the model; otherwise it is in the result
 * for the model to pass on. With `wait_seconds`, the tool then reads the status until the
 * connection leaves `pending` (bounded by MAX_WAIT_SECONDS and by the client cancelling).
 */
export function connectTool(server: McpServer, deps: McpToolDeps, audited: Audited): void {
  const pollMs = deps.pollMs ?? DEFAULT_POLL_MS;

  /** Sends the link as a URL elicitation; the person's answer, or undefined when it could not be asked. */
  async function elicit(extra: Extra, connectionId: string, provider: string, url: string, waitMs: number) {
    if (server.server.getClientCapabilities()?.elicitation?.url === undefined) return undefined;
    try {
      const result = await extra.sendRequest(
        {
          method: 'elicitation/create',
          params: {
            mode: 'url',
            elicitationId: connectionId,
            url,
            message: `Connect your ${provider} account: open this link and sign in.`,
          },
        },
        ElicitResultSchema,
        { timeout: Math.max(waitMs, 60_000), signal: extra.signal },
      );
      return result.action;
    } catch {
      return undefined;
    }
  }

  async function waitWhilePending(extra: Extra, check: () => Promise<string>, waitMs: number) {
    const deadline = Date.now() + waitMs;
    let status = await check();
    while (status === 'pending' && Date.now() < deadline && !extra.signal.aborted) {
      try {
        await sleep(Math.min(pollMs, Math.max(0, deadline - Date.now())), undefined, {
          signal: extra.signal,
        });
      } catch {
        break; // cancelled by the client
      }
      status = await check();
    }
    return status;
  }

  server.registerTool(
    'connect',
    {
      title: 'Connect an account',
      description:
        "Starts connecting the user's account at a provider and brings the person a link to sign in (by elicitation when the client supports it, otherwise the link is in the result: show it to the person). With wait_seconds, waits until the connection is no longer pending. The agent never receives the account's credentials.",
      inputSchema: {
        provider: z.string().min(1).max(64).describe('The provider (name or alias)'),
        user_id: userIdArg,
        scopes: z
          .array(
            z
              .string()
              .min(1)
              .max(256)
              .regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/),
          )
          .max(100)
          .optional()
          .describe("Scopes to ask for; the provider's defaults when absent"),
        return_url: z
          .url({ protocol: /^https?$/ })
          .max(2048)
          .optional()
          .describe('Where the person lands afterwards (must be an allowed return domain)'),
        wait_seconds: z
          .number()
          .int()
          .min(0)
          .max(MAX_WAIT_SECONDS)
          .default(0)
          .describe(
            `Wait up to this many seconds (at most ${MAX_WAIT_SECONDS}) for the connection to become active`,
          ),
      },
      annotations: {
        readOnlyHint: false,
        destructiveHint: false,
        idempotentHint: false,
        openWorldHint: true,
      },
    },
    audited(
      'connect',
      async (
        args: {
          provider: string;
          user_id?: string;
          scopes?: string[];
          return_url?: string;
          wait_seconds: number;
        },
        caller,
        extra,
      ): Promise<ToolAnswer> => {
        // As POST /v1/request-connection, through it: its rate limit counts this call too.
        const started = await deps.startConnection(caller, {
          userId: requireUser(caller, args.user_id),
          provider: args.provider,
          scopes: args.scopes,
          returnUrl: args.return_url ?? deps.defaultReturnUrl,
        });
        const waitMs = args.wait_seconds * 1000;
        const action = await elicit(extra, started.connection_id, args.provider, started.authUrl, waitMs);
        const check = async () =>
          (await deps.connections.check(caller.principal, started.connection_id)).status as string;
        const status =
          waitMs > 0 && action !== 'decline' && action !== 'cancel'
            ? await waitWhilePending(extra, check, waitMs)
            : 'pending';
        if (status === 'active' && action !== undefined)
          await server.server
            .createElicitationCompletionNotifier(started.connection_id, {
              relatedRequestId: extra.requestId,
            })()
            .catch(() => undefined);
        return {
          connection_id: started.connection_id,
          provider: args.provider,
          status,
          ...(action === undefined
            ? {
                authorization_url: started.authUrl,
                next_step: 'Show this link to the person; they open it to connect their account.',
              }
            : { elicitation: action }),
        };
      },
    ),
  );
}
