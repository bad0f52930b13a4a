import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { type Readable, Transform } from 'node:stream';
import { commonError } from '../../errors/common.errors.ts';
import { errorFrom } from '../../errors/nexus-error.ts';
import { proxyErrors } from './proxy.errors.ts';
import type { ConnectionRef } from './proxy.ts';

/** How the proxy reads an agent's request and shapes what it forwards and returns. */

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);
/** Never forwarded upstream: the caller's own credentials for Nexus, and what the proxy sets itself. */
const CALLER_ONLY = new Set(['authorization', 'x-api-key', 'cookie', 'host', 'content-length', 'expect']);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** OAuth bodies up to this size are kept so a request refused with 401 can be sent again once. */
export const REPLAY_BUFFER_BYTES = 256 * 1024;

export const header = (headers: IncomingHttpHeaders, name: string) => {
  const value = headers[name];
  return typeof value === 'string' ? value : undefined;
};

/** The connection a request names: X-Nexus-Connection-ID, or X-Nexus-User-ID with the route's provider. */
export function connectionRefOf(headers: IncomingHttpHeaders, route: string): ConnectionRef {
  const id = header(headers, 'x-nexus-connection-id');
  if (id !== undefined) {
    if (!UUID.test(id))
      throw commonError('invalid_request', {
        message: 'X-Nexus-Connection-ID must be a connection id (UUID).',
      });
    return { connectionId: id };
  }
  const user = header(headers, 'x-nexus-user-id');
  if (user !== undefined && user.trim() !== '' && user.length <= 200)
    return { workspaceId: user.trim(), providerName: route };
  throw commonError('invalid_request', {
    message:
      "Name the connection: X-Nexus-Connection-ID, or X-Nexus-User-ID for that user's connection of the route's provider.",
  });
}

/** Splits `/<route>/<path>` (or takes the route from X-Nexus-Provider) and refuses dot segments. */
export function routeOf(
  rawPath: string,
  headers: IncomingHttpHeaders,
): { route: string; path: string; search: string } {
  const q = rawPath.indexOf('?');
  const pathname = q === -1 ? rawPath : rawPath.slice(0, q);
  const search = q === -1 ? '' : rawPath.slice(q);
  const named = header(headers, 'x-nexus-provider');
  let route: string;
  let path: string;
  if (named !== undefined) {
    route = named;
    path = pathname === '' ? '/' : pathname;
  } else {
    const slash = pathname.indexOf('/', 1);
    route = decodeURIComponent(slash === -1 ? pathname.slice(1) : pathname.slice(1, slash));
    path = slash === -1 ? '/' : pathname.slice(slash);
  }
  if (!/^[a-z0-9-]{1,64}$/.test(route))
    throw errorFrom(proxyErrors, 'unknown_route', {
      message: 'Name a route: /<route>/… or X-Nexus-Provider.',
    });
  for (const segment of path.split('/')) {
    const decoded = segment.replace(/%2e/gi, '.');
    if (decoded === '.' || decoded === '..' || /\\|%5c|%2f/i.test(segment))
      throw commonError('invalid_request', {
        message: 'The path may not contain dot segments, backslashes or encoded slashes.',
      });
  }
  return { route, path, search };
}

/** Joins a route's base URL and the caller's path; the result never leaves the base path. */
export function upstreamUrl(base: URL, path: string, search: string): URL {
  const basePath = base.pathname.replace(/\/$/, '');
  const url = new URL(`${base.origin}${basePath}${path}${search}`);
  if (url.origin !== base.origin || !`${url.pathname}/`.startsWith(`${basePath}/`))
    throw commonError('invalid_request', { message: "The path leaves the route's base URL." });
  return url;
}

export function forwardedHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const listed = new Set(
    (header(headers, 'connection') ?? '')
      .split(',')
      .map((t) => t.trim().toLowerCase())
      .filter(Boolean),
  );
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || CALLER_ONLY.has(name) || listed.has(name)) continue;
    if (name.startsWith('x-nexus-')) continue;
    out[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

export function responseHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const listed = new Set(
    (header(headers, 'connection') ?? '')
      .split(',')
      .map((t) => t.trim().toLowerCase())
      .filter(Boolean),
  );
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || listed.has(name)) continue;
    out[name] = value;
  }
  return out;
}

/** Reads a body whole, up to `limit` bytes (413 beyond). */
export async function buffer(body: Readable, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      body.destroy();
      throw commonError('payload_too_large', { message: `The request body is over ${limit} bytes.` });
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Passes a streamed body through, failing it once it grows past `limit` bytes. */
export function limited(limit: number): Transform {
  let size = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      size += chunk.length;
      if (size > limit)
        done(commonError('payload_too_large', { message: `The request body is over ${limit} bytes.` }));
      else done(null, chunk);
    },
  });
}
