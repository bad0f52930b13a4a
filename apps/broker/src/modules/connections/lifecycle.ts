import type { AuditContext, AuditService } from '../audit/audit.service.ts';
import { expiryOf } from '../providers/token-answer-quirks.ts';
import { SUPERSEDED } from './connection-status.ts';
import type { ConnectionsStore } from './connections.store.ts';
import type {
  ActivationTokens,
  ConnectionEventSink,
  ConnectionEventType,
  StoredCredentials,
} from './connections.types.ts';
import type { CredentialStore } from './credential-store.ts';
import type { RefreshSchedule } from './refresh-schedule.ts';

/** What `activate` came to: `activated` false when the connection was no longer pending. */
export interface Activation {
  readonly activated: boolean;
  /** The workspace's older connections to the provider that this one replaced (now revoked). */
  readonly superseded: string[];
  /** The provider's name, for the consent's return URL (`undefined` when not activated). */
  readonly providerName: string | undefined;
}

/**
 * The writes that take a connection through its life outside the refresh path: created pending by
 * a consent, failed or activated when it completes, expired by housekeeping. Each does the whole
 * step (credentials first, then the row, then audit and events), so no caller repeats a part of it.
 */
export function createLifecycle(deps: {
  store: ConnectionsStore;
  credentials: CredentialStore;
  audit: Pick<AuditService, 'record'>;
  events: ConnectionEventSink;
  schedule: RefreshSchedule;
  now: () => number;
}) {
  const { store, credentials, audit, events, now } = deps;

  /**
   * Deletes backend copies no row points at any more (first the one a row's `credentials` names,
   * when known: a listing may not show a copy made a moment ago). Best effort: an orphan stays
   * sealed and bound.
   */
  async function removeCopies(rows: readonly { id: string; credentials?: Uint8Array | null }[]) {
    if (credentials.mode !== 'secret-backend') return;
    for (const row of rows) await credentials.remove(row.id, row.credentials).catch(() => {});
  }

  async function emitFor(
    ids: readonly string[],
    type: ConnectionEventType,
    details?: Record<string, unknown>,
  ): Promise<void> {
    for (const id of ids) {
      const row = await store.find(id);
      if (row === undefined) continue;
      await events.emit({
        connectionId: id,
        workspaceId: row.workspace_id,
        providerId: row.provider_id,
        type,
        ...(details ? { details } : {}),
      });
    }
  }

  /** What the row holds once the credentials are stored, by kind. */
  function activationColumns(input: ActivationTokens, at: number) {
    if (input.kind === 'static') return { access_expires_at: null, last_error: null };
    const { tokens } = input;
    const config =
      input.connectionConfig === undefined
        ? {}
        : { connection_config: JSON.stringify(input.connectionConfig) };
    const expiresAt = expiryOf(at, tokens.expires_in);
    return {
      access_expires_at: expiresAt,
      access_issued_at: at,
      // Only a grant with a refresh token can be refreshed in the background.
      refresh_due_at: tokens.refresh_token ? deps.schedule.dueAt(at, expiresAt) : null,
      last_refreshed_at: null,
      last_error: null,
      ...(tokens.scope ? { scopes: JSON.stringify(tokens.scope.split(' ')) } : {}),
      ...config,
    };
  }

  function storedCredentials(input: ActivationTokens): StoredCredentials {
    if (input.kind === 'static') return { kind: 'static', fields: input.fields };
    const { tokens } = input;
    return {
      kind: 'oauth2',
      access_token: tokens.access_token,
      token_type: tokens.token_type ?? 'bearer',
      ...(tokens.refresh_token ? { refresh_token: tokens.refresh_token } : {}),
      ...(tokens.scope ? { scope: tokens.scope } : {}),
    };
  }

  return {
    /** A new connection waiting for its consent (`consent.start`), expiring at `expiresAt`. */
    async createPending(connection: {
      id: string;
      workspaceId: string;
      providerId: string;
      scopes: readonly string[];
      expiresAt: number;
      /** request-connection's `connection_config`, checked, with defaults filled in (decision 0015). */
      connectionConfig?: Readonly<Record<string, string>> | null;
    }): Promise<void> {
      const t = now();
      await store.insert({
        id: connection.id,
        workspace_id: connection.workspaceId,
        provider_id: connection.providerId,
        status: 'pending',
        scopes: JSON.stringify(connection.scopes),
        credentials: null,
        access_expires_at: null,
        pending_expires_at: connection.expiresAt,
        refresh_lease_until: null,
        refresh_lease_owner: null,
        last_refreshed_at: null,
        last_error: null,
        version: 1,
        created_at: t,
        updated_at: t,
        revoked_at: null,
        refresh_due_at: null,
        refresh_failures: 0,
        failing_since: null,
        access_issued_at: null,
        refresh_started_at: null,
        refresh_attempted_at: null,
        connection_config:
          connection.connectionConfig == null ? null : JSON.stringify(connection.connectionConfig),
      });
    },

    /**
     * A pending connection whose consent failed becomes `failed` with `error` as its last error.
     * With `audit`, the failure is recorded (`connection.failed`, the detail cut to 200 characters).
     */
    async markFailed(
      id: string,
      error: string,
      audited?: { ctx: AuditContext; detail?: string | undefined },
    ): Promise<void> {
      await store.transition(id, 'failed', { last_error: error, pending_expires_at: null }, now());
      if (audited === undefined) return;
      const { ctx, detail } = audited;
      await audit.record(ctx, {
        action: 'connection.failed',
        resourceType: 'connection',
        resourceId: id,
        outcome: 'failure',
        details: { error, ...(detail ? { detail: detail.slice(0, 200) } : {}) },
      });
    },

    /**
     * Activates a pending connection with what its consent brought: stores the credentials (before
     * the row changes, so it never points at credentials that were not stored), activates the row
     * and supersedes the workspace's older connections to the provider (one transaction), deletes
     * their backend copies, records `connection.activated` (with `details` added: never a secret)
     * and emits the events. A connection no longer pending is left alone, its copy removed.
     * A failure to store the credentials is thrown before anything changed.
     */
    async activate(
      ctx: AuditContext,
      id: string,
      input: ActivationTokens,
      details: Record<string, unknown> = {},
    ): Promise<Activation> {
      const sealed = await credentials.write(id, storedCredentials(input));
      const t = now();
      const activation = await store.activate(id, { credentials: sealed, ...activationColumns(input, t) }, t);
      if (!activation.activated) {
        // The flow was consumed once, so no other write to this connection exists.
        await removeCopies([{ id, credentials: sealed }]);
        return { activated: false, superseded: [], providerName: undefined };
      }
      await removeCopies(activation.superseded);
      const superseded = activation.superseded.map((o) => o.id);
      await audit.record(ctx, {
        action: 'connection.activated',
        resourceType: 'connection',
        resourceId: id,
        details: { ...details, superseded },
      });
      const row = await store.find(id);
      if (row !== undefined) {
        const base = { workspaceId: row.workspace_id, providerId: row.provider_id };
        await events.emit({ ...base, connectionId: id, type: 'connection.active' });
        for (const old of superseded)
          await events.emit({
            ...base,
            connectionId: old,
            type: 'connection.revoked',
            details: { reason: SUPERSEDED },
          });
      }
      return { activated: true, superseded, providerName: row?.provider_name };
    },

    /**
     * Housekeeping: pending connections past their deadline become `expired` (at most `limit`);
     * returns their ids. A broker killed between storing a connection's tokens and activating it
     * leaves a backend copy that the row never pointed at: it goes with the row.
     */
    async expirePending(limit: number): Promise<string[]> {
      const ids = await store.expirePending(now(), limit);
      await emitFor(ids, 'connection.expired', { reason: 'not_completed' });
      await removeCopies(ids.map((id) => ({ id })));
      return ids;
    },

    /** Housekeeping: connections broken since before `cutoff` become `expired` (`gave_up`). */
    async expireBroken(cutoff: number, limit: number): Promise<string[]> {
      const ids = await store.expireBroken(cutoff, now(), limit);
      await emitFor(ids, 'connection.expired', { reason: 'gave_up' });
      await removeCopies(ids.map((id) => ({ id })));
      return ids;
    },
  };
}
