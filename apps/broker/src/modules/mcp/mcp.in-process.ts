import type { Readable } from 'node:stream';
import type { FastifyInstance, LightMyRequestResponse as InjectResponse } from 'fastify';
import { commonError } from '../../errors/common.errors.ts';
import { NexusError } from '../../errors/nexus-error.ts';
import type { McpCaller } from './mcp.caller.ts';
import type { ConnectCall, ProxyCall } from './mcp.types.ts';

/**
 * The tools whose REST twin carries limits of its own call that very route in process, as the
 * agent: `http_request` is `/proxy/*` (allow-list, grant check, egress guard, the `token` rate
 * limit, refresh-and-retry, `proxy.request` audit), `connect` is `POST /v1/request-connection` (grant
 * checks, the `request_connection` rate limit, `connection.requested` audit). Whatever those routes
 * enforce applies to the tools unchanged, and counts against the same buckets for the same agent.
 * The agent's token authenticates the inner request; the proxy never forwards it upstream.
 */

/** The inner request's own headers: the agent's token (in-process only) and who calls. */
const asAgent = async (caller: McpCaller) => ({
  authorization: `Bearer ${await caller.proxyToken()}`,
  'user-agent': 'nexus-mcp',
});

/**
 * Ends an in-process answer. The /proxy reply pipes the upstream body into it and pauses while
 * nobody reads: ending the response (`raw.res`) is what that reply sees as its client leaving, and
 * Fastify then destroys the upstream body, which ends the upstream request and frees its pooled
 * socket. Without it, every answer left unread would hold a socket of the route's pool for good.
 */
function release(res: InjectResponse): void {
  res.stream().destroy();
  res.raw.res.destroy();
}

/**
 * Waits for `pending` unless `signal` aborts first (or had already); an answer that arrives after
 * is released.
 */
async function until(pending: Promise<InjectResponse>, signal: AbortSignal): Promise<InjectResponse> {
  if (signal.aborted) {
    void pending.then(release, () => {});
    throw signal.reason;
  }
  const { promise, reject } = Promise.withResolvers<never>();
  const onAbort = () => reject(signal.reason);
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    return await Promise.race([pending, promise]);
  } catch (error) {
    void pending.then(release, () => {});
    throw error;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/**
 * Reads at most `max` bytes of `stream`, stopping early when `signal` aborts or the stream breaks:
 * what arrived, and whether it is all there was.
 */
async function readBounded(stream: Readable, max: number, signal: AbortSignal) {
  const chunks: Buffer[] = [];
  let size = 0;
  let complete = false;
  const stop = () => stream.destroy();
  signal.addEventListener('abort', stop, { once: true });
  try {
    if (!signal.aborted) {
      for await (const chunk of stream) {
        chunks.push(chunk as Buffer);
        size += (chunk as Buffer).length;
        if (size > max) break;
      }
      complete = size <= max;
    }
  } catch {
    // Aborted, or the upstream broke off: the beginning is all there is.
  } finally {
    signal.removeEventListener('abort', stop);
  }
  return { body: Buffer.concat(chunks).subarray(0, max), complete };
}

/** `http_request`'s way to the credential proxy: `/proxy/<route><path>` in process. */
export function inProcessProxy(app: FastifyInstance): ProxyCall {
  return async (caller, r, { maxBytes, signal }) => {
    const url = `/proxy/${encodeURIComponent(r.route)}${r.path}`;
    // The in-process request is the agent's, with its token: it goes to that route of the proxy
    // and nowhere else, whatever URL normalisation (dot segments) would make of it.
    if (!new URL(url, 'http://in-process').pathname.startsWith(`/proxy/${r.route}/`))
      throw commonError('invalid_request', { message: 'The path leaves the proxy route.' });
    const headers = { ...r.headers, ...(await asAgent(caller)) };
    // A call cancelled before it starts sends nothing.
    signal.throwIfAborted();
    const pending = app.inject({
      method: r.method,
      url,
      headers,
      ...(r.body === undefined ? {} : { payload: r.body }),
      remoteAddress: caller.ip,
      payloadAsStream: true,
    });
    const res = await until(pending, signal);
    try {
      const { body, complete } = await readBounded(res.stream(), maxBytes, signal);
      return { status: res.statusCode, headers: res.headers, body, complete };
    } finally {
      release(res);
    }
  };
}

function parsed(text: string): Record<string, unknown> {
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    return {};
  }
}

/**
 * `connect`'s way to consent: `POST /v1/request-connection` in process. A refusal (429 included,
 * with its Retry-After in the message) comes back as the route's own error.
 */
export function inProcessConnect(app: FastifyInstance): ConnectCall {
  return async (caller, r) => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/request-connection',
      headers: await asAgent(caller),
      payload: {
        user_id: r.userId,
        provider_name: r.provider,
        ...(r.scopes === undefined ? {} : { scopes: r.scopes }),
        return_url: r.returnUrl,
        action: 'mcp:connect',
      },
      remoteAddress: caller.ip,
    });
    const body = parsed(res.body);
    const { connection_id, authUrl } = body;
    if (res.statusCode === 200 && typeof connection_id === 'string' && typeof authUrl === 'string')
      return { connection_id, authUrl };
    // The route logged a failure of its own already; a 500 stays unexposed (`expose` is false).
    const status = res.statusCode === 200 ? 500 : res.statusCode;
    throw new NexusError(String(body.error ?? 'internal_error'), status, String(body.message ?? ''), {
      details: body.details,
    });
  };
}
