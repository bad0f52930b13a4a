import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import * as z from 'zod';
import { auditContext } from '../../http/context.ts';
import { rejection } from '../../http/error-handler.ts';
import { formFieldsParser } from '../../http/form-body.ts';
import { errorResponses } from '../../http/schemas.ts';
import type { Brand } from '../consent/brand.ts';
import { connectionConfig } from '../consent/connection-config.schema.ts';
import { verifyField } from '../consent/verify.schema.ts';
import type { ConnectOutcome } from './connect.outcome.ts';
import { connectPageHeaders, FINISH_SCRIPT, finishPage, messagePage, offerPage } from './connect.page.ts';
import type { ConnectService } from './connect.service.ts';

const providerRef = z.string().min(1).max(64);
const token = z.string().max(256);

export function connectRoutes(app: FastifyInstance, deps: { connect: ConnectService; brand: Brand }): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { connect, brand } = deps;

  r.post(
    '/v1/connect-sessions',
    {
      config: { auth: 'agent' },
      schema: {
        operationId: 'createConnectSession',
        tags: ['agent API'],
        summary:
          'A hosted connect page for one user: a short-lived, single-use URL listing the providers to connect',
        description:
          "Same authentication, grants and return_url rules as request-connection. Open `url` in the user's browser (or a popup, with `@nexus-broker/connect`): the user picks a provider, consents or types the credentials, sees the outcome, and returns to `return_url` with `status=success&connection_id=…` or `status=failed&error=<code>`. The token is stored hashed; picking a provider uses the session up.",
        body: z
          .object({
            user_id: z
              .string()
              .trim()
              .min(1)
              .max(200)
              .describe('The user (workspace) the connection will belong to'),
            providers: z
              .array(providerRef)
              .min(1)
              .max(50)
              .optional()
              .describe(
                'Provider ids, names or aliases to offer; absent: every provider the caller may connect',
              ),
            return_url: z
              .url({ protocol: /^https?$/ })
              .max(2048)
              .describe('Where the user goes back to; must be on ALLOWED_RETURN_DOMAINS'),
            connection_config: connectionConfig.optional(),
            verify: verifyField,
          })
          .strict(),
        response: {
          201: z.object({
            id: z.string(),
            url: z.string().describe("Open it in the user's browser; it works once, until expires_at"),
            token: z.string().describe('The capability inside `url` (stored hashed; shown only here)'),
            expires_at: z.string(),
            providers: z
              .array(z.object({ id: z.string(), name: z.string() }))
              .describe('What the page offers'),
          }),
          ...errorResponses(404, 413),
        },
      },
    },
    async (request, reply) => {
      const b = request.body;
      const created = await connect.create(auditContext(request), request.principal, {
        workspaceId: b.user_id,
        providers: b.providers,
        returnUrl: b.return_url,
        connectionConfig: b.connection_config,
        verify: b.verify,
      });
      return reply.status(201).send(created);
    },
  );

  const html = (
    reply: FastifyReply,
    status: number,
    nonce: string,
    page: string,
    withScript = false,
    formAction?: string,
  ) =>
    reply
      .status(status)
      .headers(connectPageHeaders(nonce, brand, withScript, formAction))
      .type('text/html; charset=utf-8')
      .send(page);
  const nonceOf = () => randomBytes(16).toString('base64');
  const unknown = (reply: FastifyReply, nonce: string) =>
    html(
      reply,
      404,
      nonce,
      messagePage(
        nonce,
        brand,
        'This link is not valid',
        'It is damaged or was not issued by this service. Go back to the application and start again.',
      ),
    );
  const finished = (reply: FastifyReply, nonce: string, outcome: ConnectOutcome) => {
    if (outcome.status === 'failed' && outcome.detail !== undefined)
      reply.log.warn({ error: outcome.error, cause: outcome.detail }, 'connect session ended');
    return html(reply, 200, nonce, finishPage(nonce, brand, outcome), true);
  };

  r.get(
    '/connect/session',
    // A page a person opens from a link: parameters a mail or chat client adds (utm_*, fbclid)
    // are ignored, not answered with a JSON error.
    { config: { auth: 'public' }, schema: { hide: true, querystring: z.object({ token }) } },
    async (request, reply) => {
      const nonce = nonceOf();
      const view = await connect.view(request.query.token);
      if (view.kind === 'unknown') return unknown(reply, nonce);
      if (view.kind === 'expired') return finished(reply, nonce, view.outcome);
      return html(
        reply,
        200,
        nonce,
        offerPage(nonce, brand, {
          token: request.query.token,
          sessionId: view.session.id,
          providers: view.providers,
        }),
        false,
        "'self'",
      );
    },
  );

  r.get(
    '/connect/session/pick',
    {
      config: { auth: 'public' },
      schema: { hide: true, querystring: z.object({ token, provider: providerRef }) },
    },
    async (request, reply) => {
      const nonce = nonceOf();
      const picked = await connect.pick(auditContext(request), request.query.token, request.query.provider);
      if (picked.kind === 'redirect') return reply.redirect(picked.location, 303);
      if (picked.kind === 'finished') return finished(reply, nonce, picked.outcome);
      if (picked.kind === 'not_offered')
        return html(
          reply,
          404,
          nonce,
          messagePage(nonce, brand, 'Not offered', 'This link does not offer that provider.'),
        );
      return unknown(reply, nonce);
    },
  );

  // The offer page's cancel button: a form post (a link could be followed by a prefetcher).
  app.register(async (scope) => {
    scope.addContentTypeParser(
      'application/x-www-form-urlencoded',
      { parseAs: 'string', bodyLimit: 4096 },
      formFieldsParser,
    );
    scope.setErrorHandler((error, request, reply) => {
      const e = rejection(request, error);
      const nonce = nonceOf();
      const title = e.code === 'rate_limited' ? 'Too many attempts' : 'Could not cancel';
      const text = e.expose ? e.message : 'Try again later, or close this window.';
      return html(reply, e.status, nonce, messagePage(nonce, brand, title, text));
    });
    scope
      .withTypeProvider<ZodTypeProvider>()
      .post(
        '/connect/session/cancel',
        { config: { auth: 'public' }, schema: { hide: true, body: z.object({ token }).strict() } },
        async (request, reply) => {
          const cancelled = await connect.cancel(request.body.token);
          if (cancelled.kind === 'unknown') return unknown(reply, nonceOf());
          return reply.redirect(cancelled.location, 303);
        },
      );
  });

  r.get(
    '/connect/finish',
    {
      config: { auth: 'public' },
      schema: {
        hide: true,
        // What the consent callback appends (status, connection_id, provider, error); only `error` is read.
        querystring: z.looseObject({ session: z.string().max(64), error: z.string().max(256).optional() }),
      },
    },
    async (request, reply) => {
      const nonce = nonceOf();
      const outcome = await connect.finish(request.query.session, request.query.error);
      if (outcome === undefined) return unknown(reply, nonce);
      return finished(reply, nonce, outcome);
    },
  );

  r.get(
    '/connect/assets/finish.js',
    { config: { auth: 'public' }, schema: { hide: true } },
    (_request, reply) => reply.type('text/javascript; charset=utf-8').send(FINISH_SCRIPT),
  );
}
