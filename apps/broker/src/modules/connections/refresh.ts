import * as oauth from 'oauth4webapi';
import { errorFrom, NexusError } from '../../errors/nexus-error.ts';
import type { AuditService } from '../audit/audit.service.ts';
import type { OAuthClient } from '../providers/oauth-client.ts';
import type { StoredProfile } from '../providers/providers.schemas.ts';
import type { ProvidersService } from '../providers/providers.service.ts';
import { connectionErrors } from './connections.errors.ts';
import type { ConnectionsStore, ConnectionWithProvider, LeaseTimes } from './connections.store.ts';
import type { ConnectionEventType, RefreshOutcome, StoredCredentials } from './connections.types.ts';
import type { CredentialStore } from './credential-store.ts';
import {
  extendsToken,
  failingRetryMs,
  lifetimeMs,
  minIntervalMs,
  type RefreshSchedule,
  readSkewMs,
  retryAfterMs,
} from './refresh-schedule.ts';

/** A forced refresh is satisfied by one that completed this recently (stampede damper)… */
const RECENT_REFRESH_MS = 2_000;
/** …and forced refreshes of one connection are at most this far apart (half its lifetime below). */
const FORCED_FLOOR_MAX_MS = 30_000;
const POLL_MS = 50;
/** A read of an expired token waits at most this long for another process's refresh of it. */
const READ_WAIT_MAX_MS = 10_000;

/** Why a connection lost its grant (`last_error`, event and audit `reason`). */
type GrantLostReason = 'invalid_grant' | 'no_refresh_token' | 'refresh_outcome_lost';

/** What a provider call that spends the refresh token came to. */
type Spent =
  /** `answeredAt`: when the answer came, which the token's lifetime counts from. */
  | { kind: 'tokens'; tokens: oauth.TokenEndpointResponse; answeredAt: number }
  /** `invalid_grant` (or `unauthorized_client`): the provider no longer honours the grant. */
  | { kind: 'grant_lost' }
  /** Nothing was spent: the call never left, or the provider answered with an error. */
  | { kind: 'failed'; reason: string; retryAfterMs: number | undefined; error: unknown }
  /** The provider may have processed the call (timeout, connection lost after sending). */
  | { kind: 'unknown'; reason: string; error: unknown };

function isInvalidGrant(error: unknown): boolean {
  return error instanceof oauth.ResponseBodyError && isInvalidGrantCode(error.error);
}

function isInvalidGrantCode(code: string): boolean {
  // GitHub answers a spent or revoked refresh token with its own code (and a 200, see oauth-client).
  return code === 'invalid_grant' || code === 'unauthorized_client' || code === 'bad_refresh_token';
}

/** The provider's answer to a failed call, wherever oauth4webapi kept it. */
function responseOf(error: unknown): Response | undefined {
  const response = (error as { response?: unknown } | undefined)?.response;
  if (response instanceof Response) return response;
  if (error instanceof Error && error.cause instanceof Response) return error.cause;
  return undefined;
}

/**
 * Failures of the connection itself (refused, unknown name, TLS), before any byte of the request
 * left. Unreachable-host errors are not among them: Linux reports those on an established socket
 * too, after the request was written.
 */
function failedToConnect(error: unknown): boolean {
  const cause = error instanceof Error ? (error.cause as { code?: unknown } | undefined) : undefined;
  const code = typeof cause?.code === 'string' ? cause.code : '';
  return (
    /^(ECONNREFUSED|ENOTFOUND|EAI_AGAIN|UND_ERR_CONNECT_TIMEOUT)$/.test(code) ||
    code.startsWith('ERR_TLS') ||
    code.includes('CERT')
  );
}

/** A gateway's answer in front of the provider: the provider itself may have processed the call. */
const GATEWAY_STATUSES = new Set([502, 504]);

