import * as nodeCrypto from 'node:crypto';
import { isDatabaseUnavailable } from '../../db/availability.ts';
import type { AuditEventsTable } from '../../db/schema.ts';
import { chainHash, GENESIS_HASH } from './audit.chain.ts';
import { type OriginalAuditEvent, type OriginalQuery, queryOriginal } from './audit.original.ts';
import type { AuditQuery, AuditStore } from './audit.store.ts';

export type AuditOutcome = 'success' | 'failure' | 'denied';

/** Who did it and from where; filled by the HTTP layer or the CLI. */
export interface AuditContext {
  readonly actor: string;
  readonly ip?: string | null | undefined;
  readonly userAgent?: string | null | undefined;
  readonly requestId?: string | null | undefined;
}

export interface AuditEventInput {
  readonly action: string;
  readonly resourceType: string;
  readonly resourceId?: string | null | undefined;
  readonly outcome?: AuditOutcome;
  /** Caller-safe facts only: names, ids, changed field names. Never a secret value. */
  readonly details?: Readonly<Record<string, unknown>> | undefined;
}

export interface AuditEvent {
  seq: number;
  id: string;
  occurred_at: string;
  actor: string;
  event_type: string;
  resource_type: string;
  resource_id: string | null;
  outcome: string;
  ip: string | null;
  user_agent: string | null;
  request_id: string | null;
  details: Record<string, unknown> | null;
}

export interface VerifyResult {
  readonly ok: boolean;
  readonly checked: number;
  readonly headSeq: number;
  /** Hash of the newest event: keep a copy elsewhere to detect a rewrite of the whole chain. */
  readonly headHash: string;
  /** Events up to this sequence number were removed by retention (0: none); their export files verify them. */
  readonly prunedThrough: number;
  /** The first event checked, and the last one found intact (fromSeq - 1 when none). */
  readonly fromSeq: number;
  readonly toSeq: number;
  /** Whether the walk reached the head; false when a limit stopped it (or it broke). */
  readonly complete: boolean;
  /** The first sequence number where the chain breaks, and why. */
  readonly brokenAt?: number;
  readonly reason?: string;
}

