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

/** A proxy route's name: a provider's, lower-case letters, digits and dashes (never a dot). */
export const ROUTE_NAME = /^[a-z0-9-]{1,64}$/;

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
  // Origin-form only: `*` (OPTIONS) and absolute-form (`GET http://host/…`, as to a forward
  // proxy) name no path below a route (RFC 9112 §3.2).
  if (rawPath !== '' && !rawPath.startsWith('/'))
    throw commonError('invalid_request', {
      message: 'The request target must be a path (`/<route>/…`, or `/…` with X-Nexus-Provider).',
    });
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
  if (!ROUTE_NAME.test(route))
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
  const url = URL.parse(`${base.origin}${path === '' ? base.pathname : `${basePath}${path}`}${search}`);
  if (url === null)
    throw commonError('invalid_request', { message: 'The path and query make no valid URL.' });
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
    // Every `Proxy-*` header is meant for a proxy on the way, never for the upstream API.
    if (name.startsWith('x-nexus-') || name.startsWith('proxy-')) continue;
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

/** What the answer headers are cleaned of: the route's base, and the credential. */
export interface AnswerContext {
  base: URL;
  current: URL;
  publicPath: string;
  /** The query parameter the strategy put the credential in, if it did. */
  queryParam: string | undefined;
  secrets: readonly string[];
}

/**
 * The upstream's answer headers as the caller gets them: no hop-by-hop headers, nothing that would
 * act on the broker's origin (cookies, HSTS, CORS), and locations that neither carry the credential
 * nor point past the proxy: a location inside the route's base becomes the proxy's own path. When
 * the credential went in the query, no header value carries it back (a pagination `Link` built
 * from the request URL, say).
 */
export function responseHeaders(headers: IncomingHttpHeaders, context: AnswerContext): OutgoingHttpHeaders {
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
  // Only a credential in the query is echoed by headers that repeat the request URL; the forms
  // are worked out only then (the proxy's hot path has no query credential).
  const forms = context.queryParam === undefined ? undefined : credentialForms(context.secrets);
  const secrets = forms === undefined ? new Set<string>() : scrubbed(context.secrets);
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || listed.has(name) || UPSTREAM_ONLY.has(name)) continue;
    if (name.startsWith('access-control-')) continue;
    if (name === 'location' || name === 'content-location') {
      const first = Array.isArray(value) ? value[0] : value;
      if (first !== undefined) out[name] = location(first, context, forms);
      continue;
    }
    out[name] =
      forms === undefined
        ? value
        : Array.isArray(value)
          ? value.map((v) => withoutCredential(v, forms, secrets, context.queryParam))
          : withoutCredential(value, forms, secrets, context.queryParam);
  }
  return out;
}

/**
 * How a credential value may appear in an echoed URL or text: as it is, percent-encoded, and
 * form-encoded (`URLSearchParams`, as the query strategy writes it). Values under 4 characters
 * are left alone: removing them would mangle unrelated text and hide nothing.
 */
function credentialForms(secrets: readonly string[]): string[] {
  const forms = new Set<string>();
  for (const secret of secrets)
    if (secret.length >= 4)
      for (const form of [
        secret,
        encodeURIComponent(secret),
        new URLSearchParams({ v: secret }).toString().slice(2),
      ])
        forms.add(form);
  return [...forms];
}

const escaped = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The credential values looked for in answers: under 4 characters they would hide nothing. */
const scrubbed = (secrets: readonly string[]) => new Set(secrets.filter((s) => s.length >= 4));

/** A query value as it is and as the ways of decoding one read it (`+` as a space, or as itself). */
function decodings(raw: string): string[] {
  const out: string[] = [raw];
  for (const text of [raw, raw.replace(/\+/g, ' ')])
    try {
      out.push(decodeURIComponent(text));
    } catch {
      // Not percent-encoding: compared as it is below.
    }
  return out;
}

/**
 * `text` without the credential: a query pair whose value decodes to a credential, however it
 * was encoded (RFC 3986 leaving `/` alone, lower-case escapes), goes whole with one of its
 * separators (`?a=1&key=s&b=2` → `?a=1&b=2`); then any other occurrence of a form goes alone.
 */
function withoutCredential(
  text: string,
  forms: readonly string[],
  secrets: ReadonlySet<string>,
  param: string | undefined,
): string {
  let out = text.replace(/\?([^\s"'<>#]*)/g, (query: string, pairs: string) => {
    const kept = pairs.split('&').filter((pair) => {
      const eq = pair.indexOf('=');
      return eq === -1 || !decodings(pair.slice(eq + 1)).some((v) => secrets.has(v));
    });
    if (kept.length === pairs.split('&').length) return query;
    return kept.length === 0 ? '' : `?${kept.join('&')}`;
  });
  for (const form of forms) {
    if (!out.includes(form)) continue;
    if (param !== undefined) {
      const name = new URLSearchParams({ [param]: '' }).toString().slice(0, -1); // as the query has it
      const pair = new RegExp(`([?&])${escaped(name)}=${escaped(form)}(&?)`, 'g');
      out = out.replace(pair, (_pair, lead: string, tail: string) => (tail === '&' ? lead : ''));
    }
    out = out.split(form).join('');
  }
  return out;
}

function location(value: string, c: AnswerContext, forms: readonly string[] | undefined): string {
  const url = URL.parse(value, c.current.href);
  if (url === null) return '';
  if (c.queryParam !== undefined) url.searchParams.delete(c.queryParam);
  let text: string;
  if (insideBase(c.base, url)) {
    const basePath = c.base.pathname.replace(/\/$/, '');
    text = `${c.publicPath}${url.pathname.slice(basePath.length) || '/'}${url.search}${url.hash}`;
  } else text = url.href;
  // Whatever the upstream echoed, a credential value never goes back to the caller.
  return withoutCredential(text, forms ?? credentialForms(c.secrets), scrubbed(c.secrets), c.queryParam);
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

/** A streamed request body, limited in size. */
export interface LimitedBody extends Transform {
  /** Told of each chunk that passes (the exchange's idle deadline starts again), while set. */
  moved: (() => void) | undefined;
}

/** Passes a streamed body through, failing it once it grows past `limit` bytes. */
export function limited(limit: number): LimitedBody {
  let size = 0;
  const stream = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      stream.moved?.();
      size += chunk.length;
      if (size > limit)
        done(commonError('payload_too_large', { message: `The request body is over ${limit} bytes.` }));
      else done(null, chunk);
    },
  }) as LimitedBody;
  stream.moved = undefined;
  return stream;
}
