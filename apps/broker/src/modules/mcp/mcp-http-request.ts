import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import * as z from 'zod';
import type { Audited, McpToolDeps, ToolAnswer } from './mcp.types.ts';
import { requireUser, userIdArg } from './mcp.types.ts';

/** The most of an upstream answer a tool result carries; the rest is cut (`truncated: true`). */
export const MAX_RESULT_BYTES = 256 * 1024;
const MAX_BODY_CHARS = 1024 * 1024;
const DOT_SEGMENT = /(^|\/)(\.|%2e){1,2}(\/|$)/i;
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;

/**
 * Headers a tool may not set: the caller's own credentials and the proxy's addressing headers
 * (the connection is named by the tool's arguments, which pass the grant check), and those the
 * transport computes. The proxy drops credentials again before forwarding; this keeps a model
 * from steering the proxy itself.
 */
const REFUSED =
  /^(authorization|proxy-authorization|x-api-key|cookie|host|content-length|transfer-encoding|connection|te|upgrade|expect|x-nexus-.*)$/i;

/** Upstream answer headers a result shows; everything else (cookies above all) stays out. */
const SHOWN = new Set(['content-type', 'location', 'retry-after', 'link', 'etag', 'last-modified']);

const TEXTUAL =
  /^(text\/|application\/([\w.+-]*\+)?(json|xml|x-www-form-urlencoded|javascript)|application\/problem)/i;

/**
 * `http_request`: one call to an upstream API through the credential proxy, as the agent: the
 * route's allow-list (one base URL per route), the grant on the connection, the egress guard,
 * refresh-and-retry on a 401 and the `proxy.request` audit event are all the proxy's. The
 * credential is applied inside the proxy; the result carries the upstream's status, a few safe
 * headers and the body (text, or base64 for binary), never the credential the proxy applied.
 */
export function httpRequestTool(server: McpServer, deps: McpToolDeps, audited: Audited): void {
  server.registerTool(
    'http_request',
    {
      title: 'Call a provider API',
      description:
        "Calls a provider's API with the user's connected account, through Nexus's credential proxy: Nexus adds the credential, you never see it. `provider` is the proxy route (the provider's name); `path` is below the route's base URL (with the query). The connection is `connection_id`, else the user's connection to that provider.",
      inputSchema: {
        provider: z
          .string()
          .regex(/^[A-Za-z0-9_.-]{1,64}$/)
          .describe('The proxy route: a provider name with an API base URL, or a configured route'),
        path: z
          .string()
          .min(1)
          .max(4096)
          .regex(/^\/[^\s\\]*$/, 'starts with / and contains no spaces or backslashes')
          // Dot segments (plain or percent-encoded) would climb out of the route's base path.
          .refine((p) => !DOT_SEGMENT.test(p.split('?')[0]!), 'no . or .. segments')
          .describe('Path below the route, with the query string: /user/repos?per_page=5'),
        method: z.enum(METHODS).default('GET'),
        headers: z
          .record(z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$/), z.string().max(8192))
          .refine((h) => Object.keys(h).length <= 50, 'at most 50 headers')
          .optional()
          .describe('Request headers (Authorization and X-Nexus-* are refused: Nexus adds the credential)'),
        body: z
          .string()
          .max(MAX_BODY_CHARS)
          .optional()
          .describe('Request body, as text (JSON: set content-type)'),
        connection_id: z.string().min(1).max(128).optional().describe('The connection to use'),
        user_id: userIdArg,
      },
      annotations: { readOnlyHint: false, destructiveHint: true, openWorldHint: true },
    },
    audited(
      'http_request',
      async (
        args: {
          provider: string;
          path: string;
          method: (typeof METHODS)[number];
          headers?: Record<string, string>;
          body?: string;
          connection_id?: string;
          user_id?: string;
        },
        caller,
      ): Promise<ToolAnswer> => {
        const headers: Record<string, string> = {};
        const refused: string[] = [];
        for (const [name, value] of Object.entries(args.headers ?? {})) {
          if (REFUSED.test(name)) refused.push(name.toLowerCase());
          else headers[name.toLowerCase()] = value;
        }
        if (args.connection_id !== undefined) {
          // The proxy checks the agent's grant; a caller pinned to one person reaches that person's
          // connections only (its principal is narrowed to them): another's is not found here.
          if (caller.onBehalfOf) await deps.connections.check(caller.principal, args.connection_id);
          headers['x-nexus-connection-id'] = args.connection_id;
        } else headers['x-nexus-user-id'] = requireUser(caller, args.user_id);
        if (args.body !== undefined && headers['content-type'] === undefined)
          headers['content-type'] = 'application/octet-stream';
        const answer = await deps.proxy(caller, {
          route: args.provider,
          path: args.path,
          method: args.method,
          headers,
          body: args.body,
        });
        const shown: Record<string, string> = {};
        for (const [name, value] of Object.entries(answer.headers))
          if (SHOWN.has(name) && value !== undefined) shown[name] = String(value);
        const truncated = answer.body.length > MAX_RESULT_BYTES;
        const bytes = truncated ? answer.body.subarray(0, MAX_RESULT_BYTES) : answer.body;
        const textual = TEXTUAL.test(shown['content-type'] ?? 'text/plain');
        return {
          status: answer.status,
          headers: shown,
          ...(textual ? { body: bytes.toString('utf8') } : { body_base64: bytes.toString('base64') }),
          truncated,
          ...(refused.length > 0 ? { refused_headers: refused } : {}),
        };
      },
    ),
  );
}
