import type { FastifyInstance } from 'fastify';
import { commonError } from '../errors/common.errors.ts';
import { mayHoldUnstorable, unstorableInBody } from './unstorable-text.ts';

/**
 * How deep a JSON body may nest. The deepest body the API defines is a few levels (a user-secrets
 * `config` to resolve may hold 16); code that walks a value recursively (validation, serialisation,
 * a YAML export of what was stored) overflows its stack a few thousand levels down, and a body of
 * 36 KB reaches 6,000. Refused before parsing, so no such value is ever built.
 */
export const MAX_JSON_DEPTH = 32;

/** Whether `text` (JSON, or anything) opens more than `max` arrays or objects inside each other. */
export function nestedDeeperThan(text: string, max: number): boolean {
  // Not enough characters to open max + 1 levels: nothing to scan.
  if (text.length <= max) return false;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      // A backslash: the next character is escaped.
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return true;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return false;
}

/**
 * Replaces the JSON body parser with one that refuses bodies nested deeper than MAX_JSON_DEPTH
 * and bodies holding a NUL character (400 `invalid_request`, unstorable-text.ts), and otherwise is
 * Fastify's own (prototype-poisoning keys refused).
 * Every route that takes JSON gets it, in every scope that does not replace it.
 */
export function installJsonBodyParser(app: FastifyInstance): void {
  const parse = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, raw, done) => {
    const body = raw as string;
    if (nestedDeeperThan(body, MAX_JSON_DEPTH))
      return done(
        commonError('invalid_request', {
          message: `The JSON body is nested too deeply (at most ${MAX_JSON_DEPTH} levels of objects and arrays).`,
        }),
        undefined,
      );
    // `\u0000` is the only way JSON writes a NUL (a raw one is not valid JSON), and a `\uD8xx`
    // escape the only way it writes a lone surrogate: only a body holding such text is walked.
    if (!mayHoldUnstorable(body)) return parse(request, body, done);
    parse(request, body, (error, value) => {
      const refused = error === null ? unstorableInBody(value) : undefined;
      if (refused !== undefined) return done(refused, undefined);
      done(error, value);
    });
  });
}
