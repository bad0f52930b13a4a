import { sql, type Transaction } from 'kysely';
import type { Database } from '../../db/client.ts';
import { coalescedReads } from '../../db/coalesce.ts';
import type { ConnectionsTable, DB } from '../../db/schema.ts';
import { allowedFrom, type ConnectionStatus, SUPERSEDED } from './connection-status.ts';
import { createCredentialMoveQueries } from './credentials-move-store.ts';
import { createLeaseQueries } from './lease-store.ts';
import { createRefreshQueue } from './refresh-queue-store.ts';

export type { LeaseTimes } from './lease-store.ts';

/** A connection with what the token path needs of its provider, read in one indexed query. */
export interface ConnectionWithProvider extends ConnectionsTable {
  provider_name: string;
  provider_auth_type: string;
  provider_profile: string;
  provider_deleted_at: number | null;
}

/**
 * Every query on `connections`. The refresh lease's queries are in `lease-store.ts`, the worker's
 * queue in `refresh-queue-store.ts`; this file holds the reads, the status changes, listing and
 * housekeeping's expiries, and puts the three together as one store.
 */
export function createConnectionsStore(
  db: Database,
  options: {
    /**
     * The refresh lease (`NEXUS_REFRESH_LEASE_SECONDS`): maintenance that takes a connection's
     * lease (`holdLease`) leaves a refresher's lease with a call in flight alone for as long as the
     * refresher would, whatever its own lease.
     */
    refreshLeaseMs?: number;
  } = {},
) {
  const k = db.kysely;

  /**
   * Adds the status changes the triggers recorded (migration 0018) into the counts and deletes
   * them. Concurrent folds on PostgreSQL each take only the rows they deleted; SQLite has one writer.
   */
  async function foldStatusCounts(): Promise<void> {
    if (db.dialect === 'postgres') {
      await sql`WITH moved AS (DELETE FROM connection_count_deltas RETURNING status, delta)
        INSERT INTO connection_counts (status, n)
        SELECT status, SUM(delta)::bigint FROM moved GROUP BY status ORDER BY status
        ON CONFLICT (status) DO UPDATE SET n = connection_counts.n + EXCLUDED.n`.execute(k);
      return;
    }
    await k.transaction().execute(async (trx) => {
      await sql`INSERT INTO connection_counts (status, n)
        SELECT status, SUM(delta) FROM connection_count_deltas WHERE true GROUP BY status
        ON CONFLICT (status) DO UPDATE SET n = n + excluded.n`.execute(trx);
      await sql`DELETE FROM connection_count_deltas`.execute(trx);
    });
  }

  const refreshGraceMs = options.refreshLeaseMs ?? 45_000;
  const withProvider = () =>
    k
      .selectFrom('connections')
      .innerJoin('providers', 'providers.id', 'connections.provider_id')
      .selectAll('connections')
      .select([
        'providers.name as provider_name',
        'providers.auth_type as provider_auth_type',
        'providers.profile as provider_profile',
        'providers.deleted_at as provider_deleted_at',
      ]);

  /*
   * The token path's one indexed query (primary key, joined to its provider), compiled once and
   * run as a prepared statement. On PostgreSQL concurrent reads are coalesced: requests that
   * arrive while a read is on the wire share the next one (`id = ANY($1)`), so under load one
   * round trip serves many requests. Nothing is cached: each answer is read after it was asked for.
   */
  const findOne = withProvider().where('connections.id', '=', '').compile();
  const findMany = withProvider()
    .where((eb) => eb('connections.id', '=', eb.fn.any(eb.val<string[]>([]))))
    .compile();
  const findCoalesced = coalescedReads<string, ConnectionWithProvider>(
    async (ids) => {
      const { rows } = await db.prepared<ConnectionWithProvider>(findMany.sql, [ids]);
      return new Map(rows.map((r) => [r.id, r]));
    },
    { maxBatch: 200, maxInFlight: 2 },
  );

  const store = {
    ...createLeaseQueries(db, refreshGraceMs),
    ...createRefreshQueue(db),
    ...createCredentialMoveQueries(db),

    async insert(row: ConnectionsTable, trx: Transaction<DB> | typeof k = k): Promise<void> {
      await trx.insertInto('connections').values(row).execute();
    },

    async find(id: string): Promise<ConnectionWithProvider | undefined> {
      if (db.dialect === 'postgres') return findCoalesced(id);
      return (await db.prepared<ConnectionWithProvider>(findOne.sql, [id])).rows[0];
    },

    /** Newest active connection of a workspace for a provider (index: workspace, provider, status, created_at). */
    async findNewestActive(
      workspaceId: string,
      providerId: string,
    ): Promise<ConnectionWithProvider | undefined> {
      return withProvider()
        .where('connections.workspace_id', '=', workspaceId)
        .where('connections.provider_id', '=', providerId)
        .where('connections.status', '=', 'active')
        .orderBy('connections.created_at', 'desc')
        .limit(1)
        .executeTakeFirst();
    },

    /**
     * Moves a connection to `to` only from a status the transition table allows; returns whether
     * it moved. `set` carries the other columns that change with it.
     */
    async transition(
      id: string,
      to: ConnectionStatus,
      set: Partial<ConnectionsTable>,
      now: number,
      trx: Transaction<DB> | typeof k = k,
      /** Only if the row is still at this version (nothing, a refresh included, changed it since). */
      version?: number,
    ): Promise<boolean> {
      let q = trx
        .updateTable('connections')
        .set((eb) => ({ ...set, status: to, updated_at: now, version: eb('version', '+', 1) }))
        .where('id', '=', id)
        .where('status', 'in', allowedFrom(to));
      if (version !== undefined) q = q.where('version', '=', version);
      const result = await q.executeTakeFirst();
      return Number(result.numUpdatedRows) === 1;
    },

    /**
     * Activates a pending connection and supersedes (revokes) the workspace's older active
     * connections to the same provider, in one transaction.
     */
    async activate(
      id: string,
      set: Partial<ConnectionsTable>,
      now: number,
    ): Promise<{ activated: boolean; superseded: { id: string; credentials: Uint8Array | null }[] }> {
      return k.transaction().execute(async (trx) => {
        const row = await trx
          .selectFrom('connections')
          .select(['workspace_id', 'provider_id'])
          .where('id', '=', id)
          .executeTakeFirst();
        if (row === undefined) return { activated: false, superseded: [] };
        const activated = await store.transition(
          id,
          'active',
          { ...set, pending_expires_at: null },
          now,
          trx,
        );
        if (!activated) return { activated: false, superseded: [] };
        const older = await trx
          .selectFrom('connections')
          .select(['id', 'credentials'])
          .where('workspace_id', '=', row.workspace_id)
          .where('provider_id', '=', row.provider_id)
          .where('status', 'in', ['active', 'attention_required', 'expired'])
          .where('id', '!=', id)
          .execute();
        for (const o of older) {
          await store.transition(
            o.id,
            'revoked',
            { credentials: null, revoked_at: now, last_error: SUPERSEDED },
            now,
            trx,
          );
        }
        return { activated: true, superseded: older };
      });
    },
    /**
     * One page of connections in id order after `after`, filtered (indexes, each in id order but
     * the workspace one, whose few rows are sorted: primary key; status + id; provider + id;
     * workspace + provider + status). Never the credentials.
     */
    async listPage(
      filter: {
        status?: string | undefined;
        workspaceId?: string | undefined;
        providerId?: string | undefined;
      },
      after: string | undefined,
      limit: number,
    ) {
      let q = k
        .selectFrom('connections')
        .innerJoin('providers', 'providers.id', 'connections.provider_id')
        .select([
          'connections.id',
          'connections.workspace_id',
          'connections.provider_id',
          'providers.name as provider_name',
          'connections.status',
          'connections.scopes',
          'connections.connection_config',
          'connections.access_expires_at',
          'connections.last_refreshed_at',
          'connections.last_error',
          'connections.created_at',
          'connections.updated_at',
        ]);
      if (filter.status !== undefined) q = q.where('connections.status', '=', filter.status);
      if (filter.workspaceId !== undefined) q = q.where('connections.workspace_id', '=', filter.workspaceId);
      if (filter.providerId !== undefined) q = q.where('connections.provider_id', '=', filter.providerId);
      if (after !== undefined) q = q.where('connections.id', '>', after);
      return q.orderBy('connections.id').limit(limit).execute();
    },

    foldStatusCounts,

    /** Connections by status (zero for a status none has any more): folds, then reads a few rows. */
    async countByStatus(): Promise<Record<string, number>> {
      await foldStatusCounts();
      const rows = await k.selectFrom('connection_counts').select(['status', 'n']).execute();
      return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
    },

    /**
     * Connections broken for longer than the horizon become `expired`: active ones whose refresh has
     * failed since before `cutoff` and whose access token is already dead, and `attention_required`
     * ones nobody reconnected since before `cutoff`. Returns the ids it expired.
     */
    async expireBroken(cutoff: number, now: number, limit: number): Promise<string[]> {
      const failing = await k
        .selectFrom('connections')
        .select('id')
        .where('failing_since', '<', cutoff)
        .where('status', '=', 'active')
        .where('access_expires_at', '<', now)
        .limit(limit)
        .execute();
      const stale = await k
        .selectFrom('connections')
        .select('id')
        .where('status', '=', 'attention_required')
        .where('updated_at', '<', cutoff)
        .limit(limit)
        .execute();
      const expired: string[] = [];
      for (const row of [...failing, ...stale]) {
        const set = { refresh_due_at: null, last_error: 'gave_up', credentials: null };
        if (await store.transition(row.id, 'expired', set, now)) expired.push(row.id);
      }
      return expired;
    },

    /** Pending connections past their expiry become `expired` (housekeeping); returns their ids. */
    async expirePending(now: number, limit: number): Promise<string[]> {
      const due = await k
        .selectFrom('connections')
        .select('id')
        .where('status', '=', 'pending')
        .where('pending_expires_at', '<', now)
        .limit(limit)
        .execute();
      const expired: string[] = [];
      for (const row of due)
        if (await store.transition(row.id, 'expired', { pending_expires_at: null }, now))
          expired.push(row.id);
      return expired;
    },
  };
  return store;
}

export type ConnectionsStore = ReturnType<typeof createConnectionsStore>;
