import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import * as z from 'zod';
import { auditContext } from '../../http/context.ts';
import { errorResponses } from '../../http/schemas.ts';
import type { ConsentService } from './consent.service.ts';

/** `POST /v1/connect/confirm`: the app's server confirms who completed a consent. */
export function confirmRoutes(
  app: FastifyInstance,
  deps: { consent: Pick<ConsentService, 'confirm'> },
): void {
  app.withTypeProvider<ZodTypeProvider>().post(
    '/v1/connect/confirm',
    {
      config: { auth: 'agent' },
      schema: {
        operationId: 'confirmConnection',
        tags: ['agent API'],
        summary: 'Confirm that the user who completed a consent is the user it was asked for',
        description:
          "Called by the application's server from its verifier page (NEXUS_CONNECT_VERIFIER_URL), with the `flow_id` the browser brought and the user signed in to the application. Only the caller that asked for the connection (same agent or admin key) may confirm it; other callers get 404. The same user: the connection activates (`status: active`). Another user: the connection fails with `user_mismatch`, the grant is revoked at the provider and nothing is kept. Either way, send the browser to `redirect_url` (the return URL with `status=success&connection_id=…&provider=…` or `status=failed&error=<code>`). A flow_id works once: 409 `confirm_flow_used`, 410 `confirm_flow_expired`, 404 `confirm_flow_unknown`; those change nothing.",
        body: z
          .object({
            flow_id: z.string().min(1).max(128).describe('The `flow_id` the verifier page received'),
            user_id: z
              .string()
              .trim()
              .min(1)
              .max(200)
              .describe('The user signed in to the application, as request-connection named users'),
          })
          .strict(),
        response: {
          200: z.object({
            status: z.enum(['active', 'failed']),
            connection_id: z.string(),
            error: z.string().optional().describe('`user_mismatch`, or `connection_not_pending`'),
            provider_revoked: z
              .boolean()
              .optional()
              .describe('On failure: whether the provider accepted the revocation of the grant'),
            redirect_url: z
              .string()
              .nullable()
              .describe(
                'Where to send the browser: the return URL with the outcome (null if no longer allowed)',
              ),
          }),
          ...errorResponses(404, 409, 410),
        },
      },
    },
    async (request) =>
      deps.consent.confirm(
        auditContext(request),
        request.principal,
        request.body.flow_id,
        request.body.user_id,
      ),
  );
}