interface Pending {
  row: Omit<AuditEventsTable, 'seq' | 'prev_hash' | 'hash'>;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/*
 * Event ids are time-ordered (UUIDv7) where Node has them: each batch then adds to the right-hand
 * end of the unique index on `id` instead of one random leaf page per event, which keeps the
 * pages a batch dirties (and writes to the WAL) few. Any unique string would do for the chain.
 */
const newEventId: () => string =
  typeof nodeCrypto.randomUUIDv7 === 'function' ? () => nodeCrypto.randomUUIDv7() : nodeCrypto.randomUUID;

const MAX_DETAILS_BYTES = 8 * 1024;
/** The most of one detail kept when the whole is too long (see `fitted`). */
const MAX_DETAIL_BYTES = 512;

/**
 * Details longer than MAX_DETAILS_BYTES, shortened field by field: small fields are kept whole
 * (ids, names, the workspace), a long text is cut, a long list keeps what fits of its start, and
 * anything else long is left out; `truncated_fields` names what was shortened. A caller cannot
 * then empty an event of what says who did what by making one field long (a hundred scopes).
 */
function fitted(details: Record<string, unknown>): string {
  const out: Record<string, unknown> = {};
  const shortened: string[] = [];
  for (const [key, value] of Object.entries(details)) {
    if (JSON.stringify(value ?? null).length <= MAX_DETAIL_BYTES) {
      out[key] = value;
      continue;
    }
    shortened.push(key);
    if (typeof value === 'string') out[key] = value.slice(0, MAX_DETAIL_BYTES / 2);
    else if (Array.isArray(value)) {
      const kept: unknown[] = [];
      for (const item of value) {
        if (JSON.stringify([...kept, item]).length > MAX_DETAIL_BYTES) break;
        kept.push(item);
      }
      out[key] = kept;
    }
  }
  const text = JSON.stringify({ ...out, truncated: true, truncated_fields: shortened });
  return text.length <= MAX_DETAILS_BYTES
    ? text
    : JSON.stringify({ truncated: true, truncated_fields: Object.keys(details).slice(0, 32) });
}
/** What most audited strings are (ids, addresses, request ids): nothing for `clip` to change. */
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;
/**
 * Bounded, free of control characters and well-formed: a caller-chosen string (a claimed client
 * id, say) must never make the batch insert fail (PostgreSQL refuses NUL in text, and an unpaired
 * surrogate in the batch's JSON), forge log-looking lines, or be hashed as one text and stored as
 * another (a cut emoji's half would be hashed as `\ud83d` and stored as U+FFFD, and the chain
 * would read as tampered with). What is hashed is what is stored.
 */
const clip = (value: string | null | undefined, max: number) =>
  value == null
    ? null
    : value.length <= max && PRINTABLE_ASCII.test(value)
      ? value
      : value
          .slice(0, max)
          .toWellFormed()
          .replace(/\p{Cc}/gu, '\ufffd');

/**
 * Appends hash-chained audit events with group commit: events recorded while a batch is being
 * written wait for the next batch, and each `record` resolves only once its batch is committed.
 * One insert transaction serves many concurrent requests instead of one each.
 *
 * A request that delivers something (a token) awaits its `record` first, so a failed batch fails
 * the request: an answer that succeeded always has its event. The converse does not hold: a batch
 * whose commit reached the database but whose answer was lost (the connection dropped at that
 * moment) fails its requests although the events are stored.
 */
export function createAuditService(deps: {
  store: AuditStore;
  batchMax: number;
  /** Where the chain starts after retention removed its oldest events (audit.retention.ts). */
  anchor?: () => Promise<{ seq: number; hash: string }>;
  /** Whether retention is configured; without it, a moved anchor means events were deleted. */
  retentionEnabled?: boolean;
  now?: () => number;
}) {
  const { store, batchMax } = deps;
  const now = deps.now ?? Date.now;
  let queue: Pending[] = [];
  let writing: Promise<void> | undefined;

  function append(batch: readonly Pending[]): Promise<void> {
    return store.append((head) => {
      let prev = head.hash || GENESIS_HASH;
      return batch.map((p, i) => {
        const fields = { ...p.row, seq: head.seq + i + 1, prev_hash: prev };
        const hash = chainHash(fields);
        prev = hash;
        return { ...fields, hash };
      });
    });
  }

  /**
   * The database could not take a write: `pending` and every event queued behind it fail now.
   * Each would otherwise wait another timeout only to fail alike; so a request's wait stays
   * bounded by one write. Their requests answer 503 and nothing was delivered without its event;
   * the next event starts a new batch, which finds the database back or fails on its own.
   */
  function failFrom(pending: readonly Pending[], error: unknown): void {
    const behind = queue;
    queue = [];
    for (const p of [...pending, ...behind]) p.reject(error);
  }

  async function writeBatches(): Promise<void> {
    while (queue.length > 0) {
      const batch = queue.slice(0, batchMax);
      queue = queue.slice(batch.length);
      try {
        await append(batch);
        for (const p of batch) p.resolve();
      } catch (error) {
        if (isDatabaseUnavailable(error)) failFrom(batch, error);
        else if (batch.length === 1) batch[0]!.reject(error);
        else {
          // One event the database refuses (a text it cannot hold) must not fail the requests
          // whose events shared its batch: each is written alone, and only its own write decides,
          // until the database itself is found away.
          for (const [i, p] of batch.entries()) {
            try {
              await append([p]);
              p.resolve();
            } catch (single) {
              p.reject(single);
              if (isDatabaseUnavailable(single)) {
                failFrom(batch.slice(i + 1), single);
                break;
              }
            }
          }
        }
      }
    }
  }

  function kick(): void {
    if (writing !== undefined) return;
    // setImmediate lets every request handled in this turn of the event loop join the batch.
    writing = new Promise<void>((resolve) => setImmediate(resolve)).then(writeBatches).finally(() => {
      writing = undefined;
      if (queue.length > 0) kick();
    });
  }

  return {
    /** Records one event; resolves when it is durably committed. */
    record(context: AuditContext, event: AuditEventInput): Promise<void> {
      let details: string | null = null;
      if (event.details !== undefined) {
        details = JSON.stringify(event.details);
        if (details.length > MAX_DETAILS_BYTES) details = fitted(event.details);
      }
      const row = {
        id: newEventId(),
        occurred_at: now(),
        actor: clip(context.actor, 200) ?? 'unknown',
        action: event.action,
        resource_type: event.resourceType,
        resource_id: clip(event.resourceId, 200),
        outcome: event.outcome ?? 'success',
        ip: clip(context.ip, 64),
        user_agent: clip(context.userAgent, 256),
        request_id: clip(context.requestId, 128),
        details,
      };
      return new Promise<void>((resolve, reject) => {
        queue.push({ row, resolve, reject });
        kick();
      });
    },

    /** Waits for every queued event to be written (shutdown). */
    async flush(): Promise<void> {
      while (writing !== undefined || queue.length > 0) {
        kick();
        await writing;
      }
    },

    async query(q: AuditQuery): Promise<AuditEvent[]> {
      const rows = await store.query(q);
      return rows.map((r) => ({
        seq: r.seq,
        id: r.id,
        occurred_at: new Date(r.occurred_at).toISOString(),
        actor: r.actor,
        event_type: r.action,
        resource_type: r.resource_type,
        resource_id: r.resource_id,
        outcome: r.outcome,
        ip: r.ip,
        user_agent: r.user_agent,
        request_id: r.request_id,
        details: r.details === null ? null : (JSON.parse(r.details) as Record<string, unknown>),
      }));
    },

    /** The original broker's read shape, with its event names (audit.original.ts). */
    queryOriginal(q: OriginalQuery): Promise<OriginalAuditEvent[]> {
      return queryOriginal(store, q);
    },

    /**
     * Walks the chain up to the head as it was when called (events written meanwhile are left
     * for the next run): every row must follow its predecessor without a gap, link to its hash,
     * and hash to what it stores; the last row must match the recorded head. `range` bounds the
     * work: start after an event already verified (`fromSeq`, whose predecessor is then trusted
     * as stored) and stop after `limit` events; `complete` says whether the head was reached.
     */
    async verify(
      onProgress?: (checked: number, total: number) => void,
      range: { fromSeq?: number | undefined; limit?: number | undefined } = {},
    ): Promise<VerifyResult> {
      const head = await store.head();
      const anchor = (await deps.anchor?.()) ?? { seq: 0, hash: GENESIS_HASH };
      const limit = range.limit ?? Number.POSITIVE_INFINITY;
      let prevSeq = anchor.seq;
      let prevHash = anchor.hash;
      let checked = 0;
      let fromSeq = anchor.seq + 1;
      const base = { headSeq: head.seq, headHash: head.hash, prunedThrough: anchor.seq };
      const fail = (brokenAt: number, reason: string): VerifyResult => ({
        ...base,
        ok: false,
        checked,
        fromSeq,
        toSeq: prevSeq,
        complete: false,
        brokenAt,
        reason,
      });
      if (anchor.seq > 0 && deps.retentionEnabled === false)
        return fail(
          1,
          `events 1–${anchor.seq} are marked as removed by retention, but NEXUS_AUDIT_RETENTION_DAYS is 0: if retention was turned off after it ran, check them against the export files; otherwise they were deleted`,
        );
      if (range.fromSeq !== undefined && range.fromSeq > anchor.seq + 1) {
        fromSeq = range.fromSeq;
        const [before] = await store.pageAscending(fromSeq - 2, 1);
        if (before === undefined || before.seq > head.seq) {
          // Past the head: nothing written there yet (events written since are the next run's).
          if (fromSeq - 1 > head.seq)
            return { ...base, ok: true, checked: 0, fromSeq, toSeq: fromSeq - 1, complete: true };
          // The head records events from there on: only retention may have removed them all.
          const moved = await deps.anchor?.();
          if (moved !== undefined && moved.seq >= head.seq)
            return {
              ...base,
              prunedThrough: moved.seq,
              ok: true,
              checked: 0,
              fromSeq,
              toSeq: moved.seq,
              complete: true,
            };
          return fail(
            fromSeq - 1,
            `events ${fromSeq - 1}–${head.seq} are missing but the head records event ${head.seq}: events were deleted`,
          );
        }
        const moved = before.seq === fromSeq - 1 ? undefined : await deps.anchor?.();
        if (moved !== undefined && moved.seq >= fromSeq - 1) {
          // Retention removed it since the anchor was read: the walk starts from the new anchor.
          prevSeq = moved.seq;
          prevHash = moved.hash;
          base.prunedThrough = moved.seq;
        } else if (before.seq !== fromSeq - 1) {
          return fail(fromSeq - 1, `event ${fromSeq - 1} is missing (next present is ${before.seq})`);
        } else {
          prevSeq = before.seq;
          prevHash = before.hash;
        }
      }
      walk: while (prevSeq < head.seq && checked < limit) {
        const want = Math.min(1000, head.seq - prevSeq, limit - checked);
        const page = await store.pageAscending(prevSeq, want);
        for (const row of page) {
          if (row.seq !== prevSeq + 1) {
            // Retention may have removed the oldest events since the walk began (housekeeping
            // runs every minute): its anchor then moved past the gap, and the walk goes on from
            // there. A gap the anchor does not cover is a deletion.
            const moved = await deps.anchor?.();
            if (moved !== undefined && moved.seq > prevSeq) {
              prevSeq = moved.seq;
              prevHash = moved.hash;
              base.prunedThrough = moved.seq;
              continue walk;
            }
            return fail(prevSeq + 1, `event ${prevSeq + 1} is missing (next present is ${row.seq})`);
          }
          if (row.prev_hash !== prevHash)
            return fail(row.seq, `event ${row.seq} does not link to event ${prevSeq}`);
          if (chainHash(row) !== row.hash)
            return fail(row.seq, `event ${row.seq} was modified after it was written`);
          prevSeq = row.seq;
          prevHash = row.hash;
          checked++;
        }
        onProgress?.(checked, head.seq);
        if (page.length < want) {
          // The rest is gone: a deletion, unless retention pruned it since the walk began.
          const moved = prevSeq < head.seq ? await deps.anchor?.() : undefined;
          if (moved !== undefined && moved.seq > prevSeq) {
            prevSeq = moved.seq;
            prevHash = moved.hash;
            base.prunedThrough = moved.seq;
            continue;
          }
          break;
        }
      }
      const result = { ...base, checked, fromSeq, toSeq: prevSeq };
      if (prevSeq < head.seq && checked >= limit) return { ...result, ok: true, complete: false };
      if (prevSeq !== head.seq || prevHash !== head.hash)
        return fail(
          prevSeq + 1,
          `the chain ends at event ${prevSeq} but the head records event ${head.seq}: events were deleted`,
        );
      return { ...result, ok: true, complete: true };
    },
  };
}

export type AuditService = ReturnType<typeof createAuditService>;
