import { type Expression, type ExpressionBuilder, type SqlBool, sql } from 'kysely';
import type { Database } from '../../db/client.ts';
import type { ConnectionsTable, DB } from '../../db/schema.ts';
import { allowedFrom, type ConnectionStatus } from './connection-status.ts';

/**
 * How long a refresh lease lasts, and how much longer a lease whose holder had a provider call in
 * flight is left alone after it ran out (the holder may be slow rather than dead: its answer may
 * still arrive, and taking over would spend the refresh token a second time).
 */
export interface LeaseTimes {
  readonly leaseMs: number;
  readonly graceMs: number;
}

/**
 * Now on the database's clock. Leases are timed by it, never the replicas' own: two brokers whose
 * clocks differ by seconds must still agree on whether a lease has run out.
 */
export function databaseNow(db: Database) {
  return db.dialect === 'postgres'
    ? sql<number>`(floor(extract(epoch from clock_timestamp()) * 1000))::bigint`
    : sql<number>`CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)`;
}

/** The lease is free: never taken, or run out (plus `graceMs` when a provider call was in flight). */
export const leaseFree =
  (dbNow: ReturnType<typeof databaseNow>, graceMs: number) =>
  (eb: ExpressionBuilder<DB, 'connections'>): Expression<SqlBool> =>
    eb.or([
      eb('refresh_lease_until', 'is', null),
      eb(
        'refresh_lease_until',
        '<',
        sql<number>`CASE WHEN refresh_started_at IS NULL THEN ${dbNow} ELSE ${dbNow} - ${graceMs} END`,
      ),
    ]);

/**
 * The refresh lease of a connection (decisions 0004, 0012): taking it, marking a provider call in
 * flight under it, renewing it, and giving it back with the outcome (fenced by the lease id), or
 * without. `refreshGraceMs`: how long maintenance's `holdLease` leaves a refresher's lease with a
 * call in flight alone after it ran out.
 */
export function createLeaseQueries(db: Database, refreshGraceMs: number) {
  const k = db.kysely;
  const dbNow = databaseNow(db);
  return {
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
        .where(leaseFree(dbNow, lease.graceMs))
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
     * refresh attempts alone (a down-scoping call is not a refresh of the connection's token);
     * `dueAt` schedules the next attempt without counting a failure.
     */
    async releaseLease(
      id: string,
      leaseId: string,
      lastError: string | null,
      now: number,
      retryAt?: number,
      options: { clearInFlight?: boolean; countAttempt?: boolean; dueAt?: number } = {},
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
          ...(options.dueAt === undefined ? {} : { refresh_due_at: options.dueAt }),
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
        .where(leaseFree(dbNow, refreshGraceMs))
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
  };
}
