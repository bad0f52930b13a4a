import type { AuditContext, AuditService } from '../audit/audit.service.ts';
import type { ConnectionsStore } from './connections.store.ts';
import type { StoredCredentials } from './connections.types.ts';
import type { CredentialStore } from './credential-store.ts';
import type { RefreshSchedule } from './refresh-schedule.ts';

/** A connection brought over from another broker (`nexus import original`), keeping its id. */
export interface ImportedConnection {
  readonly id: string;
  readonly workspaceId: string;
  readonly providerId: string;
  /**
   * `active` with its credentials; `attention_required` without any (the user must reconnect, and
   * the dead grant is not worth keeping), so an agent asking by id gets the same 409 as before.
   */
  readonly status: 'active' | 'attention_required';
  readonly scopes: readonly string[];
  readonly credentials?: StoredCredentials;
  /** When the access token expires (null: never, or unknown) and when it was obtained. */
  readonly accessExpiresAt: number | null;
  readonly accessIssuedAt: number | null;
  readonly createdAt: number;
}

/** What Nexus holds for a connection id, for comparing with the source. */
export interface ExistingConnection {
  readonly workspaceId: string;
  readonly providerId: string;
  readonly status: string;
  /** Whether Nexus has refreshed it since it was written: its tokens are then newer than any copy. */
  readonly refreshedHere: boolean;
  readonly credentials: StoredCredentials | undefined;
}

/** A move is milliseconds; a killed run leaves its lease for this long at most. */
const IMPORT_LEASE_MS = 20_000;

/**
 * The connections module's writer for imported rows (the owner of a table is its only writer).
 * Credentials are sealed and bound to the row by the same credential store activation uses, and
 * the refresh schedule is the one activation computes. Rows are inserted as they are, without
 * superseding the workspace's other connections to the provider: the source may hold several,
 * and an agent may have stored the id of any of them.
 */
export function createConnectionImport(deps: {
  store: Pick<ConnectionsStore, 'insert' | 'find' | 'holdLease' | 'dropLease' | 'replaceImportedTokens'>;
  credentials: CredentialStore;
  schedule: RefreshSchedule;
  audit: Pick<AuditService, 'record'>;
  owner: string;
  now?: () => number;
}) {
  const { store, credentials, schedule, audit } = deps;
  const now = deps.now ?? Date.now;

  /** The columns that carry the token and its schedule (`refresh_due_at` as activation sets it). */
  function tokenColumns(c: ImportedConnection, sealed: Uint8Array | null) {
    const refreshable = c.credentials?.kind === 'oauth2' && c.credentials.refresh_token !== undefined;
    const issuedAt = c.accessIssuedAt ?? now();
    return {
      credentials: sealed,
      access_expires_at: c.accessExpiresAt,
      access_issued_at: c.status === 'active' ? issuedAt : null,
      refresh_due_at:
        c.status === 'active' && refreshable ? schedule.dueAt(issuedAt, c.accessExpiresAt) : null,
    };
  }

  return {
    async existing(id: string): Promise<ExistingConnection | undefined> {
      const row = await store.find(id);
      if (row === undefined) return undefined;
      return {
        workspaceId: row.workspace_id,
        providerId: row.provider_id,
        status: row.status,
        refreshedHere: row.last_refreshed_at !== null,
        credentials: row.credentials === null ? undefined : await credentials.read(row),
      };
    },

    /** Inserts a connection that does not exist yet; false when its id is already taken. */
    async insert(ctx: AuditContext, c: ImportedConnection): Promise<boolean> {
      // Checked before the credentials are written: with TOKEN_STORE=secret-backend the copy goes
      // to connections/<id>, and it must never overwrite the copy of a connection that exists.
      if ((await store.find(c.id)) !== undefined) return false;
      const sealed = c.credentials === undefined ? null : await credentials.write(c.id, c.credentials);
      const t = now();
      const inserting = store.insert({
        id: c.id,
        workspace_id: c.workspaceId,
        provider_id: c.providerId,
        status: c.status,
        scopes: JSON.stringify(c.scopes),
        ...tokenColumns(c, sealed),
        pending_expires_at: null,
        refresh_lease_until: null,
        refresh_lease_owner: null,
        last_refreshed_at: null,
        last_error: c.status === 'attention_required' ? 'imported_attention_required' : null,
        version: 1,
        created_at: c.createdAt,
        // The give-up horizon of an attention_required row counts from the import.
        updated_at: t,
        revoked_at: null,
        refresh_failures: 0,
        failing_since: null,
        refresh_started_at: null,
        refresh_attempted_at: null,
        connection_config: null,
      });
      try {
        await inserting;
      } catch (error) {
        // A backend copy no row points at is removed (unless a row appeared meanwhile after all).
        if (
          sealed !== null &&
          credentials.mode === 'secret-backend' &&
          (await store.find(c.id)) === undefined
        )
          await credentials.remove(c.id, sealed).catch(() => {});
        throw error;
      }
      await audit.record(ctx, {
        action: 'connection.imported',
        resourceType: 'connection',
        resourceId: c.id,
        details: { source: 'original', status: c.status, workspace_id: c.workspaceId },
      });
      return true;
    },

    /**
     * Replaces the tokens of an imported connection that Nexus has not refreshed itself (the
     * source refreshed it since the last import), under the connection's refresh lease so that no
     * refresh runs meanwhile. `busy`: the lease is held; `kept`: Nexus refreshed it (or it is no
     * longer active) in the meantime, and its own tokens stay.
     */
    async replaceCredentials(ctx: AuditContext, c: ImportedConnection): Promise<'updated' | 'busy' | 'kept'> {
      if (c.credentials === undefined) return 'kept';
      if (!(await store.holdLease(c.id, deps.owner, IMPORT_LEASE_MS))) return 'busy';
      try {
        const row = await store.find(c.id);
        if (row === undefined || row.status !== 'active' || row.last_refreshed_at !== null) return 'kept';
        const sealed = await credentials.write(c.id, c.credentials);
        const replaced = await store.replaceImportedTokens(
          c.id,
          deps.owner,
          { ...tokenColumns(c, sealed), scopes: JSON.stringify(c.scopes) },
          now(),
        );
        if (!replaced) {
          // Revoked or expired meanwhile (neither needs the lease): its backend copy goes too.
          if (credentials.mode === 'secret-backend') await credentials.remove(c.id, sealed).catch(() => {});
          return 'kept';
        }
        // The copy the row held before (TOKEN_STORE=secret-backend: the new one is at a path of its own).
        await credentials.discard(c.id, row.credentials).catch(() => {});
        await audit.record(ctx, {
          action: 'connection.import_updated',
          resourceType: 'connection',
          resourceId: c.id,
          details: { source: 'original' },
        });
        return 'updated';
      } finally {
        await store.dropLease(c.id, deps.owner);
      }
    },
  };
}

export type ConnectionImport = ReturnType<typeof createConnectionImport>;
