import * as oauth from 'oauth4webapi';
import { errorFrom } from '../../errors/nexus-error.ts';
import { forConnection, parseConnectionConfig } from '../providers/connection-params.ts';
import type { OAuthClient } from '../providers/oauth-client.ts';
import type { StoredProfile } from '../providers/providers.schemas.ts';
import type { ProvidersService } from '../providers/providers.service.ts';
import { connectionErrors } from './connections.errors.ts';
import type { ConnectionsStore, ConnectionWithProvider } from './connections.store.ts';
import { classify, describeUpstreamError, type Spent, WithheldError } from './refresh-classify.ts';
import { type LeaseKeeper, monotonic } from './refresh-lease.ts';

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

export interface ProviderCallDeps {
  store: Pick<ConnectionsStore, 'markInFlight'>;
  providers: Pick<ProvidersService, 'loadForUse'>;
  oauthClient: (profile: StoredProfile, clientSecret: string | undefined) => Promise<OAuthClient>;
  leaseMs: number;
  upstreamTimeoutMs: number;
  now: () => number;
}

/**
 * One provider call that spends the stored refresh token, under the lease `leaseId` (kept by
 * `keeper`). The call is marked in flight on the row first, and the request leaves only while the
 * lease is known to be fresh (a process starved of CPU gives up instead of sending late). When
 * the lease is lost mid-call the call is aborted: its outcome is unknown either way, and the new
 * holder knows it. A failure before anything was sent (the provider's record, discovery) spends
 * nothing.
 */
export function createProviderCall(c: ProviderCallDeps) {
  const { store, leaseMs, now } = c;
  return async function spend(
    row: ConnectionWithProvider,
    leaseId: string,
    keeper: LeaseKeeper,
    refreshToken: string,
    /** A down-scoping refresh (RFC 6749 §6): the scopes asked for, joined as the provider reads them. */
    narrowTo?: readonly string[],
  ): Promise<Spent> {
    let oc: OAuthClient;
    try {
      const { profile, clientSecret } = await c.providers.loadForUse(row.provider_id);
      // The token endpoint of this connection: its URL placeholders filled (decision 0015).
      oc = await c.oauthClient(
        forConnection(profile, parseConnectionConfig(row.connection_config)),
        clientSecret,
      );
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
        return Promise.reject(
          new WithheldError('the refresh lease is no longer known to be fresh; not sent'),
        );
      sent = true;
      return fetchThrough(input, init);
    };
    // A copy of a successful answer, read again only if it cannot be used (see `rotatedIn`).
    let answer: Response | undefined;
    try {
      const response = await oauth.refreshTokenGrantRequest(oc.as, oc.client, oc.auth, refreshToken, {
        ...options,
        // Our own timeout replaces the client's: see `patientTimeout`.
        signal: AbortSignal.any([timeout.signal, keeper.signal]),
        [oauth.customFetch]: guardedFetch,
        ...(narrowTo ? { additionalParameters: { scope: oc.joinScopes(narrowTo) } } : {}),
      });
      const answeredAt = now();
      answer = response.ok ? response.clone() : undefined;
      const tokens = await oauth.processRefreshTokenResponse(oc.as, oc.client, response);
      return { kind: 'tokens', tokens, answeredAt };
    } catch (error) {
      const rotated = answer === undefined ? undefined : await rotatedIn(answer, refreshToken);
      if (rotated !== undefined)
        return { kind: 'rotated', refreshToken: rotated, reason: describeUpstreamError(error), error };
      return classify(error, sent, now());
    } finally {
      timeout.clear();
    }
  };
}

/**
 * The new refresh token of a successful answer that could not be used otherwise (no access token,
 * say), if it has one: a non-empty string other than the one presented.
 */
async function rotatedIn(answer: Response, presented: string): Promise<string | undefined> {
  try {
    const body: unknown = JSON.parse(await answer.text());
    const token = (body as { refresh_token?: unknown } | null)?.refresh_token;
    return typeof token === 'string' && token !== '' && token !== presented && token.length <= 16_384
      ? token
      : undefined;
  } catch {
    return undefined;
  }
}
