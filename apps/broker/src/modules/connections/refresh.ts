import { isKeyNotInRing, KEY_MISSING_RETRY_MS } from '../../crypto/crypto.errors.ts';
import { errorFrom, NexusError } from '../../errors/nexus-error.ts';
import type { AuditService } from '../audit/audit.service.ts';
import type { OAuthClient } from '../providers/oauth-client.ts';
import type { StoredProfile } from '../providers/providers.schemas.ts';
import type { ProvidersService } from '../providers/providers.service.ts';
import { connectionErrors } from './connections.errors.ts';
import type { ConnectionsStore, ConnectionWithProvider, LeaseTimes } from './connections.store.ts';
import type { ConnectionEventType, RefreshOutcome, StoredCredentials } from './connections.types.ts';
import type { CredentialStore } from './credential-store.ts';
import { createProviderCall } from './refresh-call.ts';
import type { Spent } from './refresh-classify.ts';
import { keepLease, monotonic, POLL_MS } from './refresh-lease.ts';
import { createNarrowing } from './refresh-narrow.ts';
import { createOutcomeRecorder, type OutcomeRecorderDeps } from './refresh-record.ts';
import {
  failingRetryMs,
  lifetimeMs,
  minIntervalMs,
  type RefreshSchedule,
  readSkewMs,
} from './refresh-schedule.ts';

/** A forced refresh is satisfied by one that completed this recently (stampede damper)… */
const RECENT_REFRESH_MS = 2_000;
/** …and forced refreshes of one connection are at most this far apart (half its lifetime below). */
const FORCED_FLOOR_MAX_MS = 30_000;
/** A read of an expired token waits at most this long for another process's refresh of it. */
const READ_WAIT_MAX_MS = 10_000;

/** Whether `promise` settles (either way) within `ms`; it is observed, so a later rejection is handled. */
function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    const settled = () => {
      clearTimeout(timer);
      resolve(true);
    };
    promise.then(settled, settled);
  });
}

/**
 * Refreshing connections: the single-flight lease shared by on-demand refreshes, the background
 * worker's claimed refreshes and down-scoping for agent sessions (decisions 0004, 0006 and 0012).
 *
 * The invariant: a refresh token is presented to the provider at most once. Only the holder of the
 * connection's lease calls; the lease is timed by the database's clock and renewed while the call
 * runs; the call starts only while the lease is fresh; the outcome is written only by the holder of
 * that very lease (fencing); and a call whose outcome is unknown stays marked on the row so the
 * next holder knows what it is risking.
 *
 * The parts: `refresh-lease.ts` keeps the lease while a refresh runs, `refresh-call.ts` is the
 * provider call (send guard, starvation-aware timeout), `refresh-classify.ts` sorts what it came
 * to, `refresh-record.ts` stores that under the lease, `refresh-narrow.ts` down-scopes for agent
 * sessions. This file decides when to refresh and who waits for whom.
 */
