import type { Transaction } from 'kysely';
import type { Database } from '../../db/client.ts';
import type { ConnectionsTable, DB } from '../../db/schema.ts';
import { allowedFrom, type ConnectionStatus } from './connection-status.ts';

/** A connection with what the token path needs of its provider, read in one indexed query. */
export interface ConnectionWithProvider extends ConnectionsTable {
  provider_name: string;
  provider_auth_type: string;
  provider_profile: string;
  provider_deleted_at: number | null;
}

export function createConnectionsStore(db: Database) {
  const k = db.kysely;
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

  const store = {
    async insert(row: ConnectionsTable, trx: Transaction<DB> | typeof k = k): Promise<void> {
      await trx.insertInto('connections').values(row).execute();
    },

    async find(id: string): Promise<ConnectionWithProvider | undefined> {
      return withProvider().where('connections.id', '=', id).executeTakeFirst();
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
     */
    async acquireLease(
      id: string,
      owner: string,
      version: number,
      now: number,
      leaseMs: number,
    ): Promise<boolean> {
      const result = await k
        .updateTable('connections')
        .set({ refresh_lease_owner: owner, refresh_lease_until: now + leaseMs })
        .where('id', '=', id)
        .where('status', '=', 'active')
        // The version we read: a refresh that completed since then changes it, and we must not
        // spend the refresh token we hold (a rotating provider would revoke the whole grant).
        .where('version', '=', version)
        .where((eb) => eb.or([eb('refresh_lease_until', 'is', null), eb('refresh_lease_until', '<', now)]))
        .executeTakeFirst();
      return Number(result.numUpdatedRows) === 1;
    },

    /** Writes a refresh result (or a new status) and releases the lease, if we still hold it. */
    async completeLease(
      id: string,
      owner: string,
      to: ConnectionStatus,
      set: Partial<ConnectionsTable>,
      now: number,
    ): Promise<boolean> {
      const result = await k
        .updateTable('connections')
        .set((eb) => ({
          ...set,
          status: to,
          refresh_lease_owner: null,
          refresh_lease_until: null,
          updated_at: now,
          version: eb('version', '+', 1),
        }))
        .where('id', '=', id)
        .where('refresh_lease_owner', '=', owner)
        .where('status', 'in', allowedFrom(to))
        .executeTakeFirst();
      return Number(result.numUpdatedRows) === 1;
    },

    /** Releases the lease without changing anything else (transient upstream failure). */
    async releaseLease(id: string, owner: string, lastError: string, now: number): Promise<void> {
      await k
        .updateTable('connections')
        .set({ refresh_lease_owner: null, refresh_lease_until: null, last_error: lastError, updated_at: now })
        .where('id', '=', id)
        .where('refresh_lease_owner', '=', owner)
        .execute();
    },

    /** Pending connections past their expiry become `expired` (housekeeping). */
    async expirePending(now: number, limit: number): Promise<number> {
      const due = await k
        .selectFrom('connections')
        .select('id')
        .where('status', '=', 'pending')
        .where('pending_expires_at', '<', now)
        .limit(limit)
        .execute();
      let n = 0;
      for (const row of due)
        if (await store.transition(row.id, 'expired', { pending_expires_at: null }, now)) n++;
      return n;
    },
  };
  return store;
}

export type ConnectionsStore = ReturnType<typeof createConnectionsStore>;
