import type * as oauth from 'oauth4webapi';
import { errorFrom } from '../../errors/nexus-error.ts';
import { expiryOf } from '../providers/token-answer-quirks.ts';
import { connectionErrors } from './connections.errors.ts';
import type { ConnectionsStore, ConnectionWithProvider, LeaseTimes } from './connections.store.ts';
import type { StoredCredentials } from './connections.types.ts';
import type { createProviderCall } from './refresh-call.ts';
import type { Spent } from './refresh-classify.ts';
import { keepLease, type LeaseKeeper, monotonic, POLL_MS } from './refresh-lease.ts';
import type { createOutcomeRecorder } from './refresh-record.ts';

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export interface NarrowingDeps {
  store: Pick<
    ConnectionsStore,
    'find' | 'acquireLease' | 'renewLease' | 'dropLease' | 'releaseLease' | 'completeLease'
  >;
  spend: ReturnType<typeof createProviderCall>;
  record: Pick<
    ReturnType<typeof createOutcomeRecorder>,
    'grantLost' | 'keepRefreshed' | 'discarded' | 'retire' | 'throughOutage'
  >;
  lease: LeaseTimes;
  leaseMs: number;
  newLeaseId: () => string;
  now: () => number;
  sleep: (ms: number) => Promise<void>;
  credentialsOf: (row: ConnectionWithProvider) => Promise<StoredCredentials>;
  assertUsable: (row: ConnectionWithProvider) => void;
}

/** Down-scoping for agent sessions, under the same single-flight lease as every refresh. */
export function createNarrowing(c: NarrowingDeps) {
  const { store, spend, lease, leaseMs, newLeaseId, now, sleep, credentialsOf, assertUsable } = c;
  const { grantLost, keepRefreshed, discarded, retire, throughOutage } = c.record;

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
    const deadline = monotonic() + leaseMs + 5_000;
    for (;;) {
      const row = await store.find(id);
      if (row === undefined) throw errorFrom(connectionErrors, 'connection_not_found');
      assertUsable(row);
      if (row.provider_auth_type !== 'oauth2' || row.credentials === null) return null;
      const leaseId = newLeaseId();
      if (await store.acquireLease(row.id, leaseId, row.version, lease)) {
        const keeper = keepLease(store, leaseMs, id, leaseId);
        try {
          return await narrowUnderLease(id, leaseId, keeper, row, scopes);
        } finally {
          keeper.stop();
        }
      }
      if (monotonic() > deadline) throw errorFrom(connectionErrors, 'refresh_in_progress');
      await sleep(POLL_MS);
    }
  }

  /** `narrowedToken` once the lease is held: the credentials are read under it, then spent. */
  async function narrowUnderLease(
    id: string,
    leaseId: string,
    keeper: LeaseKeeper,
    seen: ConnectionWithProvider,
    scopes: readonly string[],
  ) {
    const current = (await store.find(id)) ?? seen;
    let creds: StoredCredentials;
    try {
      creds = await credentialsOf(current);
    } catch (error) {
      await store.dropLease(id, leaseId);
      throw error;
    }
    if (creds.kind !== 'oauth2' || creds.refresh_token === undefined) {
      await store.dropLease(id, leaseId);
      return null;
    }
    const spent = await spend(current, leaseId, keeper, creds.refresh_token, scopes);
    if (spent.kind === 'grant_lost')
      await grantLost(
        current,
        leaseId,
        current.refresh_started_at !== null ? 'refresh_outcome_lost' : 'invalid_grant',
      );
    if (spent.kind === 'failed' || spent.kind === 'unknown' || spent.kind === 'withheld') {
      // invalid_scope, an outage: nothing changes, unless the call may have been processed. A
      // narrowing is not a refresh of the connection's own token: the floor between those stays.
      await store.releaseLease(id, leaseId, current.last_error, now(), undefined, {
        clearInFlight: spent.kind !== 'unknown' && current.refresh_started_at === null,
        countAttempt: false,
      });
      return null;
    }
    // An answer that could not be used but rotated the connection's refresh token: the new one
    // is kept below, and nothing is handed out.
    const { tokens, answeredAt } =
      spent.kind === 'rotated'
        ? { tokens: { refresh_token: spent.refreshToken } as oauth.TokenEndpointResponse, answeredAt: now() }
        : (spent as Extract<Spent, { kind: 'tokens' }>);
    const next: StoredCredentials = {
      ...creds,
      ...(tokens.refresh_token ? { refresh_token: tokens.refresh_token } : {}),
    };
    const sealed = await keepRefreshed(current, leaseId, next);
    const kept = await throughOutage(() =>
      store.completeLease(
        id,
        leaseId,
        'active',
        { credentials: sealed, refresh_attempted_at: current.refresh_attempted_at },
        now(),
      ),
    );
    // Lost the lease meanwhile: the rotated refresh token could not be kept; hand out nothing.
    if (!kept) {
      await discarded(current, tokens, sealed);
      return null;
    }
    await retire(current);
    if (spent.kind === 'rotated') return null;
    const granted = (tokens.scope ?? scopes.join(' ')).split(' ').filter((x) => x !== '');
    // A provider that ignores the narrowing hands back more than was asked: not down-scoped.
    if (granted.some((g) => !scopes.includes(g))) return null;
    return {
      access_token: tokens.access_token,
      token_type: tokens.token_type ?? 'bearer',
      expires_at: iso(expiryOf(answeredAt, tokens.expires_in)),
      scope: granted.join(' '),
    };
  }

  return narrowedToken;
}
