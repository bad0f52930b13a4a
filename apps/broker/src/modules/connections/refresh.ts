import * as oauth from 'oauth4webapi';
import { errorFrom, NexusError } from '../../errors/nexus-error.ts';
import type { AuditService } from '../audit/audit.service.ts';
import type { OAuthClient } from '../providers/oauth-client.ts';
import type { StoredProfile } from '../providers/providers.schemas.ts';
import type { ProvidersService } from '../providers/providers.service.ts';
import { connectionErrors } from './connections.errors.ts';
import type { ConnectionEventType, RefreshOutcome, StoredCredentials } from './connections.service.ts';
import type { ConnectionsStore, ConnectionWithProvider } from './connections.store.ts';
import type { CredentialStore } from './credential-store.ts';
import { type RefreshSchedule, retryAfterMs } from './refresh-schedule.ts';

/** Refresh this long before expiry, so a token handed out is still valid when used. */
const EXPIRY_SKEW_MS = 30_000;
/** A forced refresh is satisfied by one that completed this recently (stampede damper). */
const RECENT_REFRESH_MS = 2_000;
const POLL_MS = 50;

function isInvalidGrant(error: unknown): boolean {
  return (
    error instanceof oauth.ResponseBodyError &&
    (error.error === 'invalid_grant' || error.error === 'unauthorized_client')
  );
}

/** `Retry-After` of a failed token-endpoint answer, wherever oauth4webapi kept the response. */
function retryAfterOf(error: unknown, now: number): number | undefined {
  const response =
    error instanceof oauth.ResponseBodyError
      ? error.response
      : error instanceof Error && error.cause instanceof Response
        ? error.cause
        : undefined;
  return retryAfterMs(response?.headers, now);
}

