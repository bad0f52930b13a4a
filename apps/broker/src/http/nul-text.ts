import type { FastifyInstance } from 'fastify';
import { commonError } from '../errors/common.errors.ts';
import type { NexusError } from '../errors/nexus-error.ts';
import { quickHook } from './quick-hook.ts';

/**
 * The NUL character (U+0000) in a request's text. No name, id, URL or value the API stores or
 * looks up may hold one: PostgreSQL refuses it in `text` (a lookup or write would fail), SQLite
 * would store it, and no legitimate identifier contains it. It is refused at the edge, before
 * anything is read or written, with the same answer on both databases: in the URL (path and query,
 * `%00`), in JSON bodies (`\u0000`) and in form bodies. Proxied requests go to their upstream as
 * they are.
 */
export const nulRefused = (where?: 'URL' | 'body', path?: string): NexusError =>
  commonError('invalid_request', {
    message: `The request${where === undefined ? '' : ` ${where}`} holds a NUL character (U+0000), which no name, id or text here may contain.`,
    ...(path === undefined ? {} : { details: [{ path, message: 'contains a NUL character (U+0000)' }] }),
  });

/**
 * Where a parsed body (strings, arrays, objects: what JSON and forms give) holds a NUL, as the
 * path validation errors use (`body.credentials.api_key`); undefined when it holds none.
 */
export function nulPath(value: unknown, path = 'body', depth = 0): string | undefined {
  if (typeof value === 'string') return value.includes('\0') ? path : undefined;
  if (typeof value !== 'object' || value === null || depth > 64) return undefined;
  const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v] as const) : Object.entries(value);
  for (const [key, v] of entries) {
    const at = `${path}.${key.replaceAll('\0', '\\u0000').slice(0, 64)}`;
    if (key.includes('\0')) return at;
    const found = nulPath(v, at, depth + 1);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** The refusal of a parsed body that holds a NUL, naming where; undefined when it holds none. */
export function nulInBody(value: unknown): NexusError | undefined {
  const path = nulPath(value);
  return path === undefined ? undefined : nulRefused('body', path);
}

/** Refuses a URL holding `%00` on every route but `passThrough` (the proxies' routes). */
export function installNulRefusal(app: FastifyInstance, passThrough: ReadonlySet<string>): void {
  app.addHook(
    'onRequest',
    quickHook((request) => {
      if (!request.url.includes('%00') || passThrough.has(request.routeOptions.url ?? '')) return undefined;
      throw nulRefused('URL');
    }),
  );
}
