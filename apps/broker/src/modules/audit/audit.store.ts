import type { Kysely, Transaction } from 'kysely';
import type { Database, SyncStatements } from '../../db/client.ts';
import type { AuditEventsTable, DB } from '../../db/schema.ts';

export interface AuditQuery {
  action?: string | undefined;
  actor?: string | undefined;
  resourceType?: string | undefined;
  resourceId?: string | undefined;
  since?: number | undefined;
  until?: number | undefined;
  beforeSeq?: number | undefined;
  limit: number;
}

type Head = { seq: number; hash: string };

/** Every column of `audit_events`, with its PostgreSQL type. */
const COLUMNS = {
  seq: 'bigint',
  id: 'text',
  occurred_at: 'bigint',
  actor: 'text',
  action: 'text',
  resource_type: 'text',
  resource_id: 'text',
  outcome: 'text',
  ip: 'text',
  user_agent: 'text',
  request_id: 'text',
  details: 'text',
  prev_hash: 'text',
  hash: 'text',
} as const satisfies Record<keyof AuditEventsTable, string>;
const columns = Object.keys(COLUMNS) as (keyof AuditEventsTable)[];
const names = columns.join(', ');

/**
 * One statement, one round trip, one implicit transaction: move the head from the one the batch
 * was hashed on ($3, $4) to its last row ($1, $2), and insert the rows ($5, a JSON array) only if
 * the head moved. A concurrent writer holding the head row makes the UPDATE wait, then re-check
 * its condition against the committed head (READ COMMITTED), so a batch hashed on a stale head
 * inserts nothing instead of forking the chain. The text is the same for every batch size, so it
 * is prepared once; JSON.stringify of the batch is cheaper than encoding 14 parameter arrays.
 */
const APPEND_PG = `WITH moved AS (
  UPDATE audit_chain SET seq = $1, hash = $2 WHERE id = 1 AND seq = $3 AND hash = $4 RETURNING id
)
INSERT INTO audit_events (${names})
SELECT ${names} FROM json_to_recordset($5::json)
  AS e(${Object.entries(COLUMNS)
    .map(([c, t]) => `${c} ${t}`)
    .join(', ')})
WHERE EXISTS (SELECT 1 FROM moved)`;

const INSERT_SQLITE = `INSERT INTO audit_events (${names}) VALUES (${columns.map(() => '?').join(', ')})`;

/**
 * SQLite: the batch under the write lock, one prepared single-row INSERT per event (cheaper in
 * SQLite than one multi-row INSERT of 14 × n parameters), then the head. Runs inside
 * `Database.writeSync`: one transaction, rolled back whole if any statement fails.
 */
function appendSqlite(sql: SyncStatements, build: (head: Head) => AuditEventsTable[]): void {
  const [head] = sql.all<Head>('SELECT seq, hash FROM audit_chain WHERE id = 1', []);
  if (head === undefined) throw new Error('audit_chain has no head row (migrations not applied?)');
  const rows = build(head);
  if (rows.length === 0) return;
  for (const row of rows)
    sql.run(
      INSERT_SQLITE,
      columns.map((c) => row[c]),
    );
  const last = rows[rows.length - 1]!;
  sql.run('UPDATE audit_chain SET seq = ?, hash = ? WHERE id = 1', [last.seq, last.hash]);
}

/** Optimistic appends tried before falling back to a transaction that locks the head. */
const OPTIMISTIC_TRIES = 3;

/** Events `queryNewest` reads from the time index before it walks from the newest instead. */
const SINCE_PROBE = 1000;

