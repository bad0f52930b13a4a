import type { FastifyInstance } from 'fastify';
import { commonError } from '../errors/common.errors.ts';
import type { NexusError } from '../errors/nexus-error.ts';
import { quickHook } from './quick-hook.ts';

/**
 * Text no name, id, URL or value the API stores or looks up may hold, refused at the edge before
 * anything is read or written, with the same answer on both databases (proxied requests go to
 * their upstream as they are):
 * - the NUL character (U+0000): PostgreSQL refuses it in `text` (a lookup or write would fail),
 *   SQLite would store it, and no legitimate identifier contains it. In the URL (path and query,
 *   `%00`), in JSON bodies (`\u0000`) and in form bodies;
 * - an unpaired UTF-16 surrogate (JSON's `\ud83d` without its other half): it has no UTF-8 form,
 *   so each database would store something else than was sent, and PostgreSQL refuses it in JSON
 *   (an audit batch holding one failed every event in it). Only JSON can carry one: URLs and
 *   forms decode invalid UTF-8 to U+FFFD.
 */
export const unstorableRefused = (
  where?: 'URL' | 'body',
  at?: { path: string; fault: TextFault },
): NexusError =>
  commonError('invalid_request', {
    message: `The request${where === undefined ? '' : ` ${where}`} holds ${at?.fault === 'surrogate' ? 'an unpaired UTF-16 surrogate (a lone \\uD800–\\uDFFF escape)' : 'a NUL character (U+0000)'}, which no name, id or text here may contain.`,
    ...(at === undefined ? {} : { details: [{ path: at.path, message: FAULTS[at.fault] }] }),
  });

export type TextFault = 'nul' | 'surrogate';
const FAULTS: Record<TextFault, string> = {
  nul: 'contains a NUL character (U+0000)',
  surrogate: 'contains an unpaired UTF-16 surrogate',
};

function faultOf(text: string): TextFault | undefined {
  if (text.includes('\0')) return 'nul';
  return text.isWellFormed() ? undefined : 'surrogate';
}

/**
 * Where a parsed body (strings, arrays, objects: what JSON and forms give) holds unstorable text,
 * as the path validation errors use (`body.credentials.api_key`); undefined when it holds none.
 */
export function unstorablePath(
  value: unknown,
  path = 'body',
  depth = 0,
): { path: string; fault: TextFault } | undefined {
  if (typeof value === 'string') {
    const fault = faultOf(value);
    return fault === undefined ? undefined : { path, fault };
  }
  if (typeof value !== 'object' || value === null || depth > 64) return undefined;
  const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v] as const) : Object.entries(value);
  for (const [key, v] of entries) {
    const at = `${path}.${key.replaceAll('\0', '\\u0000').toWellFormed().slice(0, 64)}`;
    const fault = faultOf(key);
    if (fault !== undefined) return { path: at, fault };
    const found = unstorablePath(v, at, depth + 1);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** The refusal of a parsed body that holds unstorable text, naming where; undefined when none. */
export function unstorableInBody(value: unknown): NexusError | undefined {
  const at = unstorablePath(value);
  return at === undefined ? undefined : unstorableRefused('body', at);
}

/**
 * Whether a raw JSON body may hold unstorable text once parsed: a `\u0000` escape, or a surrogate
 * escape (`\uD800`–`\uDFFF`, paired or not). Only such bodies are walked.
 */
export const mayHoldUnstorable = (json: string): boolean => /\\u(?:0000|[dD][89a-fA-F])/.test(json);

/** Refuses a URL holding `%00` on every route but `passThrough` (the proxies' routes). */
export function installNulRefusal(app: FastifyInstance, passThrough: ReadonlySet<string>): void {
  app.addHook(
    'onRequest',
    quickHook((request) => {
      if (!request.url.includes('%00') || passThrough.has(request.routeOptions.url ?? '')) return undefined;
      throw unstorableRefused('URL');
    }),
  );
}