function describeUpstreamError(error: unknown): string {
  if (error instanceof oauth.ResponseBodyError) return `${error.status} ${error.error}`;
  const response = responseOf(error);
  if (response !== undefined) return `${response.status} unusable answer`;
  if (error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError'))
    return 'timeout';
  if (error instanceof Error)
    return (error.cause instanceof Error ? error.cause.message : error.message).slice(0, 200);
  return 'unknown';
}

/**
 * Sorts a failed refresh call by what the provider may have done with it (decision 0012). Only an
 * answer, or a call that provably never left, tells us the refresh token was not spent; a timeout
 * or a connection lost after sending may have been processed, and a 2xx we could not use was.
 */
function classify(error: unknown, sent: boolean, now: number): Exclude<Spent, { kind: 'tokens' }> {
  if (isInvalidGrant(error)) return { kind: 'grant_lost' };
  const reason = describeUpstreamError(error);
  const response = responseOf(error);
  if (response !== undefined) {
    if (response.ok || GATEWAY_STATUSES.has(response.status)) return { kind: 'unknown', reason, error };
    return { kind: 'failed', reason, retryAfterMs: retryAfterMs(response.headers, now), error };
  }
  if (!sent || failedToConnect(error)) return { kind: 'failed', reason, retryAfterMs: undefined, error };
  return { kind: 'unknown', reason, error };
}

/** Milliseconds on a clock that never jumps (the lease checks must not follow wall-clock changes). */
const monotonic = () => performance.now();

/** A timer this late means the process did not run (starved of CPU, stopped, paused by GC). */
const STARVED_MS = 500;
/** After such a pause, the time given to answers that arrived meanwhile before timing out. */
const AFTER_STARVATION_MS = 1_000;

/**
 * The upstream timeout of a refresh call, aware of starvation. A process that did not run for a
 * while wakes with its timers overdue and the provider's answer unread in the socket; an ordinary
 * timeout would fire first and turn a refresh that succeeded into an unknown outcome (and, at a
 * rotating provider, a lost grant). So a timer that fires late gives the process a moment of
 * running time to read what arrived before it aborts.
 */
function patientTimeout(ms: number): { signal: AbortSignal; clear: () => void } {
  const controller = new AbortController();
  let due = monotonic() + ms;
  let forgiven = false;
  let timer: NodeJS.Timeout;
  const fire = () => {
    if (!forgiven && monotonic() - due > STARVED_MS) {
      forgiven = true;
      due = monotonic() + AFTER_STARVATION_MS;
      timer = setTimeout(fire, AFTER_STARVATION_MS);
      return;
    }
    controller.abort(new DOMException('The upstream call timed out', 'TimeoutError'));
  };
  timer = setTimeout(fire, ms);
  return { signal: controller.signal, clear: () => clearTimeout(timer) };
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
 */
export function createRefresher(c: {
  store: ConnectionsStore;
  credentials: Pick<CredentialStore, 'write' | 'remove' | 'mode'>;
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
  const { store, audit, schedule, emit, owner, leaseMs, now, sleep, credentialsOf, assertUsable } = c;
  const lease: LeaseTimes = { leaseMs, graceMs: leaseMs };
  const inflight = new Map<string, Promise<ConnectionWithProvider>>();
  let leaseSeq = 0;
  /** A lease id unique to one lease of this process: the fencing token its writes carry. */
  const newLeaseId = () => `${owner}:${(++leaseSeq).toString(36)}`;

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
   * The provider no longer honours the grant (or there is none to refresh): the connection, whose
   * lease we hold, moves to `attention_required`, stops being scheduled, and the caller gets 409.
   */
  async function grantLost(
    row: ConnectionWithProvider,
    leaseId: string,
    reason: GrantLostReason,
  ): Promise<never> {
    const moved = await store.completeLease(
      row.id,
      leaseId,
      'attention_required',
      { last_error: reason, refresh_due_at: null },
      now(),
    );
    if (!moved) {
      // The lease was taken over (or the connection revoked) meanwhile: its holder decides.
      throw errorFrom(connectionErrors, 'refresh_in_progress', {
        detail: `lost the refresh lease of ${row.id} before recording ${reason}`,
      });
    }
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
    throw errorFrom(connectionErrors, 'attention_required', {
      details: { connection_id: row.id, status: 'attention_required' },
    });
  }

  /**
   * Keeps the lease `leaseId` while a refresh runs, from before the provider call until its
   * outcome is stored: renewed every third of a lease, so a live holder never loses it to a
   * takeover; when a renewal finds it taken, `signal` aborts whatever is still running.
   */
  function keepLease(id: string, leaseId: string) {
    let confirmedAt = monotonic();
    const lost = new AbortController();
    const timer = setInterval(
      () => {
        const at = monotonic();
        store.renewLease(id, leaseId, leaseMs).then(
          (held) => {
            if (held) confirmedAt = Math.max(confirmedAt, at);
            else lost.abort(new Error('refresh lease taken over'));
          },
          // The database is unreachable: keep going; the send guard and fencing stay in force.
          () => {},
        );
      },
      Math.max(250, Math.floor(leaseMs / 3)),
    );
    timer.unref();
    return {
      signal: lost.signal,
      /** When the lease was last known to be ours and fresh (monotonic milliseconds). */
      get confirmedAt() {
        return confirmedAt;
      },
      confirm(at: number) {
        confirmedAt = Math.max(confirmedAt, at);
      },
      stop: () => clearInterval(timer),
    };
  }
  type LeaseKeeper = ReturnType<typeof keepLease>;

  /**
   * One provider call that spends the stored refresh token, under the lease `leaseId` (kept by
   * `keeper`). The call is marked in flight on the row first, and the request leaves only while the
   * lease is known to be fresh (a process starved of CPU gives up instead of sending late). When
   * the lease is lost mid-call the call is aborted: its outcome is unknown either way, and the new
   * holder knows it. A failure before anything was sent (the provider's record, discovery) spends
   * nothing.
   */
  async function spend(
    row: ConnectionWithProvider,
    leaseId: string,
    keeper: LeaseKeeper,
    refreshToken: string,
    additionalParameters?: Record<string, string>,
  ): Promise<Spent> {
    let oc: OAuthClient;
    try {
      const { profile, clientSecret } = await c.providers.loadForUse(row.provider_id);
      oc = await c.oauthClient(profile, clientSecret);
    } catch (error) {
      return { kind: 'failed', reason: describeUpstreamError(error), retryAfterMs: undefined, error };
    }
    const markedAt = monotonic();
    if (!(await store.markInFlight(row.id, leaseId, leaseMs)))
      throw errorFrom(connectionErrors, 'refresh_in_progress', {
        detail: `lost the refresh lease of ${row.id} (or it is no longer active) before calling the provider`,
      });
    keeper.confirm(markedAt);
    let sent = false;
    const options = oc.requestOptions();
    const timeout = patientTimeout(c.upstreamTimeoutMs);
    const fetchThrough = options[oauth.customFetch];
    const guardedFetch: typeof fetch = (input, init) => {
      if (monotonic() - keeper.confirmedAt > leaseMs / 2)
        return Promise.reject(new Error('the refresh lease is no longer known to be fresh; not sent'));
      sent = true;
      return fetchThrough(input, init);
    };
    try {
      const response = await oauth.refreshTokenGrantRequest(oc.as, oc.client, oc.auth, refreshToken, {
        ...options,
        // Our own timeout replaces the client's: see `patientTimeout`.
        signal: AbortSignal.any([timeout.signal, keeper.signal]),
        [oauth.customFetch]: guardedFetch,
        ...(additionalParameters ? { additionalParameters } : {}),
      });
      const answeredAt = now();
      const tokens = await oauth.processRefreshTokenResponse(oc.as, oc.client, response);
      return { kind: 'tokens', tokens, answeredAt };
    } catch (error) {
      return classify(error, sent, now());
    } finally {
      timeout.clear();
    }
  }

  /**
   * Stores refreshed credentials (the new refresh token may be the only valid one). When the
   * secret backend fails, the lease is released with the error and the caller gets the backend's
   * 503; the in-flight mark stays, since the provider may have rotated the token the row still holds.
   */
  async function keepRefreshed(
    row: ConnectionWithProvider,
    leaseId: string,
    next: StoredCredentials,
  ): Promise<Uint8Array> {
    try {
      return await c.credentials.write(row.id, next);
    } catch (error) {
      const t = now();
      await store.releaseLease(
        row.id,
        leaseId,
        'secret_backend_failed',
        t,
        schedule.retryAt(row.refresh_failures + 1, t),
      );
      throw error;
    }
  }

  /** A failed attempt: the lease goes back with the failure counted and the next attempt scheduled. */
  async function failed(
    row: ConnectionWithProvider,
    leaseId: string,
    outcome: Extract<Spent, { kind: 'failed' | 'unknown' }>,
  ): Promise<never> {
    const t = now();
    const failures = row.refresh_failures + 1;
    await store.releaseLease(
      row.id,
      leaseId,
      outcome.reason,
      t,
      schedule.retryAt(failures, t, outcome.kind === 'failed' ? outcome.retryAfterMs : undefined),
      { clearInFlight: outcome.kind === 'failed' && row.refresh_started_at === null },
    );
    if (failures === 1) await emit(row, 'connection.refresh_failed', { reason: outcome.reason });
    throw errorFrom(connectionErrors, 'provider_unavailable', {
      detail: `refresh of ${row.id}: ${outcome.reason}`,
      cause: outcome.error,
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
    const keeper = keepLease(id, leaseId);
    try {
      let creds: StoredCredentials;
      try {
        creds = await credentialsOf(row);
      } catch (error) {
        // Unreadable credentials (the secret backend is down, a damaged ciphertext): nothing was
        // spent; the attempt counts as a failure, so neither readers nor the worker loop on it.
        const t = now();
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
      if (spent.kind === 'failed' || spent.kind === 'unknown') return await failed(row, leaseId, spent);
      const { tokens, answeredAt } = spent as Extract<Spent, { kind: 'tokens' }>;
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
      const sealed = await keepRefreshed(row, leaseId, next);
      // The lifetime counts from the answer, not from when it was stored.
      const t = answeredAt;
      const expiresAt = typeof tokens.expires_in === 'number' ? t + tokens.expires_in * 1000 : null;
      // An answer that does not extend the token is stored (it is what the provider gave) but
      // counts as a failure, so the next attempt backs off instead of following the token into a loop.
      const extended = extendsToken(t, expiresAt, {
        issuedAt: row.access_issued_at ?? row.last_refreshed_at,
        expiresAt: row.access_expires_at,
      });
      const stored = await store.completeLease(
        row.id,
        leaseId,
        'active',
        {
          credentials: sealed,
          access_expires_at: expiresAt,
          access_issued_at: t,
          last_refreshed_at: t,
          ...(extended
            ? {
                last_error: null,
                refresh_due_at: schedule.dueAt(t, expiresAt),
                refresh_failures: 0,
                failing_since: null,
              }
            : {
                last_error: 'token_not_extended',
                refresh_due_at: schedule.retryAt(row.refresh_failures + 1, t),
                refresh_failures: row.refresh_failures + 1,
                failing_since: row.failing_since ?? t,
              }),
        },
        now(),
      );
      if (!stored) {
        await discarded(row.id);
        throw errorFrom(connectionErrors, 'refresh_in_progress', {
          detail: `the refresh lease of ${row.id} was taken over, or the connection revoked; the tokens of this refresh were not kept`,
        });
      }
      await audit.record(
        { actor: 'system:refresh' },
        {
          action: 'connection.refreshed',
          resourceType: 'connection',
          resourceId: row.id,
          // `replica`: which broker process refreshed (its lease owner id), for multi-replica operations.
          details: {
            rotated: tokens.refresh_token !== undefined,
            replica: owner,
            ...(extended ? {} : { token_not_extended: true }),
          },
        },
      );
      if (!extended && row.refresh_failures === 0)
        await emit(row, 'connection.refresh_failed', { reason: 'token_not_extended' });
      if (extended && row.refresh_failures > 0)
        await emit(row, 'connection.refresh_recovered', { failures: row.refresh_failures });
    } finally {
      keeper.stop();
    }
  }

  /**
   * A refresh whose outcome could not be stored: the connection was revoked (or superseded)
   * meanwhile, or the lease taken over. The provider did answer, so the audit says so. With
   * TOKEN_STORE=secret-backend the new tokens were written to the backend before finding out; for
   * a revoked connection (whose copy revocation deleted) that copy goes too.
   */
  async function discarded(id: string): Promise<void> {
    const current = await store.find(id);
    const revoked = current === undefined || (current.status !== 'active' && current.status !== 'pending');
    if (revoked && c.credentials.mode === 'secret-backend') await c.credentials.remove(id).catch(() => {});
    await audit.record(
      { actor: 'system:refresh' },
      {
        action: 'connection.refresh_discarded',
        resourceType: 'connection',
        resourceId: id,
        outcome: 'failure',
        details: { reason: revoked ? 'connection_not_active' : 'lease_taken_over', replica: owner },
      },
    );
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
      const row = await store.find(id);
      if (row === undefined) throw errorFrom(connectionErrors, 'connection_not_found');
      assertUsable(row);
      if (force) {
        // Satisfied by a refresh that completed just before (many agents forcing at once), or
        // within the floor for forced refreshes: an API that keeps answering 401 (a suspended
        // account) must not turn every retry into a rotation.
        const floor = Math.max(
          RECENT_REFRESH_MS,
          Math.min(FORCED_FLOOR_MAX_MS, minIntervalMs(lifetimeOf(row))),
        );
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
        await refreshUpstream(id, leaseId);
        const fresh = await store.find(id);
        if (fresh === undefined) throw errorFrom(connectionErrors, 'connection_not_found');
        return fresh;
      }
      // Another process holds the lease. A token that still works is served as it is.
      if (!force && row.access_expires_at !== null && row.access_expires_at > now()) return row;
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
        const keeper = keepLease(id, leaseId);
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
    const spent = await spend(current, leaseId, keeper, creds.refresh_token, { scope: scopes.join(' ') });
    if (spent.kind === 'grant_lost')
      await grantLost(
        current,
        leaseId,
        current.refresh_started_at !== null ? 'refresh_outcome_lost' : 'invalid_grant',
      );
    if (spent.kind === 'failed' || spent.kind === 'unknown') {
      // invalid_scope, an outage: nothing changes, unless the call may have been processed. A
      // narrowing is not a refresh of the connection's own token: the floor between those stays.
      await store.releaseLease(id, leaseId, current.last_error ?? '', now(), undefined, {
        clearInFlight: spent.kind === 'failed' && current.refresh_started_at === null,
        countAttempt: false,
      });
      return null;
    }
    const { tokens, answeredAt } = spent as Extract<Spent, { kind: 'tokens' }>;
    const next: StoredCredentials = {
      ...creds,
      ...(tokens.refresh_token ? { refresh_token: tokens.refresh_token } : {}),
    };
    const sealed = await keepRefreshed(current, leaseId, next);
    const kept = await store.completeLease(
      id,
      leaseId,
      'active',
      { credentials: sealed, refresh_attempted_at: current.refresh_attempted_at },
      now(),
    );
    // Lost the lease meanwhile: the rotated refresh token could not be kept; hand out nothing.
    if (!kept) {
      await discarded(id);
      return null;
    }
    const granted = (tokens.scope ?? scopes.join(' ')).split(' ').filter((x) => x !== '');
    // A provider that ignores the narrowing hands back more than was asked: not down-scoped.
    if (granted.some((g) => !scopes.includes(g))) return null;
    return {
      access_token: tokens.access_token,
      token_type: tokens.token_type ?? 'bearer',
      expires_at:
        typeof tokens.expires_in === 'number'
          ? new Date(answeredAt + tokens.expires_in * 1000).toISOString()
          : null,
      scope: granted.join(' '),
    };
  }

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
