import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import * as z from 'zod';
import { NexusError } from '../../errors/nexus-error.ts';
import { auditContext } from '../../http/context.ts';
import { rejection } from '../../http/error-handler.ts';
import { formFieldsParser } from '../../http/form-body.ts';
import { errorResponses } from '../../http/schemas.ts';
import type { Brand } from './brand.ts';
import { captureFormPage, captureMessagePage, capturePageHeaders } from './capture.page.ts';
import type { CaptureService } from './capture.service.ts';

const state = z.string().min(1).max(256).describe('The state returned by request-connection');
const fieldSchema = z.object({
  name: z.string(),
  title: z.string(),
  description: z.string(),
  secret: z.boolean(),
  required: z.boolean(),
  maxLength: z.number().int(),
});

/** Capture failures after which the same link may be submitted again. */
const RETRYABLE = new Set(['invalid_credentials', 'credentials_rejected', 'credentials_unverifiable']);

export function captureRoutes(
  app: FastifyInstance,
  /** `brand`: the operator's branding of the hosted pages (NEXUS_CONNECT_BRAND_*). */
  deps: { capture: CaptureService; formBodyLimit: number; brand?: Brand },
): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { capture } = deps;
  const tags = ['consent'];

  // The gateway's (`/v1`) and the broker's (`/auth`) paths of the original, one answer: the
  // original's `{provider_name, schema}` with Nexus's form fields beside it.
  for (const [path, operationId] of [
    ['/v1/capture-schema', 'captureSchema'],
    ['/auth/capture-schema', 'authCaptureSchema'],
  ] as const) {
    r.get(
      path,
      {
        config: { auth: 'public' },
        schema: {
          operationId,
          tags,
          summary: 'The fields a static-credential provider needs (the state is the capability)',
          querystring: z.object({ state }).strict(),
          response: {
            200: z.object({
              provider_name: z.string(),
              schema: z
                .record(z.string(), z.unknown())
                .describe("The provider's credential_schema (JSON Schema), or one written from its fields"),
              provider: z.object({ id: z.string(), name: z.string(), description: z.string() }),
              fields: z.array(fieldSchema),
              expires_at: z.string(),
            }),
            ...errorResponses(404),
          },
        },
      },
      async (request) => {
        const { provider, fields, schema, expires_at } = await capture.form(request.query.state);
        return { provider_name: provider.name, schema, provider, fields: [...fields], expires_at };
      },
    );
  }

  for (const [path, operationId] of [
    ['/v1/capture-credential', 'captureCredential'],
    ['/auth/capture-credential', 'authCaptureCredential'],
  ] as const) {
    r.post(
      path,
      {
        config: { auth: 'public' },
        schema: {
          operationId,
          tags,
          summary: 'Submit credentials for a pending static-credential connection (once)',
          body: z.object({ state, credentials: z.record(z.string().max(64), z.string().max(4096)) }).strict(),
          response: {
            200: z.object({
              connection_id: z.string(),
              status: z
                .enum(['active', 'pending'])
                .describe('`pending`: the app confirms the user first (verify, decision 0017)'),
              redirect_url: z
                .string()
                .nullable()
                .describe(
                  'Where to send the browser on: the return URL with status=success, or (pending) the verifier page with its flow_id',
                ),
            }),
            ...errorResponses(404, 413, 422, 429, 502),
          },
        },
      },
      async (request) => capture.capture(auditContext(request), request.body.state, request.body.credentials),
    );
  }

  // The hosted page, in its own scope: only here are HTML form bodies accepted.
  app.register(async (scope) => {
    scope.addContentTypeParser(
      'application/x-www-form-urlencoded',
      { parseAs: 'string', bodyLimit: deps.formBodyLimit },
      formFieldsParser,
    );
    const s = scope.withTypeProvider<ZodTypeProvider>();
    const html = (
      reply: FastifyReply,
      status: number,
      nonce: string,
      returnOrigin: string | null,
      page: string,
    ) =>
      reply
        .status(status)
        .headers(capturePageHeaders(nonce, returnOrigin, deps.brand))
        .type('text/html; charset=utf-8')
        .send(page);
    const unavailable = (reply: FastifyReply, nonce: string) =>
      html(
        reply,
        404,
        nonce,
        null,
        captureMessagePage(
          nonce,
          'This link has expired',
          'It was already used, has expired, or is not valid. Start the connection again from the application.',
          deps.brand,
        ),
      );

    /** Back to the application when its URL is still allowed, else a page saying how it ended. */
    const backOr = (reply: FastifyReply, nonce: string, to: string | null, title: string, text: string) =>
      to !== null
        ? reply.redirect(to, 303)
        : html(reply, 200, nonce, null, captureMessagePage(nonce, title, text, deps.brand));

    /**
     * Every failure of the hosted form is a page, never the API's JSON: the person in front of it
     * reads what happened (the message a caller would get, or nothing of the broker's insides for a
     * 5xx), with the page's own headers.
     */
    const failure = (request: FastifyRequest, reply: FastifyReply, nonce: string, error: unknown) => {
      const e = rejection(request, error);
      if (e.code === 'capture_not_available') return unavailable(reply, nonce);
      const retryAfter = (e.details as { retry_after_seconds?: unknown } | undefined)?.retry_after_seconds;
      if (typeof retryAfter === 'number') reply.header('retry-after', String(retryAfter));
      const [title, text] =
        e.code === 'rate_limited'
          ? ['Too many attempts', e.message]
          : e.expose
            ? ['Could not connect', e.message]
            : [
                'Something went wrong',
                `Try again later. If it keeps happening, give the application this reference: ${request.id}.`,
              ];
      return html(reply, e.status, nonce, null, captureMessagePage(nonce, title, text, deps.brand));
    };
    // What fails before the handlers (the form's parsing and schema, a NUL, the rate limit's hook)
    // gets the same pages.
    scope.setErrorHandler((error, request, reply) =>
      failure(request, reply, randomBytes(16).toString('base64'), error),
    );

    s.get(
      '/connect/capture',
      { config: { auth: 'public' }, schema: { hide: true, querystring: z.object({ state }).strict() } },
      async (request, reply) => {
        const nonce = randomBytes(16).toString('base64');
        try {
          const form = await capture.form(request.query.state);
          return html(
            reply,
            200,
            nonce,
            formActionOrigins(form),
            captureFormPage(nonce, form, request.query.state, [], deps.brand),
          );
        } catch (error) {
          return failure(request, reply, nonce, error);
        }
      },
    );

    s.post(
      '/connect/capture',
      {
        config: { auth: 'public' },
        schema: {
          hide: true,
          body: z
            .record(z.string().max(64), z.string().max(4096))
            .refine((b) => typeof b.state === 'string', 'state is required'),
        },
      },
      async (request, reply) => {
        const nonce = randomBytes(16).toString('base64');
        const { state: stateText, ...values } = request.body as Record<string, string>;
        try {
          const result = await capture.capture(auditContext(request), stateText!, values);
          return backOr(
            reply,
            nonce,
            result.redirect_url,
            'Connected',
            'You can close this window and return to the application.',
          );
        } catch (error) {
          if (!(error instanceof NexusError && RETRYABLE.has(error.code)))
            return failure(request, reply, nonce, error);
          // The link stays usable: show the form again with what went wrong.
          try {
            const form = await capture.form(stateText!);
            const problems =
              error.code === 'invalid_credentials'
                ? (error.details as { path: string; message: string }[])
                : [{ path: '', message: error.message }];
            return html(
              reply,
              error.status,
              nonce,
              formActionOrigins(form),
              captureFormPage(nonce, form, stateText!, problems, deps.brand),
            );
          } catch (again) {
            return failure(request, reply, nonce, again);
          }
        }
      },
    );

    // The form's cancel button: the link is used up and the connection fails, then back to the app.
    s.post(
      '/connect/capture/cancel',
      { config: { auth: 'public' }, schema: { hide: true, body: z.object({ state }).strict() } },
      async (request, reply) => {
        const nonce = randomBytes(16).toString('base64');
        try {
          const back = await capture.cancel(auditContext(request), request.body.state);
          return backOr(
            reply,
            nonce,
            back,
            'Not connected',
            'You cancelled: nothing was stored. You can close this window and return to the application.',
          );
        } catch (error) {
          return failure(request, reply, nonce, error);
        }
      },
    );
  });
}

/** Where the form's submit may be redirected (CSP `form-action`): the return URL, and the verifier page. */
function formActionOrigins(form: { return_origin: string | null; verifier_origin: string | null }) {
  const origins = [form.return_origin, form.verifier_origin].filter((o) => o !== null);
  return origins.length === 0 ? null : [...new Set(origins)].join(' ');
}
