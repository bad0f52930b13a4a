import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import * as z from 'zod';
import { errorResponses } from '../../http/schemas.ts';
import { CONNECTION_EVENT_TYPES, type EventsService } from './events.service.ts';

const eventView = z
  .object({
    id: z.string(),
    type: z.string(),
    connection_id: z.string(),
    workspace_id: z.string(),
    provider_id: z.string(),
    details: z.record(z.string(), z.unknown()),
    created_at: z.string(),
  })
  .meta({ id: 'ConnectionEvent' });

export function eventsRoutes(app: FastifyInstance, deps: { events: EventsService }): void {
  app.withTypeProvider<ZodTypeProvider>().get(
    '/admin/v1/events',
    {
      schema: {
        operationId: 'listConnectionEvents',
        tags: ['events'],
        summary: 'Connection events, newest first, with filters and cursor paging',
        querystring: z
          .object({
            connection_id: z.string().min(1).max(64).optional(),
            type: z.enum(CONNECTION_EVENT_TYPES).optional(),
            limit: z.coerce.number().int().min(1).max(200).default(50),
            cursor: z.string().max(128).optional().describe('`next_cursor` from the previous page'),
          })
          .strict(),
        response: {
          200: z.object({ events: z.array(eventView), next_cursor: z.string().nullable() }),
          ...errorResponses(),
        },
      },
    },
    async (request) => {
      const q = request.query;
      return deps.events.list({
        connectionId: q.connection_id,
        type: q.type,
        cursor: q.cursor,
        limit: q.limit,
      });
    },
  );
}
