import type { FastifyRequest } from 'fastify';
import { unstorableInBody } from './unstorable-text.ts';

/**
 * The content-type parser of a browser form (`application/x-www-form-urlencoded`) whose fields are
 * named once: each field's last value, a NUL refused (unstorable-text.ts). Registered in the scopes of
 * the hosted pages' posts only, so JSON routes never take form bodies.
 */
export function formFieldsParser(
  _request: FastifyRequest,
  body: string | Buffer,
  done: (error: Error | null, fields?: Record<string, string>) => void,
): void {
  const fields = Object.fromEntries(new URLSearchParams(String(body)));
  const refused = unstorableInBody(fields);
  if (refused === undefined) done(null, fields);
  else done(refused);
}
