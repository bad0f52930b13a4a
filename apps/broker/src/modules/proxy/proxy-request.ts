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

/**
 * Splits `/<route>/<path>` (or takes the route from X-Nexus-Provider) and refuses dot segments.
 * `mount` is the part of the caller's path that stands for the route's base URL.
 */
export function routeOf(
  rawPath: string,
  headers: IncomingHttpHeaders,
): { route: string; path: string; search: string; mount: string } {
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
    const raw = slash === -1 ? pathname.slice(1) : pathname.slice(1, slash);
    // Route names are plain (letters, digits, dashes): no escape is ever needed, and a bad one is no route.
    route = /%/.test(raw) ? '' : raw;
    path = slash === -1 ? '/' : pathname.slice(slash);
  }
  if (!/^[a-z0-9-]{1,64}$/.test(route))
    throw errorFrom(proxyErrors, 'unknown_route', {
      message: 'Name a route: /<route>/… or X-Nexus-Provider.',
    });
  for (const segment of path.split('/')) {
    const decoded = segment.replace(/%2e/gi, '.');
    if (decoded === '.' || decoded === '..' || /\\|%5c|%2f|%25(2e|2f|5c)|;/i.test(segment))
      throw commonError('invalid_request', {
        message:
          'The path may not contain dot segments, backslashes, encoded slashes, double-encoded escapes or `;` (path parameters).',
      });
  }
  return { route, path, search, mount: named !== undefined ? '' : `/${route}` };
}

/**
 * Joins a route's base URL and the caller's path; the result never leaves the base path. An empty
 * path is the base URL itself, trailing slash kept (the MCP gateway's endpoint).
 */
export function upstreamUrl(base: URL, path: string, search: string): URL {
  const basePath = base.pathname.replace(/\/$/, '');
  const url = new URL(`${base.origin}${path === '' ? base.pathname : `${basePath}${path}`}${search}`);
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

/** Upstream answer headers that would act on the broker's own origin, never passed back. */
const UPSTREAM_ONLY = new Set(['set-cookie', 'strict-transport-security', 'alt-svc', 'public-key-pins']);

/** Whether `url` is on the route's origin and inside its base path. */
export function insideBase(base: URL, url: URL): boolean {
  const basePath = base.pathname.replace(/\/$/, '');
  return url.origin === base.origin && `${url.pathname}/`.startsWith(`${basePath}/`);
}

/**
 * The upstream's answer headers as the caller gets them: no hop-by-hop headers, nothing that would
 * act on the broker's origin (cookies, HSTS, CORS), and locations that neither carry the credential
 * nor point past the proxy: a location inside the route's base becomes the proxy's own path.
 */
export function responseHeaders(
  headers: IncomingHttpHeaders,
  context: {
    base: URL;
    current: URL;
    publicPath: string;
    queryParam: string | undefined;
    secrets: readonly string[];
  },
): OutgoingHttpHeaders {
  // A header the upstream repeated arrives as an array (undici keeps every value): `Connection`
  // lists are joined, and only the first location is kept, rewritten and cleaned, as Node's own
  // HTTP client would keep it. An array never passes through uncleaned.
  const connection = headers.connection;
  const listed = new Set(
    (Array.isArray(connection) ? connection.join(',') : (connection ?? ''))
      .split(',')
      .map((t) => t.trim().toLowerCase())
      .filter(Boolean),
  );
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || listed.has(name) || UPSTREAM_ONLY.has(name)) continue;
    if (name.startsWith('access-control-')) continue;
    if (name === 'location' || name === 'content-location') {
      const first = Array.isArray(value) ? value[0] : value;
      if (first !== undefined) out[name] = location(first, context);
      continue;
    }
    out[name] = value;
  }
  return out;
}

function location(
  value: string,
  c: {
    base: URL;
    current: URL;
    publicPath: string;
    queryParam: string | undefined;
    secrets: readonly string[];
  },
): string {
  const url = URL.parse(value, c.current.href);
  if (url === null) return '';
  if (c.queryParam !== undefined) url.searchParams.delete(c.queryParam);
  let text: string;
  if (insideBase(c.base, url)) {
    const basePath = c.base.pathname.replace(/\/$/, '');
    text = `${c.publicPath}${url.pathname.slice(basePath.length) || '/'}${url.search}${url.hash}`;
  } else text = url.href;
  // Whatever the upstream echoed, a credential value never goes back to the caller.
  for (const secret of c.secrets)
    if (secret.length >= 4)
      for (const form of [secret, encodeURIComponent(secret)]) text = text.split(form).join('');
  return text;
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

/** A streamed request body with its idle deadline, which ends when the answer starts. */
export interface LimitedBody extends Transform {
  /** The upstream's answer has started: the rest of the upload has no deadline, like the answer. */
  answered(): void;
}

/**
 * Passes a streamed body through, failing it once it grows past `limit` bytes, or with
 * `upstream_timeout` when the caller sends nothing for `idleMs` before the end or the answer:
 * the upstream client's own deadline does not run while a request is still being written.
 */
export function limited(limit: number, idleMs: number): LimitedBody {
  let size = 0;
  let timer: NodeJS.Timeout | undefined;
  const stream = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      timer?.refresh();
      size += chunk.length;
      if (size > limit)
        done(commonError('payload_too_large', { message: `The request body is over ${limit} bytes.` }));
      else done(null, chunk);
    },
    flush(done) {
      clearTimeout(timer);
      done();
    },
    destroy(error, done) {
      clearTimeout(timer);
      done(error);
    },
  });
  timer = setTimeout(() => stream.destroy(errorFrom(proxyErrors, 'upstream_timeout')), idleMs);
  timer.unref();
  return Object.assign(stream, { answered: () => clearTimeout(timer) });
}
