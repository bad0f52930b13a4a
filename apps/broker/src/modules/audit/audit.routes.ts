import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import * as z from 'zod';
import { errorFrom } from '../../errors/nexus-error.ts';
import { errorResponses } from '../../http/schemas.ts';
import { auditErrors } from './audit.errors.ts';
import type { AuditService } from './audit.service.ts';

const eventSchema = z
  .object({
    seq: z.number().int(),
    id: z.string(),
    occurred_at: z.string(),
    actor: z.string(),
    event_type: z.string(),
    resource_type: z.string(),
    resource_id: z.string().nullable(),
    outcome: z.string(),
    ip: z.string().nullable(),
    user_agent: z.string().nullable(),
    request_id: z.string().nullable(),
    details: z.record(z.string(), z.unknown()).nullable(),
  })
  .meta({ id: 'AuditEvent' });

const timestamp = z.iso.datetime({ offset: true }).transform((s) => Date.parse(s));

const querySchema = z
  .object({
    event_type: z.string().max(100).optional().describe('Exact event type, e.g. `provider.created`'),
    actor: z.string().max(200).optional().describe('Exact actor, e.g. `admin-key:ops`'),
    resource: z
      .string()
      .max(300)
      .regex(/^[a-z_]+(:[^\s]+)?$/, 'resource type, or type:id')
      .optional()
      .describe('Resource type (`provider`) or type and id (`provider:<id>`)'),
    since: timestamp.optional().describe('Only events at or after this RFC 3339 time'),
    until: timestamp.optional().describe('Only events before this RFC 3339 time'),
    limit: z.coerce.number().int().min(1).max(500).default(50),
    cursor: z.string().max(64).optional().describe('`next_cursor` from the previous page'),
  })
  .strict();

const encodeCursor = (seq: number) => Buffer.from(`seq:${seq}`).toString('base64url');
function decodeCursor(cursor: string): number {
  const match = /^seq:(\d{1,15})$/.exec(Buffer.from(cursor, 'base64url').toString());
  if (!match) throw errorFrom(auditErrors, 'invalid_cursor');
  return Number(match[1]);
}

export function auditRoutes(app: FastifyInstance, deps: { audit: AuditService }): void {
  app.withTypeProvider<ZodTypeProvider>().get(
    '/audit',
    {
      schema: {
        operationId: 'listAuditEvents',
        tags: ['audit'],
        summary: 'Audit events, newest first, with filters and cursor paging',
        querystring: querySchema,
        response: {
          200: z.object({ events: z.array(eventSchema), next_cursor: z.string().nullable() }),
          ...errorResponses(),
        },
      },
    },
    async (request) => {
      const q = request.query;
      const [resourceType, ...rest] = q.resource?.split(':') ?? [];
      const events = await deps.audit.query({
        action: q.event_type,
        actor: q.actor,
        resourceType,
        resourceId: rest.length > 0 ? rest.join(':') : undefined,
        since: q.since,
        until: q.until,
        beforeSeq: q.cursor === undefined ? undefined : decodeCursor(q.cursor),
        limit: q.limit + 1,
      });
      const page = events.slice(0, q.limit);
      return {
        events: page,
        next_cursor: events.length > q.limit ? encodeCursor(page[page.length - 1]!.seq) : null,
      };
    },
  );
}
