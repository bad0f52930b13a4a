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
export const nulRefused = (where?: 'URL' | 'body'): NexusError =>
  commonError('invalid_request', {
    message: `The request${where === undefined ? '' : ` ${where}`} holds a NUL character (U+0000), which no name, id or text here may contain.`,
  });

/** Whether a parsed body (strings, arrays, objects: what JSON and forms give) holds a NUL. */
export function holdsNul(value: unknown, depth = 0): boolean {
  if (typeof value === 'string') return value.includes('\0');
  if (typeof value !== 'object' || value === null || depth > 64) return false;
  if (Array.isArray(value)) return value.some((v) => holdsNul(v, depth + 1));
  for (const [key, v] of Object.entries(value)) if (key.includes('\0') || holdsNul(v, depth + 1)) return true;
  return false;
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
