import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import * as z from 'zod';
import { VERSION } from '../../version.ts';

const DOCS = '/docs';
const about = z.object({
  name: z.literal('nexus'),
  version: z.string(),
  docs: z.string().describe('Path of the API reference (its OpenAPI document is /openapi.json)'),
});

// Static, no script and no style: the CSP can forbid everything but following the link.
const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Nexus ${VERSION}</title>
</head>
<body>
<h1>Nexus ${VERSION}</h1>
<p>A credential broker for AI agents. This address serves its API.</p>
<p>The API reference is at <a href="${DOCS}">${DOCS}</a> (on the admin port when ADMIN_PORT is set).</p>
<p>Operators sign in to the console at <a href="/console">/console</a> with an admin key (also on the admin port when ADMIN_PORT is set).</p>
</body>
</html>
`;

const CSP = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** JSON only when the client asks for it and does not prefer HTML (a browser lists text/html). */
function wantsJson(request: FastifyRequest): boolean {
  const accept = request.headers.accept ?? '';
  return /\bapplication\/json\b/i.test(accept) && !/\btext\/html\b/i.test(accept);
}

/**
 * `GET /`: what someone who opens the broker's address finds. A page pointing at the API
 * reference for a browser, `{name, version, docs}` for a client that asks for JSON. Public: it
 * says nothing the OpenAPI document does not. Not cached, so the version is the running one.
 */
export function homeRoute(app: FastifyInstance): void {
  app.withTypeProvider<ZodTypeProvider>().get(
    '/',
    {
      config: { auth: 'public' },
      schema: {
        operationId: 'home',
        tags: ['operations'],
        summary: 'A page linking the API reference; {name, version, docs} with Accept: application/json',
        response: {
          200: {
            description: 'HTML for browsers; JSON when asked for with Accept: application/json',
            content: {
              'application/json': { schema: about },
              'text/html': { schema: z.string() },
            },
          },
        },
      },
    },
    async (request, reply) => {
      reply.header('cache-control', 'no-store').header('vary', 'accept');
      if (wantsJson(request))
        return reply.type('application/json').send({ name: 'nexus' as const, version: VERSION, docs: DOCS });
      return reply
        .header('content-security-policy', CSP)
        .header('referrer-policy', 'no-referrer')
        .type('text/html; charset=utf-8')
        .send(PAGE);
    },
  );
}
