import type { ConnectSessionsTable } from '../../db/schema.ts';
import { returnUrlAllowed, withOutcome } from '../consent/return-url.ts';

/**
 * Why a connect session did not end in a connection, as `@nexus-broker/connect` rejects:
 * `denied` (the user refused consent at the provider or cancelled), `expired` (the session or the
 * consent link had expired or was used), `failed` (anything else: `error` says what).
 */
export type FailureReason = 'denied' | 'expired' | 'failed';

const DENIED = new Set(['access_denied', 'cancelled', 'consent_required', 'login_required']);
const EXPIRED = new Set(['session_expired', 'state_expired', 'state_reused']);

export function reasonOf(code: string): FailureReason {
  if (DENIED.has(code)) return 'denied';
  if (EXPIRED.has(code)) return 'expired';
  return 'failed';
}

type ReturnRules = Parameters<typeof returnUrlAllowed>[1];

export type ConnectOutcome =
  | {
      readonly status: 'success';
      readonly connectionId: string;
      readonly provider: string;
      readonly returnUrl: string;
      readonly returnUrls: ReturnRules;
    }
  | {
      readonly status: 'failed';
      readonly error: string;
      readonly reason: FailureReason;
      readonly returnUrl: string;
      readonly returnUrls: ReturnRules;
      /** Logged, never shown: the NexusError code that stopped the start. */
      readonly detail?: string | undefined;
    };

export function failedOutcome(
  session: Pick<ConnectSessionsTable, 'return_url'>,
  error: string,
  returnUrls: ReturnRules,
  detail?: string,
): ConnectOutcome {
  return {
    status: 'failed',
    error,
    reason: reasonOf(error),
    returnUrl: session.return_url,
    returnUrls,
    detail,
  };
}

/**
 * Where the page's "return to the application" link goes (the return URL with the outcome
 * appended), and the origin its popup message is addressed to; null when the return URL is no
 * longer allowed (the list changed since the session was created).
 */
export function returnOf(outcome: ConnectOutcome): { href: string; origin: string } | null {
  if (!returnUrlAllowed(outcome.returnUrl, outcome.returnUrls)) return null;
  const href =
    outcome.status === 'success'
      ? withOutcome(outcome.returnUrl, {
          status: 'success',
          connection_id: outcome.connectionId,
          provider: outcome.provider,
        })
      : withOutcome(outcome.returnUrl, { status: 'failed', error: outcome.error });
  return { href, origin: new URL(outcome.returnUrl).origin };
}

/** The message the finish page posts to `window.opener` (addressed to the return URL's origin only). */
export function messageOf(outcome: ConnectOutcome): Record<string, string> {
  return outcome.status === 'success'
    ? {
        type: 'nexus-connect',
        status: 'success',
        connection_id: outcome.connectionId,
        provider: outcome.provider,
      }
    : { type: 'nexus-connect', status: 'failed', error: outcome.error, reason: outcome.reason };
}
