import type * as oauth from 'oauth4webapi';
import { isDatabaseUnavailable } from '../../db/availability.ts';
import { errorFrom } from '../../errors/nexus-error.ts';
import type { AuditService } from '../audit/audit.service.ts';
import { expiryOf } from '../providers/token-answer-quirks.ts';
import { SUPERSEDED } from './connection-status.ts';
import { connectionErrors } from './connections.errors.ts';
import type { ConnectionsStore, ConnectionWithProvider } from './connections.store.ts';
import type { ConnectionEventType, StoredCredentials } from './connections.types.ts';
import type { CredentialStore } from './credential-store.ts';
import type { FailedCall, GrantLostReason } from './refresh-classify.ts';
import { extendsToken, type RefreshSchedule } from './refresh-schedule.ts';

/** How soon a call held back by the send guard is due again. */
const WITHHELD_RETRY_MS = 1_000;
/**
 * Pauses before each new try of the write that keeps a refresh's answer, while the database is
 * unavailable (about 4 s of pauses in all; each try is bounded by the database timeouts, and the
 * lease is fenced, so a try after a takeover changes nothing): the provider has spent the old
 * refresh token, so giving up loses the grant's new one.
 */
const KEEP_RETRY_MS = [250, 750, 1_000, 2_000] as const;

export interface OutcomeRecorderDeps {
  store: Pick<ConnectionsStore, 'completeLease' | 'releaseLease' | 'find'>;
  credentials: Pick<CredentialStore, 'write' | 'discard' | 'remove' | 'mode'>;
  audit: Pick<AuditService, 'record'>;
  schedule: RefreshSchedule;
  emit: (
    row: ConnectionWithProvider,
    type: ConnectionEventType,
    details?: Record<string, unknown>,
  ) => Promise<void>;
  owner: string;
  now: () => number;
  sleep?: (ms: number) => Promise<void>;
  /**
   * RFC 7009 revocation at the provider of tokens a refresh brought but could not keep, the
   * connection having been revoked meanwhile (false: the provider has no revocation endpoint).
   * Without it such tokens are only dropped, and stay live at the provider until they expire.
   */
  revokeIssued?: (row: ConnectionWithProvider, tokens: IssuedTokens) => Promise<boolean>;
}

/** The tokens of one provider answer, as RFC 7009 revocation takes them. */
export interface IssuedTokens {
  readonly access_token?: string | undefined;
  readonly refresh_token?: string | undefined;
}

/**
 * Storing what a refresh came to, by the holder of the lease `leaseId` only (fencing: every write
 * carries the lease id, and a write that finds the lease taken over changes nothing). Each one
 * releases or completes the lease, and records the event and audit entry that go with it.
 */
