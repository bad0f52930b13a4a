import { type Expression, type ExpressionBuilder, type SqlBool, sql, type Transaction } from 'kysely';
import type { Database } from '../../db/client.ts';
import { coalescedReads } from '../../db/coalesce.ts';
import type { ConnectionsTable, DB } from '../../db/schema.ts';
import { allowedFrom, type ConnectionStatus } from './connection-status.ts';

/** A connection with what the token path needs of its provider, read in one indexed query. */
export interface ConnectionWithProvider extends ConnectionsTable {
  provider_name: string;
  provider_auth_type: string;
  provider_profile: string;
  provider_deleted_at: number | null;
}

/**
 * How long a refresh lease lasts, and how much longer a lease whose holder had a provider call in
 * flight is left alone after it ran out (the holder may be slow rather than dead: its answer may
 * still arrive, and taking over would spend the refresh token a second time).
 */
export interface LeaseTimes {
  readonly leaseMs: number;
  readonly graceMs: number;
}

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
  const refreshGraceMs = options.refreshLeaseMs ?? 45_000;
  /*
   * Leases are timed by the database's clock, never the replicas' own: two brokers whose clocks
   * differ by seconds must still agree on whether a lease has run out.
   */
  const dbNow =
    db.dialect === 'postgres'
      ? sql<number>`(floor(extract(epoch from clock_timestamp()) * 1000))::bigint`
      : sql<number>`CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)`;
  /** The lease is free: never taken, or run out (plus `graceMs` when a provider call was in flight). */
  const leaseFree =
    (graceMs: number) =>
    (eb: ExpressionBuilder<DB, 'connections'>): Expression<SqlBool> =>
      eb.or([
        eb('refresh_lease_until', 'is', null),
        eb(
          'refresh_lease_until',
          '<',
          sql<number>`CASE WHEN refresh_started_at IS NULL THEN ${dbNow} ELSE ${dbNow} - ${graceMs} END`,
        ),
      ]);
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
    ): Promise<boolean> {
      const result = await trx
        .updateTable('connections')
        .set((eb) => ({ ...set, status: to, updated_at: now, version: eb('version', '+', 1) }))
        .where('id', '=', id)
        .where('status', 'in', allowedFrom(to))
        .executeTakeFirst();
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
    ): Promise<{ activated: boolean; superseded: string[] }> {
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
          .select('id')
          .where('workspace_id', '=', row.workspace_id)
          .where('provider_id', '=', row.provider_id)
          .where('status', 'in', ['active', 'attention_required', 'expired'])
          .where('id', '!=', id)
          .execute();
        for (const o of older) {
          await store.transition(
            o.id,
            'revoked',
            { credentials: null, revoked_at: now, last_error: 'superseded' },
            now,
            trx,
          );
        }
        return { activated: true, superseded: older.map((o) => o.id) };
      });
    },

    /**
     * Takes the refresh lease of an active connection unless another holder's lease is still
     * running. This is the cross-process single-flight: only the holder calls the provider.
     * Taking the lease does not change `version`, so waiters see the refresh complete by it.
     * `leaseId` is unique to this lease (fencing: only its holder may write the outcome).
     */
    async acquireLease(id: string, leaseId: string, version: number, lease: LeaseTimes): Promise<boolean> {
      const result = await k
        .updateTable('connections')
        .set({ refresh_lease_owner: leaseId, refresh_lease_until: sql<number>`${dbNow} + ${lease.leaseMs}` })
        .where('id', '=', id)
        .where('status', '=', 'active')
        // The version we read: a refresh that completed since then changes it, and we must not
        // spend the refresh token we hold (a rotating provider would revoke the whole grant).
        .where('version', '=', version)
        .where(leaseFree(lease.graceMs))
        .executeTakeFirst();
      return Number(result.numUpdatedRows) === 1;
    },

    /**
     * Records, under the lease, that a provider call spending the stored refresh token starts now
     * (unless an earlier one's outcome is still unknown), and extends the lease from now. False when the lease is no longer ours: do not call.
     */
    async markInFlight(id: string, leaseId: string, leaseMs: number): Promise<boolean> {
      const result = await k
        .updateTable('connections')
        .set({
          // An earlier call whose outcome is still unknown keeps its time.
          refresh_started_at: sql<number>`COALESCE(refresh_started_at, ${dbNow})`,
          refresh_lease_until: sql<number>`${dbNow} + ${leaseMs}`,
        })
        .where('id', '=', id)
        .where('refresh_lease_owner', '=', leaseId)
        // Revoked (or superseded) meanwhile: nothing may be spent for it any more.
        .where('status', '=', 'active')
        .executeTakeFirst();
      return Number(result.numUpdatedRows) === 1;
    },

    /** Extends a lease still held (the holder's heartbeat while its provider call runs). */
    async renewLease(id: string, leaseId: string, leaseMs: number): Promise<boolean> {
      const result = await k
        .updateTable('connections')
        .set({ refresh_lease_until: sql<number>`${dbNow} + ${leaseMs}` })
        .where('id', '=', id)
        .where('refresh_lease_owner', '=', leaseId)
        .executeTakeFirst();
      return Number(result.numUpdatedRows) === 1;
    },

    /**
     * Writes a refresh result (or a new status) and releases the lease, if we still hold it: a
     * holder whose lease was taken over writes nothing (fencing). The outcome is known, so the
     * in-flight mark is cleared.
     */
    async completeLease(
      id: string,
      leaseId: string,
      to: ConnectionStatus,
      set: Partial<ConnectionsTable>,
      now: number,
    ): Promise<boolean> {
      const result = await k
        .updateTable('connections')
        .set((eb) => ({
          refresh_started_at: null,
          refresh_attempted_at: now,
          ...set,
          status: to,
          refresh_lease_owner: null,
          refresh_lease_until: null,
          updated_at: now,
          version: eb('version', '+', 1),
        }))
        .where('id', '=', id)
        .where('refresh_lease_owner', '=', leaseId)
        .where('status', 'in', allowedFrom(to))
        .executeTakeFirst();
      return Number(result.numUpdatedRows) === 1;
    },

    /**
     * Releases the lease after a failed attempt: the credentials and status stay, the failure is
     * counted and the next attempt scheduled (`retryAt`, or nothing counted when undefined).
     * The in-flight mark stays unless `clearInFlight`: only an attempt that set it, and whose call
     * provably was not processed (never sent, or answered with an error), may clear it. `version`
     * moves, so a reader that decided to refresh before this attempt ended decides again (and
     * sees the backoff) instead of calling at once. `countAttempt: false` leaves the floor between
     * refresh attempts alone (a down-scoping call is not a refresh of the connection's token).
     */
    async releaseLease(
      id: string,
      leaseId: string,
      lastError: string,
      now: number,
      retryAt?: number,
      options: { clearInFlight?: boolean; countAttempt?: boolean } = {},
    ): Promise<void> {
      await k
        .updateTable('connections')
        .set((eb) => ({
          refresh_lease_owner: null,
          refresh_lease_until: null,
          last_error: lastError,
          ...(options.countAttempt === false ? {} : { refresh_attempted_at: now }),
          updated_at: now,
          version: eb('version', '+', 1),
          ...(options.clearInFlight ? { refresh_started_at: null } : {}),
          ...(retryAt === undefined
            ? {}
            : {
                refresh_due_at: retryAt,
                refresh_failures: eb('refresh_failures', '+', 1),
                failing_since: eb.fn.coalesce('failing_since', eb.val(now)),
              }),
        }))
        .where('id', '=', id)
        .where('refresh_lease_owner', '=', leaseId)
        .execute();
    },

    /**
     * Takes the refresh lease of a connection in any status, if free, without changing `version`:
     * maintenance that rewrites the credentials (a rewrap of the secret-backend copy) excludes
     * refreshes this way, and gives the lease back with `dropLease`.
     */
    async holdLease(id: string, owner: string, leaseMs: number): Promise<boolean> {
      const result = await k
        .updateTable('connections')
        .set({ refresh_lease_owner: owner, refresh_lease_until: sql<number>`${dbNow} + ${leaseMs}` })
        .where('id', '=', id)
        .where(leaseFree(refreshGraceMs))
        .executeTakeFirst();
      return Number(result.numUpdatedRows) === 1;
    },

    /** Gives a lease back untouched (the worker claimed more than it may run now, or nothing was called). */
    async dropLease(id: string, leaseId: string): Promise<void> {
      await k
        .updateTable('connections')
        .set({ refresh_lease_owner: null, refresh_lease_until: null })
        .where('id', '=', id)
        .where('refresh_lease_owner', '=', leaseId)
        .execute();
    },

    /** Nothing left for the worker to do for this connection (not refreshable, or not active). */
    async clearDue(id: string): Promise<void> {
      await k.updateTable('connections').set({ refresh_due_at: null }).where('id', '=', id).execute();
    },

    /**
     * The worker's claim: the earliest due active connections whose lease is free, leased under
     * `leaseId` in one short transaction. On PostgreSQL the rows are locked with
     * `FOR UPDATE SKIP LOCKED`, so replicas claiming at the same time take disjoint sets.
     * `tookOver` marks a lease that had expired in another holder's hands (a crashed replica).
     */
    async claimDue(
      leaseId: string,
      now: number,
      lease: LeaseTimes,
      limit: number,
      skipProviders: readonly string[],
    ): Promise<{ id: string; provider_id: string; tookOver: boolean }[]> {
      return k.transaction().execute(async (trx) => {
        let query = trx
          .selectFrom('connections')
          .select(['id', 'provider_id', 'refresh_lease_owner'])
          .where('status', '=', 'active')
          .where('refresh_due_at', '<=', now)
          .where(leaseFree(lease.graceMs))
          .orderBy('refresh_due_at')
          .limit(limit);
        if (skipProviders.length > 0) query = query.where('provider_id', 'not in', [...skipProviders]);
        if (db.dialect === 'postgres') query = query.forUpdate().skipLocked();
        const due = await query.execute();
        if (due.length === 0) return [];
        await trx
          .updateTable('connections')
          .set({
            refresh_lease_owner: leaseId,
            refresh_lease_until: sql<number>`${dbNow} + ${lease.leaseMs}`,
          })
          .where(
            'id',
            'in',
            due.map((d) => d.id),
          )
          .execute();
        return due.map((d) => ({
          id: d.id,
          provider_id: d.provider_id,
          tookOver: d.refresh_lease_owner !== null,
        }));
      });
    },

    /** Active connections whose refresh is due (the worker's queue depth), by index range. */
    async countDue(now: number): Promise<number> {
      const row = await k
        .selectFrom('connections')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('status', '=', 'active')
        .where('refresh_due_at', '<=', now)
        .executeTakeFirst();
      return Number(row?.n ?? 0);
    },

    /**
     * One page of connections in id order after `after`, filtered (indexes: primary key; status +
     * updated_at; workspace + provider + status). Never the credentials.
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

    async countByStatus(): Promise<Record<string, number>> {
      const rows = await k
        .selectFrom('connections')
        .select((eb) => ['status', eb.fn.countAll<number>().as('n')])
        .groupBy('status')
        .execute();
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
