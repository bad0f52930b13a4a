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

/** The original broker's event, as `format=original` answers it (audit.original.ts). */
const originalEventSchema = z
  .object({
    id: z.string(),
    connection_id: z.string().nullable().describe('The connection the event is about (a UUID), or null'),
    event_type: z.string().describe("The original's event name; Nexus-only events keep their Nexus name"),
    event_data: z
      .string()
      .nullable()
      .describe('JSON text (a string, as the original wrote it): the facts of the event, never a secret'),
    ip_address: z.string().nullable(),
    user_agent: z.string().nullable(),
    created_at: z.string(),
  })
  .meta({ id: 'OriginalAuditEvent' });

/** Nexus's own page size; the original's shape allows up to 1000, as the original did. */
const NEXUS_MAX_LIMIT = 500;
const ORIGINAL_MAX_LIMIT = 1000;
/** Parameters of Nexus's own shape, which the original's has no place for. */
const NEXUS_ONLY = ['actor', 'resource', 'until', 'cursor'] as const;

const querySchema = z
  .object({
    format: z
      .enum(['nexus', 'original'])
      .default('nexus')
      .describe(
        "`original`: the original broker's shape, a plain array of `{id, connection_id, event_type, event_data, ip_address, user_agent, created_at}` with its event names (see docs/migrating.md); takes `event_type`, `since` and `limit` only",
      ),
    event_type: z
      .string()
      .max(100)
      .optional()
      .describe(
        'Exact event type, e.g. `provider.created`; with `format=original`, an original name (`token_retrieved`): an unknown one finds nothing',
      ),
    actor: z.string().max(200).optional().describe('Exact actor, e.g. `admin-key:ops`'),
    resource: z
      .string()
      .max(300)
      .regex(/^[a-z_]+(:[^\s]+)?$/, 'resource type, or type:id')
      .optional()
      .describe('Resource type (`provider`) or type and id (`provider:<id>`)'),
    since: timestamp.optional().describe('Only events at or after this RFC 3339 time'),
    until: timestamp.optional().describe('Only events before this RFC 3339 time'),
    limit: z.coerce
      .number()
      .int()
      .min(1)
      .max(ORIGINAL_MAX_LIMIT)
      .default(50)
      .describe(`At most ${NEXUS_MAX_LIMIT}, or ${ORIGINAL_MAX_LIMIT} with \`format=original\``),
    cursor: z.string().max(64).optional().describe('`next_cursor` from the previous page'),
  })
  .strict()
  .superRefine((q, ctx) => {
    if (q.format === 'original') {
      for (const name of NEXUS_ONLY)
        if (q[name] !== undefined)
          ctx.addIssue({ code: 'custom', path: [name], message: 'not available with format=original' });
    } else if (q.limit > NEXUS_MAX_LIMIT) {
      ctx.addIssue({
        code: 'custom',
        path: ['limit'],
        message: `at most ${NEXUS_MAX_LIMIT} (${ORIGINAL_MAX_LIMIT} with format=original)`,
      });
    }
  });

const pageSchema = z.object({ events: z.array(eventSchema), next_cursor: z.string().nullable() });

const encodeCursor = (seq: number) => Buffer.from(`seq:${seq}`).toString('base64url');
function decodeCursor(cursor: string): number {
  const match = /^seq:(\d{1,15})$/.exec(Buffer.from(cursor, 'base64url').toString());
  if (!match) throw errorFrom(auditErrors, 'invalid_cursor');
  return Number(match[1]);
}

/** Events one verification checks at most (the default is smaller); a long log is verified in steps. */
const VERIFY_MAX_LIMIT = 100_000;

const verifySchema = z
  .object({
    ok: z.boolean().describe('false: the chain is broken at `broken_at`'),
    checked: z.number().int().describe('Events verified by this call'),
    from_seq: z.number().int().describe('The first event checked'),
    to_seq: z.number().int().describe('The last event found intact (`from_seq - 1` when none)'),
    complete: z
      .boolean()
      .describe(
        'true: the walk reached the head (the newest event when the call started). false: `limit` stopped it, or the chain broke',
      ),
    next_from_seq: z
      .number()
      .int()
      .nullable()
      .describe('When `limit` stopped an intact walk: pass as `from_seq` to go on; otherwise null'),
    head_seq: z.number().int(),
    head_hash: z
      .string()
      .describe('Hash of the newest event: keep a copy elsewhere to detect a rewrite of the whole chain'),
    pruned_through: z
      .number()
      .int()
      .describe(
        'Events up to this number were removed by retention (0: none); their export files verify them',
      ),
    broken_at: z.number().int().nullable(),
    reason: z.string().nullable(),
  })
  .meta({ id: 'AuditVerification' });

export function auditRoutes(app: FastifyInstance, deps: { audit: AuditService }): void {
  app.withTypeProvider<ZodTypeProvider>().get(
    '/audit/verify',
    {
      schema: {
        operationId: 'verifyAuditChain',
        tags: ['audit'],
        summary:
          "Verify the audit log's hash chain, as `nexus audit verify` does, a bounded number of events at a time",
        description:
          "Walks the chain from `from_seq` (default: the oldest event kept) for at most `limit` events, up to the head as it was when the call started. Starting after the first event trusts the stored hash of event `from_seq - 1`: to verify a long log in steps, pass each answer's `next_from_seq` until `complete` is true. Reads only; a `read` key may call it.",
        querystring: z
          .object({
            from_seq: z.coerce.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional(),
            limit: z.coerce
              .number()
              .int()
              .min(1)
              .max(VERIFY_MAX_LIMIT)
              .default(10_000)
              .describe(`Events to verify at most (default 10000, at most ${VERIFY_MAX_LIMIT})`),
          })
          .strict(),
        response: { 200: verifySchema, ...errorResponses() },
      },
    },
    async (request) => {
      const r = await deps.audit.verify(undefined, {
        fromSeq: request.query.from_seq,
        limit: request.query.limit,
      });
      return {
        ok: r.ok,
        checked: r.checked,
        from_seq: r.fromSeq,
        to_seq: r.toSeq,
        complete: r.complete,
        next_from_seq: r.ok && !r.complete ? r.toSeq + 1 : null,
        head_seq: r.headSeq,
        head_hash: r.headHash,
        pruned_through: r.prunedThrough,
        broken_at: r.brokenAt ?? null,
        reason: r.reason ?? null,
      };
    },
  );

  app.withTypeProvider<ZodTypeProvider>().get(
    '/audit',
    {
      schema: {
        operationId: 'listAuditEvents',
        tags: ['audit'],
        summary: 'Audit events, newest first, with filters and cursor paging',
        description:
          "Nexus's shape by default: `{events, next_cursor}`. With `format=original`, the original broker's: a plain array with its event names, `event_type`, `since` and `limit` (up to 1000), so that its consumers keep working after adding one parameter.",
        querystring: querySchema,
        response: {
          200: z.union([pageSchema, z.array(originalEventSchema)]),
          ...errorResponses(),
        },
      },
    },
    async (request) => {
      const q = request.query;
      if (q.format === 'original')
        return deps.audit.queryOriginal({ eventType: q.event_type, since: q.since, limit: q.limit });
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