export function createAuditStore(db: Database) {
  const k = db.kysely;
  // The head this process last wrote (PostgreSQL): the next batch is hashed on it without reading
  // it first. Only a hint: the append checks it, and another writer moving the head clears it.
  let knownHead: Head | undefined;

  async function readHead(): Promise<Head> {
    return k.selectFrom('audit_chain').select(['seq', 'hash']).where('id', '=', 1).executeTakeFirstOrThrow();
  }

  /** PostgreSQL: appends in one transaction holding the head row (`FOR UPDATE`). */
  async function appendLocked(build: (head: Head) => AuditEventsTable[]): Promise<Head | undefined> {
    return k.transaction().execute(async (trx: Transaction<DB>) => {
      const head = await trx
        .selectFrom('audit_chain')
        .select(['seq', 'hash'])
        .where('id', '=', 1)
        .forUpdate()
        .executeTakeFirstOrThrow();
      const rows = build(head);
      if (rows.length === 0) return undefined;
      await trx.insertInto('audit_events').values(rows).execute();
      const last = rows[rows.length - 1]!;
      await trx
        .updateTable('audit_chain')
        .set({ seq: last.seq, hash: last.hash })
        .where('id', '=', 1)
        .execute();
      return { seq: last.seq, hash: last.hash };
    });
  }

  /** PostgreSQL: one round trip per batch instead of five (BEGIN, lock, INSERT, UPDATE, COMMIT). */
  async function appendOptimistic(build: (head: Head) => AuditEventsTable[]): Promise<Head | undefined> {
    for (let attempt = 0; attempt < OPTIMISTIC_TRIES; attempt++) {
      const head = knownHead ?? (await readHead());
      knownHead = undefined;
      const rows = build(head);
      if (rows.length === 0) return head;
      const last = rows[rows.length - 1]!;
      const { affected } = await db.prepared(APPEND_PG, [
        last.seq,
        last.hash,
        head.seq,
        head.hash,
        JSON.stringify(rows),
      ]);
      if (affected === rows.length) return { seq: last.seq, hash: last.hash };
      // Another writer (a replica, the CLI) moved the head: read it and hash the batch again.
    }
    // Writers keep overtaking each other: queue on the head's lock instead.
    return appendLocked(build);
  }

  /** Newest first, keyset-paged on seq (every filter column is indexed together with seq). */
  async function query(q: AuditQuery, trx: Kysely<DB> = k): Promise<AuditEventsTable[]> {
    let sel = trx.selectFrom('audit_events').selectAll();
    if (q.action !== undefined) sel = sel.where('action', '=', q.action);
    if (q.actor !== undefined) sel = sel.where('actor', '=', q.actor);
    if (q.resourceType !== undefined) sel = sel.where('resource_type', '=', q.resourceType);
    if (q.resourceId !== undefined) sel = sel.where('resource_id', '=', q.resourceId);
    if (q.since !== undefined) sel = sel.where('occurred_at', '>=', q.since);
    if (q.until !== undefined) sel = sel.where('occurred_at', '<', q.until);
    if (q.beforeSeq !== undefined) sel = sel.where('seq', '<', q.beforeSeq);
    return sel.orderBy('seq', 'desc').limit(q.limit).execute();
  }

  return {
    /**
     * Appends rows after the current chain head, atomically. `build` hashes the batch on a head and
     * may be called again on a newer one. On PostgreSQL the batch is one statement that commits
     * only if the head is still the one it was hashed on; on SQLite a transaction under the write
     * lock. Either way batches from several replicas extend one chain.
     */
    async append(build: (head: Head) => AuditEventsTable[]): Promise<void> {
      if (db.writeSync !== undefined) {
        await db.writeSync((sql) => appendSqlite(sql, build));
        return;
      }
      knownHead = await appendOptimistic(build);
    },

    head: readHead,

    /** Rows with seq > afterSeq in ascending order, for verification. */
    async pageAscending(afterSeq: number, limit: number): Promise<AuditEventsTable[]> {
      return k
        .selectFrom('audit_events')
        .selectAll()
        .where('seq', '>', afterSeq)
        .orderBy('seq', 'asc')
        .limit(limit)
        .execute();
    },

    query,

    /**
     * The newest `limit` events (of some actions) at or after `since`, exactly as `query` answers,
     * but reading a bounded part of an index when few events match. `query` with `since` walks
     * `seq` (or `(action, seq)`) from the newest event and filters on time: when fewer than `limit`
     * match (a poll for the last minute) the walk goes on to the oldest event. So the time index is
     * asked first for at most SINCE_PROBE events at or after `since`: when that is all of them,
     * they are the candidates, fetched by `seq`. When there are more, the newest events are among
     * them (events are appended in time order, up to the write latency and the clock skew between
     * replicas) and the walk from the newest stops after about `limit` events; with actions, it
     * never leaves their part of the `(action, seq)` index.
     */
    async queryNewest(q: {
      actions?: readonly string[] | undefined;
      since?: number | undefined;
      limit: number;
    }): Promise<AuditEventsTable[]> {
      const walk = async () => {
        if (q.actions === undefined) return query(q);
        const each = await Promise.all(q.actions.map((action) => query({ ...q, action })));
        return each
          .flat()
          .sort((a, b) => b.seq - a.seq)
          .slice(0, q.limit);
      };
      if (q.since === undefined) return walk();
      const probe = Math.max(q.limit, SINCE_PROBE);
      const recent = await k
        .selectFrom('audit_events')
        .select(['seq', 'action'])
        .where('occurred_at', '>=', q.since)
        .orderBy('occurred_at')
        .limit(probe + 1)
        .execute();
      if (recent.length > probe) return walk();
      const wanted = q.actions === undefined ? undefined : new Set(q.actions);
      const seqs = recent
        .filter((r) => wanted === undefined || wanted.has(r.action))
        .map((r) => r.seq)
        .sort((a, b) => b - a)
        .slice(0, q.limit);
      if (seqs.length === 0) return [];
      return k
        .selectFrom('audit_events')
        .selectAll()
        .where('seq', 'in', seqs)
        .orderBy('seq', 'desc')
        .execute();
    },
  };
}

export type AuditStore = ReturnType<typeof createAuditStore>;
