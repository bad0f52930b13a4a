import { randomUUID } from 'node:crypto';
import type { Principal } from '../../auth/principal.ts';
import { keysetPage } from '../../db/page.ts';
import { errorFrom } from '../../errors/nexus-error.ts';
import type { AuditContext, AuditService } from '../audit/audit.service.ts';
import { parseConnectionConfig, strategyForConnection } from '../providers/connection-params.ts';
import type { OAuthClient } from '../providers/oauth-client.ts';
import type { StoredProfile } from '../providers/providers.schemas.ts';
import type { ProvidersService } from '../providers/providers.service.ts';
import type { ConnectionStatus } from './connection-status.ts';
import { type ConnectionView, connectionViewOf } from './connection-view.ts';
import { connectionErrors } from './connections.errors.ts';
import type { ConnectionsStore, ConnectionWithProvider } from './connections.store.ts';
import {
  type ConnectionEventSink,
  type ConnectionEventType,
  credentialsBinding,
  noEvents,
  type StoredCredentials,
  type TokenResponse,
} from './connections.types.ts';
import { type CredentialStore, isBackendMarker } from './credential-store.ts';
import { createLifecycle } from './lifecycle.ts';
import { createRefresher } from './refresh.ts';
import { defaultRefreshSchedule, type RefreshSchedule } from './refresh-schedule.ts';
import { createUpstreamRevoker } from './revoke-upstream.ts';
import { strategyOfProfile } from './token-view.ts';

// The module's vocabulary lives in connections.types.ts; re-exported for existing importers.
export { credentialsBinding, type RefreshOutcome, type StoredCredentials } from './connections.types.ts';

/**
 * Who may use which connection. The container passes `principalAccess` (`agents/grants.ts`): admin
 * keys may use every connection, agents (access tokens) those whose provider and workspace their
 * grant names. `adminOnlyAccess`, the default, lets only admin keys through. A connection outside
 * the grant is reported as not found.
 */
export interface ConnectionAccess {
  canUse(
    principal: Principal | undefined,
    connection: { workspace_id: string; provider_id: string },
  ): boolean;
}

export const adminOnlyAccess: ConnectionAccess = { canUse: (principal) => principal?.kind === 'admin' };

/** Default lease; longer than the upstream timeout, so a live holder never loses it mid-request. */
const DEFAULT_LEASE_MS = 45_000;
/** How many times a revocation follows a refresh that stored new tokens while it revoked the old ones. */
const REVOKE_ROUNDS = 3;

