import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ProxyResult } from './proxy.ts';

/**
 * The upstream's answer, relayed as it is (status, headers, streamed body), but for the headers
 * in `withheld` (lower-case names).
 */
export function sendUpstream(
  reply: FastifyReply,
  result: ProxyResult,
  withheld: ReadonlySet<string> = new Set(),
): FastifyReply {
  reply.code(result.status);
  for (const [name, value] of Object.entries(result.headers))
    if (value !== undefined && !withheld.has(name)) reply.header(name, value);
  return reply.send(result.body);
}

/**
 * Registers routes whose bodies are streamed to the upstream, never parsed: their scope has no
 * content-type parsers.
 */
export function withUnparsedBodies(app: FastifyInstance, routes: (scope: FastifyInstance) => void): void {
  app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_request, _payload, done) => done(null));
    routes(scope);
  });
}