function describeUpstreamError(error: unknown): string {
  if (error instanceof oauth.ResponseBodyError) return `${error.status} ${error.error}`;
  if (error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError'))
    return 'timeout';
  if (error instanceof Error)
    return (error.cause instanceof Error ? error.cause.message : error.message).slice(0, 200);
  return 'unknown';
}

/**
 * Refreshing connections: the single-flight lease shared by on-demand refreshes, the background
 * worker's claimed refreshes and down-scoping for agent sessions (decisions 0004 and 0006).
 */
export function createRefresher(c: {
  store: ConnectionsStore;
  credentials: Pick<CredentialStore, 'write'>;
  providers: Pick<ProvidersService, 'loadForUse'>;
  oauthClient: (profile: StoredProfile, clientSecret: string | undefined) => Promise<OAuthClient>;
  audit: Pick<AuditService, 'record'>;
  schedule: RefreshSchedule;
  emit: (
    row: ConnectionWithProvider,
    type: ConnectionEventType,
    details?: Record<string, unknown>,
  ) => Promise<void>;
  owner: string;
  leaseMs: number;
  upstreamTimeoutMs: number;
  now: () => number;
  sleep: (ms: number) => Promise<void>;
  credentialsOf: (row: ConnectionWithProvider) => Promise<StoredCredentials>;
  assertUsable: (row: ConnectionWithProvider) => void;
}) {
  const {
    store,
    audit,
    schedule,
    emit,
    owner,
    leaseMs,
    upstreamTimeoutMs,
    now,
    sleep,
    credentialsOf,
    assertUsable,
  } = c;
  const inflight = new Map<string, Promise<ConnectionWithProvider>>();

  const needsRefresh = (row: ConnectionWithProvider) =>
    row.provider_auth_type === 'oauth2' &&
    row.access_expires_at !== null &&
    row.access_expires_at - EXPIRY_SKEW_MS <= now();

  /**
   * The provider no longer honours the grant (or there is none to refresh): the connection, whose
   * lease we hold, moves to `attention_required`, stops being scheduled, and the caller gets 409.
   */
  async function grantLost(
    row: ConnectionWithProvider,
    reason: 'invalid_grant' | 'no_refresh_token',
  ): Promise<never> {
    const moved = await store.completeLease(
      row.id,
      owner,
      'attention_required',
      { last_error: reason, refresh_due_at: null },
      now(),
    );
    if (moved) {
      await emit(row, 'connection.attention_required', { reason });
      await audit.record(
        { actor: 'system:refresh' },
        {
          action: 'connection.attention_required',
          resourceType: 'connection',
          resourceId: row.id,
          outcome: 'failure',
          details: { reason },
        },
      );
    }
    throw errorFrom(connectionErrors, 'attention_required', {
      details: { connection_id: row.id, status: 'attention_required' },
    });
  }

  /**
   * The provider call must end before the lease does, or another replica could take the lease and
   * spend the same refresh token: loading the provider's secret and discovery took part of it, so
   * when what is left is shorter than the upstream timeout, give up now (transient, retried).
   */
  async function ensureLeaseOutlasts(row: ConnectionWithProvider, leasedAt: number): Promise<void> {
    const left = leasedAt + leaseMs - now();
    if (left > upstreamTimeoutMs + 500) return;
    const t = now();
    await store.releaseLease(
      row.id,
      owner,
      'lease_too_short',
      t,
      schedule.retryAt(row.refresh_failures + 1, t),
    );
    throw errorFrom(connectionErrors, 'provider_unavailable', {
      detail: `refresh of ${row.id}: ${left} ms of lease left, less than the upstream timeout`,
    });
  }

  /**
   * Stores refreshed credentials (the new refresh token may be the only valid one). When the
   * secret backend fails, the lease is released with the error and the caller gets the backend's
   * 503. The tokens just issued are lost and the row keeps the previous ones; at a provider that
   * rotates refresh tokens the old one is spent, so the next refresh ends in `attention_required`.
   */
  async function keepRefreshed(row: ConnectionWithProvider, next: StoredCredentials): Promise<Uint8Array> {
    try {
      return await c.credentials.write(row.id, next);
    } catch (error) {
      const t = now();
      await store.releaseLease(
        row.id,
        owner,
        'secret_backend_failed',
        t,
        schedule.retryAt(row.refresh_failures + 1, t),
      );
      throw error;
    }
  }

  /** Calls the provider while holding the lease; writes the result and releases the lease. */
  async function refreshUpstream(row: ConnectionWithProvider, leasedAt: number): Promise<void> {
    const creds = await credentialsOf(row);
    if (creds.kind !== 'oauth2' || creds.refresh_token === undefined) {
      if (needsRefresh(row)) await grantLost(row, 'no_refresh_token');
      await store.releaseLease(row.id, owner, row.last_error ?? '', now());
      await store.clearDue(row.id);
      throw errorFrom(connectionErrors, 'refresh_not_supported');
    }
    const { profile, clientSecret } = await c.providers.loadForUse(row.provider_id);
    const oc = await c.oauthClient(profile, clientSecret);
    await ensureLeaseOutlasts(row, leasedAt);
    let tokens: oauth.TokenEndpointResponse;
    try {
      const response = await oauth.refreshTokenGrantRequest(
        oc.as,
        oc.client,
        oc.auth,
        creds.refresh_token,
        oc.requestOptions(),
      );
      tokens = await oauth.processRefreshTokenResponse(oc.as, oc.client, response);
    } catch (error) {
      if (isInvalidGrant(error)) await grantLost(row, 'invalid_grant');
      const reason = describeUpstreamError(error);
      const t = now();
      const failures = row.refresh_failures + 1;
      await store.releaseLease(
        row.id,
        owner,
        reason,
        t,
        schedule.retryAt(failures, t, retryAfterOf(error, t)),
      );
      if (failures === 1) await emit(row, 'connection.refresh_failed', { reason });
      throw errorFrom(connectionErrors, 'provider_unavailable', {
        detail: `refresh of ${row.id}: ${reason}`,
        cause: error,
      });
    }
    const next: StoredCredentials = {
      kind: 'oauth2',
      access_token: tokens.access_token,
      token_type: tokens.token_type ?? 'bearer',
      // A provider that does not rotate refresh tokens omits it: keep the one we have.
      ...((tokens.refresh_token ?? creds.refresh_token)
        ? { refresh_token: tokens.refresh_token ?? creds.refresh_token }
        : {}),
      ...((tokens.scope ?? creds.scope) ? { scope: tokens.scope ?? creds.scope } : {}),
    };
    // Under the lease, before the row changes: with TOKEN_STORE=secret-backend the backend copy
    // is written first, so a row never points at credentials that were not stored.
    const sealed = await keepRefreshed(row, next);
    const t = now();
    const expiresAt = typeof tokens.expires_in === 'number' ? t + tokens.expires_in * 1000 : null;
    const stored = await store.completeLease(
      row.id,
      owner,
      'active',
      {
        credentials: sealed,
        access_expires_at: expiresAt,
        last_refreshed_at: t,
        last_error: null,
        refresh_due_at: schedule.dueAt(expiresAt),
        refresh_failures: 0,
        failing_since: null,
      },
      t,
    );
    if (!stored)
      throw errorFrom(connectionErrors, 'refresh_in_progress', {
        detail: `lost the refresh lease of ${row.id}`,
      });
    await audit.record(
      { actor: 'system:refresh' },
      {
        action: 'connection.refreshed',
        resourceType: 'connection',
        resourceId: row.id,
        // `replica`: which broker process refreshed (its lease owner id), for multi-replica operations.
        details: { rotated: tokens.refresh_token !== undefined, replica: owner },
      },
    );
    if (row.refresh_failures > 0)
      await emit(row, 'connection.refresh_recovered', { failures: row.refresh_failures });
  }

  /**
   * Single-flight refresh. In one process, concurrent callers share one promise; across processes
   * the database lease decides who calls the provider while the others wait for the row's version
   * to move. `force` (an agent's explicit refresh) is satisfied by a refresh that completed within
   * the last two seconds; otherwise only an expiring token is refreshed.
   */
  async function refreshOnce(
    id: string,
    force: boolean,
    requestedAt: number,
  ): Promise<ConnectionWithProvider> {
    const deadline = now() + leaseMs + 5_000;
    for (;;) {
      const row = await store.find(id);
      if (row === undefined) throw errorFrom(connectionErrors, 'connection_not_found');
      assertUsable(row);
      const satisfied = force
        ? (row.last_refreshed_at ?? 0) >= requestedAt - RECENT_REFRESH_MS
        : !needsRefresh(row);
      if (satisfied) return row;
      const leasedAt = now();
      if (await store.acquireLease(row.id, owner, row.version, leasedAt, leaseMs)) {
        await refreshUpstream(row, leasedAt);
        const fresh = await store.find(id);
        if (fresh === undefined) throw errorFrom(connectionErrors, 'connection_not_found');
        return fresh;
      }
      if (now() > deadline) throw errorFrom(connectionErrors, 'refresh_in_progress');
      await sleep(POLL_MS);
    }
  }

  function refreshShared(id: string, force: boolean): Promise<ConnectionWithProvider> {
    // A forced refresh must not ride on a lazy one that may decide no refresh is needed.
    const key = `${id}:${force ? 'force' : 'lazy'}`;
    const running = inflight.get(key);
    if (running) return running;
    const promise = refreshOnce(id, force, now()).finally(() => inflight.delete(key));
    inflight.set(key, promise);
    return promise;
  }

  /**
   * A down-scoped access token for an agent session (RFC 6749 §6: a refresh may ask for fewer
   * scopes). Runs under the connection's refresh lease like any refresh; a rotated refresh token
   * is stored, while the connection keeps its own (full-scope) access token. Null when the
   * connection has no refresh token or the provider refuses or ignores the narrowing: the caller
   * then reports `downscoped: false`.
   */
  async function narrowedToken(
    id: string,
    scopes: readonly string[],
  ): Promise<{
    access_token: string;
    token_type: string;
    expires_at: string | null;
    scope: string;
  } | null> {
    const deadline = now() + leaseMs + 5_000;
    for (;;) {
      const row = await store.find(id);
      if (row === undefined) throw errorFrom(connectionErrors, 'connection_not_found');
      assertUsable(row);
      const creds = await credentialsOf(row);
      if (creds.kind !== 'oauth2' || creds.refresh_token === undefined) return null;
      const leasedAt = now();
      if (await store.acquireLease(row.id, owner, row.version, leasedAt, leaseMs)) {
        const { profile, clientSecret } = await c.providers.loadForUse(row.provider_id);
        const oc = await c.oauthClient(profile, clientSecret);
        await ensureLeaseOutlasts(row, leasedAt);
        let tokens: oauth.TokenEndpointResponse;
        try {
          const response = await oauth.refreshTokenGrantRequest(
            oc.as,
            oc.client,
            oc.auth,
            creds.refresh_token,
            {
              ...oc.requestOptions(),
              additionalParameters: { scope: scopes.join(' ') },
            },
          );
          tokens = await oauth.processRefreshTokenResponse(oc.as, oc.client, response);
        } catch (error) {
          if (isInvalidGrant(error)) await grantLost(row, 'invalid_grant');
          // invalid_scope, an outage: nothing was spent, nothing changes.
          await store.releaseLease(row.id, owner, row.last_error ?? '', now());
          return null;
        }
        const next: StoredCredentials = {
          ...creds,
          ...(tokens.refresh_token ? { refresh_token: tokens.refresh_token } : {}),
        };
        const sealed = await keepRefreshed(row, next);
        const t = now();
        const kept = await store.completeLease(row.id, owner, 'active', { credentials: sealed }, t);
        // Lost the lease meanwhile: the rotated refresh token could not be kept; hand out nothing.
        if (!kept) return null;
        const granted = (tokens.scope ?? scopes.join(' ')).split(' ').filter((x) => x !== '');
        // A provider that ignores the narrowing hands back more than was asked: not down-scoped.
        if (granted.some((g) => !scopes.includes(g))) return null;
        return {
          access_token: tokens.access_token,
          token_type: tokens.token_type ?? 'bearer',
          expires_at:
            typeof tokens.expires_in === 'number'
              ? new Date(t + tokens.expires_in * 1000).toISOString()
              : null,
          scope: granted.join(' '),
        };
      }
      if (now() > deadline) throw errorFrom(connectionErrors, 'refresh_in_progress');
      await sleep(POLL_MS);
    }
  }

  /**
   * The background worker's refresh of a connection it claimed (`store.claimDue` under `owner`):
   * the lease is already ours, so no version check is needed: the claim read the current row.
   */
  async function refreshClaimed(id: string): Promise<RefreshOutcome> {
    const startedAt = now();
    const row = await store.find(id);
    if (row === undefined) return 'skipped';
    if (row.status !== 'active' || row.provider_deleted_at !== null || row.provider_auth_type !== 'oauth2') {
      await store.dropLease(id, owner);
      await store.clearDue(id);
      return 'skipped';
    }
    try {
      // Claimed just before this call: the claim's lease started no later than now.
      await refreshUpstream(row, startedAt);
      return 'refreshed';
    } catch (error) {
      if (error instanceof NexusError && error.code === 'attention_required') return 'attention_required';
      if (error instanceof NexusError && error.code === 'refresh_not_supported') return 'skipped';
      if (error instanceof NexusError && error.code === 'provider_unavailable') return 'failed';
      // Anything else (a provider row that vanished, a damaged ciphertext): try again later.
      const t = now();
      await store.releaseLease(id, owner, 'internal_error', t, schedule.retryAt(row.refresh_failures + 1, t));
      throw error;
    }
  }

  return { needsRefresh, refreshShared, narrowedToken, refreshClaimed };
}