export function createRefresher(c: {
  store: ConnectionsStore;
  credentials: Pick<CredentialStore, 'write' | 'discard' | 'remove' | 'mode'>;
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
  /** How long a read whose token still works waits for its own refresh before serving that token. */
  readWaitMs: number;
  now: () => number;
  sleep: (ms: number) => Promise<void>;
  credentialsOf: (row: ConnectionWithProvider) => Promise<StoredCredentials>;
  assertUsable: (row: ConnectionWithProvider) => void;
  revokeIssued?: OutcomeRecorderDeps['revokeIssued'];
}) {
  const { store, schedule, owner, leaseMs, now, sleep, credentialsOf, assertUsable } = c;
  const lease: LeaseTimes = { leaseMs, graceMs: leaseMs };
  const inflight = new Map<string, Promise<ConnectionWithProvider>>();
  let leaseSeq = 0;
  /** A lease id unique to one lease of this process: the fencing token its writes carry. */
  const newLeaseId = () => `${owner}:${(++leaseSeq).toString(36)}`;
  const spend = createProviderCall(c);
  const record = createOutcomeRecorder(c);
  const { grantLost, failed } = record;

  const lifetimeOf = (row: ConnectionWithProvider) =>
    row.access_expires_at === null
      ? 0
      : lifetimeMs(row.access_issued_at ?? row.last_refreshed_at ?? row.updated_at, row.access_expires_at);

  /**
   * What a read does with the stored token: serve it, refresh it first, or report the provider
   * unavailable (the token has expired, its refresh keeps failing and was tried moments ago).
   */
  function readDecision(row: ConnectionWithProvider): 'serve' | 'refresh' | 'unavailable' {
    if (row.provider_auth_type !== 'oauth2' || row.access_expires_at === null) return 'serve';
    const t = now();
    const lifetime = lifetimeOf(row);
    if (t < row.access_expires_at - readSkewMs(lifetime)) return 'serve';
    const sinceAttempt = t - (row.refresh_attempted_at ?? Number.NEGATIVE_INFINITY);
    if (row.refresh_failures > 0) {
      // Backing off: a still-valid token is served and the worker retries on schedule; an expired
      // one may be retried by a read, but not more often than this, whatever the number of readers.
      if (t < row.access_expires_at) return 'serve';
      return sinceAttempt >= failingRetryMs(row.refresh_failures) ? 'refresh' : 'unavailable';
    }
    // Never hand out a token that has expired: the floor only holds back refreshes of live ones.
    if (t >= row.access_expires_at) return 'refresh';
    return sinceAttempt >= minIntervalMs(lifetime) ? 'refresh' : 'serve';
  }

  const needsRefresh = (row: ConnectionWithProvider) => readDecision(row) !== 'serve';
  const liveToken = (row: ConnectionWithProvider) =>
    row.access_expires_at !== null && row.access_expires_at > now();

  function providerUnavailable(row: ConnectionWithProvider, detail: string): NexusError {
    const wait = Math.max(
      1,
      Math.ceil((failingRetryMs(row.refresh_failures) - (now() - (row.refresh_attempted_at ?? 0))) / 1000),
    );
    return errorFrom(connectionErrors, 'provider_unavailable', {
      detail: `refresh of ${row.id}: ${detail}`,
      details: { connection_id: row.id, retry_after_seconds: wait },
    });
  }

  /**
   * Calls the provider while holding the lease `leaseId`; writes the result and releases the
   * lease. The row is read again under the lease: it holds the credentials to spend and whether an
   * earlier call's outcome is unknown (`refresh_started_at` left set).
   */
  async function refreshUpstream(
    id: string,
    leaseId: string,
    leased?: ConnectionWithProvider,
  ): Promise<void> {
    // The worker's claim read the row under the lease already; a reader's row predates its lease.
    const row = leased ?? (await store.find(id));
    if (row === undefined || row.refresh_lease_owner !== leaseId) {
      if (row !== undefined) await store.dropLease(id, leaseId);
      throw errorFrom(connectionErrors, 'refresh_in_progress', { detail: `lost the refresh lease of ${id}` });
    }
    const keeper = keepLease(store, leaseMs, id, leaseId);
    try {
      let creds: StoredCredentials;
      try {
        creds = await credentialsOf(row);
      } catch (error) {
        const t = now();
        if (isKeyNotInRing(error)) {
          // This process's key ring lacks the key (a rotation not rolled out here yet): not the
          // connection's failure, which would count towards giving it up. Left for a process
          // that holds the key; this one looks again in a minute.
          await store.releaseLease(row.id, leaseId, row.last_error, t, undefined, {
            countAttempt: false,
            ...(row.refresh_due_at === null
              ? {}
              : { dueAt: Math.max(row.refresh_due_at, t + KEY_MISSING_RETRY_MS) }),
          });
          throw error;
        }
        // Unreadable credentials (the secret backend is down, a damaged ciphertext): nothing was
        // spent; the attempt counts as a failure, so neither readers nor the worker loop on it.
        await store.releaseLease(
          row.id,
          leaseId,
          'credentials_unreadable',
          t,
          schedule.retryAt(row.refresh_failures + 1, t),
        );
        throw error;
      }
      if (creds.kind !== 'oauth2' || creds.refresh_token === undefined) {
        if (row.access_expires_at !== null && row.access_expires_at <= now())
          await grantLost(row, leaseId, 'no_refresh_token');
        await store.dropLease(row.id, leaseId);
        await store.clearDue(row.id);
        throw errorFrom(connectionErrors, 'refresh_not_supported');
      }
      // A previous call's answer never came back (its process died, or it timed out): the provider
      // may have rotated the token we hold. Try it once; a refusal means the grant was lost with it.
      const outcomeWasUnknown = row.refresh_started_at !== null;
      const spent = await spend(row, leaseId, keeper, creds.refresh_token);
      if (spent.kind === 'grant_lost')
        await grantLost(row, leaseId, outcomeWasUnknown ? 'refresh_outcome_lost' : 'invalid_grant');
      if (spent.kind === 'withheld') return await record.withheld(row, leaseId, spent.reason);
      if (spent.kind === 'failed' || spent.kind === 'unknown') return await failed(row, leaseId, spent);
      if (spent.kind === 'rotated') return await record.keptRotation(row, leaseId, creds, spent);
      const { tokens, answeredAt } = spent as Extract<Spent, { kind: 'tokens' }>;
      await record.refreshed(row, leaseId, creds, tokens, answeredAt);
    } finally {
      keeper.stop();
    }
  }

  /** The connection as stored now; refused (404, or its status's code) when it cannot be used. */
  async function usableRow(id: string): Promise<ConnectionWithProvider> {
    const row = await store.find(id);
    if (row === undefined) throw errorFrom(connectionErrors, 'connection_not_found');
    assertUsable(row);
    return row;
  }

  /**
   * Single-flight refresh. In one process, concurrent callers share one promise; across processes
   * the database lease decides who calls the provider. A lazy read whose token is still valid does
   * not wait for another process's refresh (it serves the token it has); one whose token has
   * expired waits a bounded time for the row's version to move. `force` (an agent's explicit
   * refresh) is satisfied by a refresh that completed within the last two seconds.
   */
  async function refreshOnce(
    id: string,
    force: boolean,
    requestedAt: number,
  ): Promise<ConnectionWithProvider> {
    const deadline = monotonic() + Math.min(READ_WAIT_MAX_MS, c.upstreamTimeoutMs + 1_000);
    for (;;) {
      const row = await usableRow(id);
      if (force) {
        // Satisfied by a refresh that completed just before (many agents forcing at once), or
        // within the floor for forced refreshes: an API that keeps answering 401 (a suspended
        // account) must not turn every retry into a rotation.
        // A token of unknown lifetime is only ever refreshed so: the whole floor.
        const floor =
          row.access_expires_at === null
            ? FORCED_FLOOR_MAX_MS
            : Math.max(RECENT_REFRESH_MS, Math.min(FORCED_FLOOR_MAX_MS, minIntervalMs(lifetimeOf(row))));
        if (
          (row.last_refreshed_at ?? Number.NEGATIVE_INFINITY) >=
          Math.min(requestedAt - RECENT_REFRESH_MS, now() - floor)
        )
          return row;
        if (
          row.refresh_failures > 0 &&
          now() - (row.refresh_attempted_at ?? Number.NEGATIVE_INFINITY) <
            failingRetryMs(row.refresh_failures)
        )
          throw providerUnavailable(row, 'failing, retried moments ago');
      } else {
        const decision = readDecision(row);
        if (decision === 'serve') return row;
        if (decision === 'unavailable') throw providerUnavailable(row, 'failing, retried moments ago');
      }
      const leaseId = newLeaseId();
      if (await store.acquireLease(row.id, leaseId, row.version, lease)) {
        const call = refreshUpstream(id, leaseId);
        // A read whose token still works waits only so long: a provider that hangs must not hold
        // it for the whole upstream timeout, by when the token may have expired. The refresh goes
        // on under its lease and records its outcome; the read is served the row as it is now.
        if (!force && liveToken(row) && !(await settlesWithin(call, c.readWaitMs))) {
          const current = await usableRow(id);
          if (liveToken(current)) return current;
        }
        try {
          await call;
        } catch (error) {
          // A lazy read whose token still works is served it when the refresh could not be made
          // (no refresh token, the provider failing, the call withheld), as when another process
          // holds the lease; a grant lost on the way has changed the status, and is refused.
          if (force || !(error instanceof NexusError) || !liveToken(row)) throw error;
          const after = await usableRow(id);
          if (!liveToken(after)) throw error;
          return after;
        }
        // Revoked between the refresh's write and this read: its credentials are gone.
        return usableRow(id);
      }
      // Another process holds the lease. A token that still works is served as it is.
      if (!force && liveToken(row)) return row;
      if (monotonic() > deadline)
        throw errorFrom(connectionErrors, 'refresh_in_progress', {
          details: { connection_id: id, retry_after_seconds: 1 },
        });
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

  const narrowedToken = createNarrowing({
    store,
    spend,
    record,
    lease,
    leaseMs,
    newLeaseId,
    now,
    sleep,
    credentialsOf,
    assertUsable,
  });

  /**
   * The background worker's refresh of a connection it claimed (`store.claimDue` under `leaseId`):
   * the lease is already ours, so no version check is needed.
   */
  async function refreshClaimed(id: string, leaseId: string): Promise<RefreshOutcome> {
    const row = await store.find(id);
    if (row === undefined) return 'skipped';
    if (row.status !== 'active' || row.provider_deleted_at !== null || row.provider_auth_type !== 'oauth2') {
      await store.dropLease(id, leaseId);
      await store.clearDue(id);
      return 'skipped';
    }
    try {
      await refreshUpstream(id, leaseId, row);
      return 'refreshed';
    } catch (error) {
      if (error instanceof NexusError && error.code === 'attention_required') return 'attention_required';
      if (error instanceof NexusError && error.code === 'refresh_not_supported') return 'skipped';
      if (error instanceof NexusError && error.code === 'provider_unavailable') return 'failed';
      if (error instanceof NexusError && error.code === 'refresh_in_progress') return 'skipped';
      // Anything else (a provider row that vanished, a damaged ciphertext): try again later.
      const t = now();
      await store.releaseLease(
        id,
        leaseId,
        'internal_error',
        t,
        schedule.retryAt(row.refresh_failures + 1, t),
      );
      throw error;
    }
  }

  return { needsRefresh, readDecision, refreshShared, narrowedToken, refreshClaimed, newLeaseId, lease };
}
