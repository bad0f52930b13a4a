import type { ImportDeps, Tally } from './import.types.ts';
import type { AuditPosition, OriginalAuditEvent } from './original-source.ts';

/** The actor of imported history: one value, so that a re-run finds where the last one stopped. */
export const HISTORY_ACTOR = 'original';

/** Keys whose values are never copied into Nexus's audit log, at any depth. */
const SECRET_KEY =
  /token|secret|password|passwd|verifier|credential|authorization|api[-_]?key|private|cookie|assertion|^code$|^key$/i;

/** The original's `event_data` with anything that may be a secret replaced, bounded in depth. */
export function redact(value: unknown, depth = 0): unknown {
  if (depth > 6) return '[nested]';
  if (Array.isArray(value)) return value.slice(0, 50).map((v) => redact(v, depth + 1));
  if (typeof value === 'object' && value !== null)
    return Object.fromEntries(
      Object.entries(value)
        .slice(0, 50)
        .map(([k, v]) => [k, SECRET_KEY.test(k) ? '[redacted]' : redact(v, depth + 1)]),
    );
  return typeof value === 'string' ? value.slice(0, 500) : value;
}

/** Details are capped by the audit log (8 KiB): a large event_data must not push the position out. */
function bounded(data: unknown): unknown {
  return JSON.stringify(data ?? null).length > 4096 ? { truncated: true } : data;
}

/** The audit action of an original event type (`token_retrieved` → `original.token_retrieved`). */
const actionOf = (eventType: string) =>
  /^[a-z0-9_.-]{1,64}$/i.test(eventType) ? `original.${eventType.toLowerCase()}` : 'original.event';

/**
 * `audit_events`, appended to Nexus's hash-chained audit log as history: action `original.<type>`,
 * actor `original`, the connection id (the same in Nexus) as the resource, the original time and
 * id in the details, and `event_data` with secret-looking keys redacted. The newest imported
 * event records where the source was read up to, so a re-run appends only what came after. Each
 * page is at most one audit batch, which commits whole: a failure never leaves a gap behind the
 * position.
 */
export async function importHistory(deps: ImportDeps, tally: Tally): Promise<boolean> {
  if (!deps.source.hasAudit) {
    tally.rows.push({
      kind: 'audit',
      id: 'audit_events',
      outcome: 'skipped',
      reason: 'the source has no audit_events table',
    });
    return false;
  }
  const [last] = await deps.nexus.audit.query({ actor: HISTORY_ACTOR, limit: 1 });
  const at = last?.details?.original_position as AuditPosition | undefined;
  let after: AuditPosition | undefined =
    typeof at?.createdUs === 'string' && typeof at.id === 'string' ? at : undefined;
  const page = Math.max(1, Math.min(deps.auditBatch, 500));
  for (;;) {
    if (deps.signal?.aborted) return true;
    const events = await deps.source.auditEvents(after, page);
    if (events.length === 0) return false;
    if (!deps.apply) tally.count('audit', 'would_import', events.length);
    else {
      await Promise.all(events.map((e) => record(e)));
      tally.count('audit', 'imported', events.length);
    }
    const tail = events[events.length - 1]!;
    after = { createdUs: tail.created_us, id: tail.id };
  }

  function record(e: OriginalAuditEvent): Promise<void> {
    const failed = /fail|error|fatal|denied/i.test(e.event_type);
    return deps.nexus.audit.record(
      { actor: HISTORY_ACTOR, ip: e.ip, userAgent: e.user_agent },
      {
        action: actionOf(e.event_type),
        resourceType: 'connection',
        resourceId: e.connection_id,
        outcome: failed ? 'failure' : 'success',
        details: {
          original_event_type: e.event_type.slice(0, 100),
          original_id: e.id,
          original_created_at: e.created_at.toISOString(),
          original_position: { createdUs: e.created_us, id: e.id },
          event_data: bounded(redact(e.event_data)),
        },
      },
    );
  }
}
