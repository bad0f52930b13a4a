import type { FastifyRequest } from 'fastify';
import { nulInBody } from './nul-text.ts';

/**
 * The content-type parser of a browser form (`application/x-www-form-urlencoded`) whose fields are
 * named once: each field's last value, a NUL refused (nul-text.ts). Registered in the scopes of
 * the hosted pages' posts only, so JSON routes never take form bodies.
 */
export function formFieldsParser(
  _request: FastifyRequest,
  body: string | Buffer,
  done: (error: Error | null, fields?: Record<string, string>) => void,
): void {
  const fields = Object.fromEntries(new URLSearchParams(String(body)));
  const refused = nulInBody(fields);
  if (refused === undefined) done(null, fields);
  else done(refused);
}
