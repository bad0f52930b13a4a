import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import * as z from 'zod';
import { auditContext } from '../../http/context.ts';
import { errorResponses } from '../../http/schemas.ts';
import { CONNECTION_EVENT_TYPES } from './events.service.ts';
import type { WebhooksService } from './webhooks.service.ts';

const webhookView = z
  .object({
    id: z.string(),
    url: z.string(),
    description: z.string(),
    events: z.array(z.string()).describe('Event types delivered; empty means every type'),
    active: z.boolean(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .meta({ id: 'Webhook' });

const withSecret = webhookView.extend({
  secret: z
    .string()
    .describe('The signing secret; shown only in this response. Keep it: it is never shown again'),
});

const deliveryView = z
  .object({
    id: z.string(),
    webhook_id: z.string(),
    event_id: z.string(),
    event_type: z.string(),
    status: z.enum(['pending', 'delivered', 'failed']),
    attempts: z.number().int(),
    next_attempt_at: z.string().nullable().describe('When a pending delivery is tried next'),
    last_attempt_at: z.string().nullable(),
    last_status_code: z.number().int().nullable().describe("The receiver's last HTTP status"),
    last_error: z.string().nullable().describe('Why the last attempt did not succeed'),
    delivered_at: z.string().nullable(),
    created_at: z.string(),
  })
  .meta({ id: 'WebhookDelivery' });

const idParams = z.object({ id: z.string().min(1).max(64).describe('Webhook id') }).strict();

const url = z
  .string()
  .min(1)
  .max(2048)
  .describe('Absolute https URL (http only for localhost in development), without credentials');
const description = z.string().max(500);
const events = z
  .array(z.enum(CONNECTION_EVENT_TYPES))
  .max(CONNECTION_EVENT_TYPES.length * 2)
  .describe('Event types to deliver; empty or absent means every type');
const secret = z
  .string()
  .min(32)
  .max(256)
  .regex(/^[\x21-\x7e]+$/, 'printable ASCII without spaces')
  .describe(
    'Your own signing secret (32–256 printable ASCII characters) instead of a generated one. Write-only',
  );

export function webhooksRoutes(app: FastifyInstance, deps: { webhooks: WebhooksService }): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { webhooks } = deps;
  const tags = ['webhooks'];

  r.post(
    '/admin/v1/webhooks',
    {
      schema: {
        operationId: 'createWebhook',
        tags,
        summary: 'Register a webhook for connection events (its signing secret is returned once)',
        body: z
          .object({
            url,
            description: description.optional(),
            events: events.optional(),
            active: z.boolean().optional(),
            secret: secret.optional(),
          })
          .strict(),
        response: { 201: withSecret, ...errorResponses(409, 413) },
      },
    },
    async (request, reply) =>
      reply.status(201).send(await webhooks.create(auditContext(request), request.body)),
  );

  r.get(
    '/admin/v1/webhooks',
    {
      // A receiver's URL may carry its own token (a query secret): not for a read-only key.
      config: { auth: 'admin', scope: 'full' },
      schema: {
        operationId: 'listWebhooks',
        tags,
        summary: 'Live webhooks (never their secrets)',
        response: { 200: z.array(webhookView), ...errorResponses() },
      },
    },
    async () => webhooks.list(),
  );

  r.get(
    '/admin/v1/webhooks/:id',
    {
      // A receiver's URL may carry its own token (a query secret): not for a read-only key.
      config: { auth: 'admin', scope: 'full' },
      schema: {
        operationId: 'getWebhook',
        tags,
        params: idParams,
        response: { 200: webhookView, ...errorResponses(404) },
      },
    },
    async (request) => webhooks.get(request.params.id),
  );

  r.patch(
    '/admin/v1/webhooks/:id',
    {
      schema: {
        operationId: 'updateWebhook',
        tags,
        summary:
          'Change some fields; `rotate_secret: true` (or a new `secret`) replaces the signing secret, and a generated one is returned once',
        params: idParams,
        body: z
          .object({
            url: url.optional(),
            description: description.optional(),
            events: events.optional(),
            active: z.boolean().optional(),
            secret: secret.optional(),
            rotate_secret: z.boolean().optional().describe('Generate a new signing secret'),
          })
          .strict(),
        response: {
          200: webhookView.extend({
            secret: z.string().optional().describe('The new signing secret, only when it was rotated'),
          }),
          ...errorResponses(404, 413),
        },
      },
    },
    async (request) => webhooks.update(auditContext(request), request.params.id, request.body),
  );

  r.delete(
    '/admin/v1/webhooks/:id',
    {
      schema: {
        operationId: 'deleteWebhook',
        tags,
        summary: 'Delete a webhook: its secret is erased and its queued deliveries end as failed',
        params: idParams,
        response: { 200: z.object({ id: z.string(), message: z.string() }), ...errorResponses(404) },
      },
    },
    async (request) => {
      await webhooks.remove(auditContext(request), request.params.id);
      return { id: request.params.id, message: 'webhook deleted' };
    },
  );

  r.get(
    '/admin/v1/webhooks/:id/deliveries',
    {
      schema: {
        operationId: 'listWebhookDeliveries',
        tags,
        summary: 'The delivery log of a webhook, newest first, with cursor paging',
        params: idParams,
        querystring: z
          .object({
            status: z.enum(['pending', 'delivered', 'failed']).optional(),
            limit: z.coerce.number().int().min(1).max(200).default(50),
            cursor: z.string().max(128).optional().describe('`next_cursor` from the previous page'),
          })
          .strict(),
        response: {
          200: z.object({ deliveries: z.array(deliveryView), next_cursor: z.string().nullable() }),
          ...errorResponses(404),
        },
      },
    },
    async (request) => webhooks.deliveries(request.params.id, request.query),
  );

  r.post(
    '/admin/v1/webhook-deliveries/:id/redeliver',
    {
      schema: {
        operationId: 'redeliverWebhookDelivery',
        tags,
        summary: 'Send the event of a delivered or failed delivery again, as a new delivery',
        params: z.object({ id: z.string().min(1).max(64).describe('Delivery id') }).strict(),
        response: { 201: deliveryView, ...errorResponses(404, 409) },
      },
    },
    async (request, reply) =>
      reply.status(201).send(await webhooks.redeliver(auditContext(request), request.params.id)),
  );
}