export function createConnectionsService(deps: {
  store: ConnectionsStore;
  /** Where the sealed credentials are kept (`TOKEN_STORE`). */
  credentials: CredentialStore;
  providers: Pick<ProvidersService, 'loadForUse'>;
  oauthClient: (profile: StoredProfile, clientSecret: string | undefined) => Promise<OAuthClient>;
  audit: Pick<AuditService, 'record'>;
  access?: ConnectionAccess;
  schedule?: RefreshSchedule;
  events?: ConnectionEventSink;
  /** NEXUS_REFRESH_LEASE_SECONDS, NEXUS_UPSTREAM_TIMEOUT_SECONDS, NEXUS_REFRESH_READ_WAIT_MS. */
  leaseMs?: number;
  upstreamTimeoutMs?: number;
  readWaitMs?: number;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}) {
  const { store, audit } = deps;
  const access = deps.access ?? adminOnlyAccess;
  const now = deps.now ?? Date.now;
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const schedule = deps.schedule ?? defaultRefreshSchedule;
  const events = deps.events ?? noEvents;
  const leaseMs = deps.leaseMs ?? DEFAULT_LEASE_MS;
  const upstreamTimeoutMs = deps.upstreamTimeoutMs ?? 30_000;
  const emit = (row: ConnectionWithProvider, type: ConnectionEventType, details?: Record<string, unknown>) =>
    events.emit({
      connectionId: row.id,
      workspaceId: row.workspace_id,
      providerId: row.provider_id,
      type,
      ...(details ? { details } : {}),
    });
  const owner = `${process.pid}-${randomUUID()}`;

  const credentialsOf = (row: ConnectionWithProvider): Promise<StoredCredentials> =>
    deps.credentials.read(row);

  async function visible(principal: Principal | undefined, id: string): Promise<ConnectionWithProvider> {
    const row = await store.find(id);
    if (row === undefined || !access.canUse(principal, row))
      throw errorFrom(connectionErrors, 'connection_not_found');
    return row;
  }

  /**
   * The state a caller should see: a pending connection past its deadline is expired even before
   * housekeeping marks it, and every connection of a deleted provider is revoked (its client
   * credentials are gone, so it can never be used or refreshed again).
   */
  function effectiveStatus(row: ConnectionWithProvider): ConnectionStatus {
    const stored = row.status as ConnectionStatus;
    if (row.provider_deleted_at !== null && stored !== 'failed') return 'revoked';
    if (stored === 'pending' && (row.pending_expires_at ?? Infinity) < now()) return 'expired';
    return stored;
  }

  function assertUsable(row: ConnectionWithProvider): void {
    const details = { connection_id: row.id, status: effectiveStatus(row) };
    if (row.provider_deleted_at !== null) {
      throw errorFrom(connectionErrors, 'connection_not_active', {
        message: 'The provider of this connection was deleted.',
        details,
      });
    }
    if (row.status === 'attention_required')
      throw errorFrom(connectionErrors, 'attention_required', { details });
    if (row.status !== 'active') {
      throw errorFrom(connectionErrors, 'connection_not_active', {
        message: `The connection is ${row.status}.`,
        details,
      });
    }
  }

  const revokeUpstream = createUpstreamRevoker({
    providers: deps.providers,
    oauthClient: deps.oauthClient,
    credentialsOf,
  });

  const refresher = createRefresher({
    store,
    credentials: deps.credentials,
    providers: deps.providers,
    oauthClient: deps.oauthClient,
    audit,
    schedule,
    emit,
    owner,
    leaseMs,
    upstreamTimeoutMs,
    readWaitMs: deps.readWaitMs ?? 2_000,
    now,
    sleep,
    credentialsOf,
    assertUsable,
    revokeIssued: revokeUpstream,
  });
  const { needsRefresh, refreshShared } = refresher;

  async function tokenResponse(row: ConnectionWithProvider): Promise<TokenResponse> {
    const creds = await credentialsOf(row);
    const expiresAt = row.access_expires_at === null ? null : new Date(row.access_expires_at).toISOString();
    const config = parseConnectionConfig(row.connection_config);
    const strategy = strategyForConnection(strategyOfProfile(row.provider_profile), config);
    const base = {
      connection_id: row.id,
      provider_id: row.provider_id,
      provider_name: row.provider_name,
      strategy,
      expires_at: expiresAt,
      ...(config === null ? {} : { connection_config: { ...config } }),
    };
    if (creds.kind === 'oauth2') {
      return {
        ...base,
        credentials: { access_token: creds.access_token, token_type: creds.token_type },
        access_token: creds.access_token,
        token_type: creds.token_type,
        expiry: expiresAt,
      };
    }
    return { ...base, credentials: { ...creds.fields } };
  }

  async function read(
    ctx: AuditContext,
    row: ConnectionWithProvider,
    action: string | null,
  ): Promise<TokenResponse> {
    const response = await tokenResponse(row);
    if (action === null) return response;
    await audit.record(ctx, {
      action,
      resourceType: 'connection',
      resourceId: row.id,
      details: { provider: row.provider_name },
    });
    return response;
  }

  const lifecycle = createLifecycle({
    store,
    credentials: deps.credentials,
    audit,
    events,
    schedule,
    now,
  });

  return {
    credentialsBinding,
    /** `createPending`, `markFailed`, `activate` (consent), `expirePending`, `expireBroken` (housekeeping). */
    ...lifecycle,

    /** The worker's queue: it claims due connections, gives back those it will not run now. */
    claimDue: store.claimDue,
    dropLease: store.dropLease,
    /** For the worker's gauges: due connections and connections by status. */
    countDue: store.countDue,
    countByStatus: store.countByStatus,
    /** Housekeeping folds the recorded status changes, so they never pile up between scrapes. */
    foldStatusCounts: store.foldStatusCounts,

    /**
     * A connection's id, owner, provider, status, granted scopes (a JSON array) and
     * `connection_config`, without its credentials; undefined when there is none. For agent
     * sessions, which bind to one, and the consent's callback, which fills the provider's URLs.
     */
    async describe(id: string) {
      const row = await store.find(id);
      if (row === undefined) return undefined;
      const { id: rowId, workspace_id, provider_id, status, scopes } = row;
      const connection_config = parseConnectionConfig(row.connection_config);
      return { id: rowId, workspace_id, provider_id, status, scopes, connection_config };
    },
    /** This process's lease owner id: the worker claims leases under it. */
    owner,

    narrowedToken: refresher.narrowedToken,
    refreshClaimed: refresher.refreshClaimed,
    /** A fresh lease id (the fencing token) for a worker's claim. */
    newLeaseId: refresher.newLeaseId,
    /** How long refresh leases last, and the grace after one whose call was in flight. */
    lease: refresher.lease,

    /**
     * `GET /v1/token/{id}`: the usable credential, refreshed first when it is about to expire.
     * `readAction` names the audit event of the read; null when the caller audits the use itself
     * (the credential proxy, which never hands the credential out).
     */
    async getToken(
      ctx: AuditContext,
      principal: Principal | undefined,
      id: string,
      readAction: string | null = 'connection.token_read',
    ): Promise<TokenResponse> {
      let row = await visible(principal, id);
      assertUsable(row);
      if (needsRefresh(row)) row = await refreshShared(id, false);
      return read(ctx, row, readAction);
    },

    /** `POST /v1/refresh/{id}`: refresh now (single-flight), then answer like `getToken`. */
    async refresh(
      ctx: AuditContext,
      principal: Principal | undefined,
      id: string,
      readAction: string | null = 'connection.token_read',
    ): Promise<TokenResponse> {
      const row = await visible(principal, id);
      assertUsable(row);
      if (row.provider_auth_type !== 'oauth2') throw errorFrom(connectionErrors, 'refresh_not_supported');
      return read(ctx, await refreshShared(id, true), readAction);
    },

    /** `GET /v1/resolve`: the newest active connection of a workspace for a provider. */
    async resolve(
      ctx: AuditContext,
      principal: Principal | undefined,
      workspaceId: string,
      providerId: string,
      readAction: string | null = 'connection.token_read',
    ): Promise<TokenResponse> {
      let row = await store.findNewestActive(workspaceId, providerId);
      if (row === undefined || !access.canUse(principal, row))
        throw errorFrom(connectionErrors, 'connection_not_found');
      assertUsable(row);
      if (needsRefresh(row)) row = await refreshShared(row.id, false);
      return read(ctx, row, readAction);
    },

    /** `GET /connections` (admin): a page of connections, newest state first within id order, no credentials. */
    async list(
      filter: {
        status?: ConnectionStatus | undefined;
        workspaceId?: string | undefined;
        providerId?: string | undefined;
      },
      cursor: string | undefined,
      limit: number,
    ) {
      const rows = await store.listPage(filter, cursor, limit + 1);
      const { page, next_cursor } = keysetPage(rows, limit, (last) => last.id);
      return { connections: page.map(connectionViewOf), next_cursor };
    },

    /** `GET /connections/{id}` (admin): one connection as the list shows it, never a credential. */
    async view(principal: Principal | undefined, id: string): Promise<ConnectionView> {
      return connectionViewOf(await visible(principal, id));
    },

    /**
     * `POST /admin/v1/connections/{id}/refresh`: refresh now like `refresh`, but answer the view:
     * no credential is read (no `connection.token_read`); `connection.refresh_requested` says who.
     */
    async refreshWithoutCredential(ctx: AuditContext, principal: Principal | undefined, id: string) {
      const row = await visible(principal, id);
      assertUsable(row);
      if (row.provider_auth_type !== 'oauth2') throw errorFrom(connectionErrors, 'refresh_not_supported');
      const refreshed = await refreshShared(id, true);
      const event = { action: 'connection.refresh_requested', resourceType: 'connection', resourceId: id };
      await audit.record(ctx, { ...event, details: { provider: row.provider_name } });
      return connectionViewOf(refreshed);
    },

    /** `GET /v1/check-connection/{id}`: the stored state, never guessed from a token fetch. */
    async check(
      principal: Principal | undefined,
      id: string,
    ): Promise<{ connection_id: string; status: ConnectionStatus }> {
      const row = await visible(principal, id);
      return { connection_id: row.id, status: effectiveStatus(row) };
    },

    /** `DELETE /v1/connections/{id}`: best-effort RFC 7009 revocation upstream, then local; idempotent. */
    async revoke(
      ctx: AuditContext,
      principal: Principal | undefined,
      id: string,
      reason: string | undefined,
    ) {
      const row = await visible(principal, id);
      if (row.status === 'revoked') {
        // A previous revocation whose backend delete failed is finished here (idempotent).
        if (deps.credentials.mode === 'secret-backend') await deps.credentials.remove(row.id);
        return {
          connection_id: row.id,
          status: 'revoked' as const,
          revoked_at: new Date(row.revoked_at ?? row.updated_at).toISOString(),
          already_revoked: true,
          provider_revoked: false,
        };
      }
      let providerRevoked = false;
      let current = row;
      let t: number;
      for (let attempt = 1; ; attempt++) {
        const { provider_auth_type: type, credentials, provider_deleted_at: gone } = current;
        if (type === 'oauth2' && credentials !== null && gone === null)
          providerRevoked = await revokeUpstream(current).catch(() => false);
        // Only if the row still holds what was just revoked at the provider: a refresh that stored
        // new tokens meanwhile moved its version, and those are revoked too (then, after a few
        // rounds, the connection is revoked here whatever the provider was last told).
        const expected = attempt < REVOKE_ROUNDS ? current.version : undefined;
        t = now();
        const set = { credentials: null, revoked_at: t, last_error: reason ?? null, refresh_due_at: null };
        if (await store.transition(row.id, 'revoked', set, t, undefined, expected)) break;
        const again = expected === undefined ? undefined : await store.find(row.id);
        if (again === undefined || again.version === current.version || again.status === 'revoked') {
          // Lost a race with another revocation: report what is there now.
          if (isBackendMarker(current.credentials))
            await deps.credentials.remove(row.id, current.credentials);
          const latest = await visible(principal, id);
          return {
            connection_id: id,
            status: 'revoked' as const,
            revoked_at: new Date(latest.revoked_at ?? t).toISOString(),
            already_revoked: true,
            provider_revoked: providerRevoked,
          };
        }
        current = again;
      }
      await emit(current, 'connection.revoked', { provider_revoked: providerRevoked });
      await audit.record(ctx, {
        action: 'connection.revoked',
        resourceType: 'connection',
        resourceId: row.id,
        details: { provider_revoked: providerRevoked, ...(reason ? { reason: reason.slice(0, 200) } : {}) },
      });
      // After the row no longer points at it: a failure here (503) leaves the connection revoked,
      // and the caller's retry (revocation is idempotent) deletes the copy.
      if (isBackendMarker(current.credentials)) await deps.credentials.remove(row.id, current.credentials);
      return {
        connection_id: row.id,
        status: 'revoked' as const,
        revoked_at: new Date(t).toISOString(),
        already_revoked: false,
        provider_revoked: providerRevoked,
      };
    },
  };
}

export type ConnectionsService = ReturnType<typeof createConnectionsService>;