export function createOutcomeRecorder(c: OutcomeRecorderDeps) {
  const { store, audit, schedule, emit, owner, now } = c;
  const sleep = c.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));

  /** `write`, tried again through a short database outage (`KEEP_RETRY_MS`); other errors at once. */
  async function throughOutage<T>(write: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await write();
      } catch (error) {
        const pause = KEEP_RETRY_MS[attempt];
        if (pause === undefined || !isDatabaseUnavailable(error)) throw error;
        await sleep(pause);
      }
    }
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
  async function failed(row: ConnectionWithProvider, leaseId: string, outcome: FailedCall): Promise<never> {
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
   * A call held back before it left (`withheld`): nothing was spent and nothing failed, so the
   * lease goes back with no failure counted and `last_error` as it was, and the connection is due
   * again a moment later (not at once: a database that keeps stalling must not become a loop of
   * claims); the next claim, any replica's, sends it. The caller sees a refresh still in progress.
   */
  async function withheld(row: ConnectionWithProvider, leaseId: string, reason: string): Promise<never> {
    const t = now();
    await store.releaseLease(row.id, leaseId, row.last_error, t, undefined, {
      clearInFlight: row.refresh_started_at === null,
      countAttempt: false,
      dueAt: t + WITHHELD_RETRY_MS,
    });
    throw errorFrom(connectionErrors, 'refresh_in_progress', {
      detail: `refresh of ${row.id}: ${reason}`,
      details: { connection_id: row.id, retry_after_seconds: 1 },
    });
  }

  /**
   * A refresh that brought tokens: the credentials are stored (the rotated refresh token, or the
   * one we have when the provider does not rotate), then the row, fenced by the lease.
   */
  async function refreshed(
    row: ConnectionWithProvider,
    leaseId: string,
    creds: StoredCredentials & { kind: 'oauth2' },
    tokens: oauth.TokenEndpointResponse,
    answeredAt: number,
  ): Promise<void> {
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
    const expiresAt = expiryOf(t, tokens.expires_in);
    // An answer that does not extend the token is stored (it is what the provider gave) but
    // counts as a failure, so the next attempt backs off instead of following the token into a loop.
    const extended = extendsToken(t, expiresAt, {
      issuedAt: row.access_issued_at ?? row.last_refreshed_at,
      expiresAt: row.access_expires_at,
    });
    const written = await throughOutage(() =>
      store.completeLease(
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
      ),
    );
    // A write whose answer was lost after it committed (the connection dropped at COMMIT) is
    // retried, finds the lease released, and changes nothing: the row then holds these credentials.
    const stored = written || (await landed(row.id, sealed, t));
    if (!stored) {
      // Only what this answer brought: a refresh token it did not rotate is the one revocation had.
      await discarded(row, tokens, sealed);
      throw errorFrom(connectionErrors, 'refresh_in_progress', {
        detail: `the refresh lease of ${row.id} was taken over, or the connection revoked; the tokens of this refresh were not kept`,
      });
    }
    await retire(row);
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
  }

  /**
   * A successful answer that could not be used but carries a new refresh token (`rotated`): the
   * provider has spent ours, so the new one is kept with the access token we have, and the attempt
   * counts as failed (backoff, `last_error` says why, `connection.refresh_failed` on the first).
   * The caller gets 502 provider_unavailable.
   */
  async function keptRotation(
    row: ConnectionWithProvider,
    leaseId: string,
    creds: StoredCredentials & { kind: 'oauth2' },
    spent: { refreshToken: string; reason: string; error: unknown },
  ): Promise<never> {
    const sealed = await keepRefreshed(row, leaseId, { ...creds, refresh_token: spent.refreshToken });
    const t = now();
    const failures = row.refresh_failures + 1;
    const written = await throughOutage(() =>
      store.completeLease(
        row.id,
        leaseId,
        'active',
        {
          credentials: sealed,
          last_error: spent.reason,
          refresh_due_at: schedule.retryAt(failures, t),
          refresh_failures: failures,
          failing_since: row.failing_since ?? t,
        },
        t,
      ),
    );
    if (!written && !(await landed(row.id, sealed, row.last_refreshed_at))) {
      await discarded(row, { refresh_token: spent.refreshToken }, sealed);
      throw errorFrom(connectionErrors, 'refresh_in_progress', {
        detail: `the refresh lease of ${row.id} was taken over, or the connection revoked; the rotated refresh token was not kept`,
      });
    }
    await retire(row);
    await audit.record(
      { actor: 'system:refresh' },
      {
        action: 'connection.refreshed',
        resourceType: 'connection',
        resourceId: row.id,
        outcome: 'failure',
        details: { rotated: true, answer_unusable: spent.reason, replica: owner },
      },
    );
    if (row.refresh_failures === 0) await emit(row, 'connection.refresh_failed', { reason: spent.reason });
    throw errorFrom(connectionErrors, 'provider_unavailable', {
      detail: `refresh of ${row.id}: ${spent.reason}; the answer's new refresh token was kept`,
      cause: spent.error,
    });
  }

  /**
   * Deletes the secret-backend copy `row` pointed at, now that the row holds a new one (a write
   * never reuses a path). Best effort: a copy left behind is deleted with the connection.
   */
  async function retire(row: ConnectionWithProvider): Promise<void> {
    await c.credentials.discard(row.id, row.credentials).catch(() => {});
  }

  /** Whether the row holds what this refresh wrote at `t` (its ciphertext, and its time). */
  async function landed(id: string, sealed: Uint8Array, t: number | null): Promise<boolean> {
    const current = await store.find(id);
    if (current?.credentials == null || current.last_refreshed_at !== t) return false;
    return Buffer.from(current.credentials).equals(Buffer.from(sealed));
  }

  /**
   * A refresh whose outcome could not be stored: the connection was revoked (or superseded)
   * meanwhile, or the lease taken over. The provider did answer, so the audit says so. With
   * TOKEN_STORE=secret-backend the new tokens were written to the backend (`written`, a path of
   * their own) before finding out: that copy is deleted, and for a revoked connection any other
   * left (revocation deleted those it found). A connection revoked
   * by request (not superseded by a newer one, whose grant a provider may share) also has the new
   * tokens revoked at the provider: the revocation there spent the old ones only.
   */
  async function discarded(
    row: ConnectionWithProvider,
    issued: IssuedTokens,
    written: Uint8Array,
  ): Promise<void> {
    const { id } = row;
    await c.credentials.discard(id, written).catch(() => {});
    const current = await store.find(id);
    const revoked = current === undefined || (current.status !== 'active' && current.status !== 'pending');
    if (revoked && c.credentials.mode === 'secret-backend') await c.credentials.remove(id).catch(() => {});
    let providerRevoked: boolean | undefined;
    if (
      current?.status === 'revoked' &&
      current.last_error !== SUPERSEDED &&
      c.revokeIssued !== undefined &&
      (issued.access_token !== undefined || issued.refresh_token !== undefined)
    )
      providerRevoked = await c.revokeIssued(row, issued).catch(() => false);
    await audit.record(
      { actor: 'system:refresh' },
      {
        action: 'connection.refresh_discarded',
        resourceType: 'connection',
        resourceId: id,
        outcome: 'failure',
        details: {
          reason: revoked ? 'connection_not_active' : 'lease_taken_over',
          replica: owner,
          ...(providerRevoked === undefined ? {} : { provider_revoked: providerRevoked }),
        },
      },
    );
  }

  return {
    grantLost,
    keepRefreshed,
    failed,
    withheld,
    refreshed,
    keptRotation,
    discarded,
    retire,
    throughOutage,
  };
}
