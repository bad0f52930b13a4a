import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import * as z from 'zod';
import { errorFrom } from '../../errors/nexus-error.ts';
import { proxyErrors } from '../proxy/proxy.errors.ts';
import { ROUTE_NAME } from '../proxy/proxy-request.ts';
import type { Audited, McpToolDeps, ToolAnswer } from './mcp.types.ts';
import { requireUser, userIdArg } from './mcp.types.ts';

/** The most of an upstream answer a tool result carries; the rest is cut (`truncated: true`). */
export const MAX_RESULT_BYTES = 256 * 1024;
/**
 * The longest one call lasts, whatever the upstream does: within the 60 s MCP clients commonly wait
 * (the SDK's default), so the model gets what arrived rather than a timeout of its own.
 */
export const CALL_DEADLINE_MS = 45_000;
const MAX_BODY_CHARS = 1024 * 1024;
const DOT_SEGMENT = /(^|\/)(\.|%2e){1,2}(\/|$)/i;
// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing them is the point
const PATH = /^\/[^\s\\\u0000-\u001f\u007f]*$/;
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
/**
 * A header value the HTTP client sends as it is: tab, visible ASCII and Latin-1 letters (RFC 9110
 * §5.5 obs-text). No line break can start another header, nor a control character reach the
 * upstream; a character past U+00FF has no one-byte form and would make the proxy fail.
 */
const HEADER_VALUE = /^[\t\x20-\x7e\u00a0-\u00ff]*$/;

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
        // A route name never holds a dot: `..` would climb out of /proxy/ to another route.
        provider: z
          .string()
          .regex(ROUTE_NAME, 'a route name: lower-case letters, digits and dashes')
          .describe('The proxy route: a provider name with an API base URL, or a configured route'),
        path: z
          .string()
          .min(1)
          .max(4096)
          .regex(PATH, 'starts with / and contains no spaces, backslashes or control characters')
          // Dot segments (plain or percent-encoded) would climb out of the route's base path.
          .refine((p) => !DOT_SEGMENT.test(p.split('?')[0]!), 'no . or .. segments')
          .describe('Path below the route, with the query string: /user/repos?per_page=5'),
        method: z.enum(METHODS).default('GET'),
        headers: z
          .record(
            z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$/),
            z
              .string()
              .max(8192)
              .regex(HEADER_VALUE, 'no control characters (but tab) and no characters past U+00FF'),
          )
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
        extra,
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
        // The upstream request ends with the call: cancelled, its session closed, or at the deadline.
        const deadlineMs = deps.callDeadlineMs ?? CALL_DEADLINE_MS;
        const deadline = AbortSignal.timeout(deadlineMs);
        const signal = AbortSignal.any([extra.signal, deadline]);
        const answer = await deps
          .proxy(
            caller,
            { route: args.provider, path: args.path, method: args.method, headers, body: args.body },
            { maxBytes: MAX_RESULT_BYTES, signal },
          )
          .catch((error: unknown) => {
            if (!deadline.aborted || extra.signal.aborted) throw error;
            throw errorFrom(proxyErrors, 'upstream_timeout', {
              message: `The upstream did not answer within ${deadlineMs / 1000} s.`,
            });
          });
        const shown: Record<string, string> = {};
        for (const [name, value] of Object.entries(answer.headers))
          if (SHOWN.has(name) && value !== undefined) shown[name] = String(value);
        const { body: bytes } = answer;
        const textual = TEXTUAL.test(shown['content-type'] ?? 'text/plain');
        return {
          status: answer.status,
          headers: shown,
          ...(textual ? { body: bytes.toString('utf8') } : { body_base64: bytes.toString('base64') }),
          // Over MAX_RESULT_BYTES, or not all there at the deadline: the beginning only.
          truncated: !answer.complete,
          ...(refused.length > 0 ? { refused_headers: refused } : {}),
        };
      },
    ),
  );
}
