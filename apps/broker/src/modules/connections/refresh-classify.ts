import * as oauth from 'oauth4webapi';
import { EgressError } from '../../egress/address-guard.ts';
import { NexusError } from '../../errors/nexus-error.ts';
import { retryAfterMs } from './refresh-schedule.ts';

/**
 * Classifying what a refresh call came to (decision 0012): by what the provider may have done
 * with the refresh token, since only an answer, or a call that provably never left, tells us it
 * was not spent.
 */

/** Why a connection lost its grant (`last_error`, event and audit `reason`). */
export type GrantLostReason = 'invalid_grant' | 'no_refresh_token' | 'refresh_outcome_lost';

/** What a provider call that spends the refresh token came to. */
export type Spent =
  /** `answeredAt`: when the answer came, which the token's lifetime counts from. */
  | { kind: 'tokens'; tokens: oauth.TokenEndpointResponse; answeredAt: number }
  /** `invalid_grant` (or `unauthorized_client`): the provider no longer honours the grant. */
  | { kind: 'grant_lost' }
  /** Nothing was spent: the call never left, or the provider answered with an error. */
  | { kind: 'failed'; reason: string; retryAfterMs: number | undefined; error: unknown }
  /**
   * Nothing was spent, through no fault of the provider: this process held the call back because
   * it could no longer vouch for its lease (it had been starved of CPU or stopped). Retried at
   * once, by whichever replica claims it, without counting a failure.
   */
  | { kind: 'withheld'; reason: string; error: unknown }
  /** The provider may have processed the call (timeout, connection lost after sending). */
  | { kind: 'unknown'; reason: string; error: unknown }
  /**
   * A successful answer that could not be used, yet carries a new refresh token: the provider
   * rotated, so the one we hold is spent. The new one is kept; the attempt counts as failed.
   */
  | { kind: 'rotated'; refreshToken: string; reason: string; error: unknown };

/** A call that did not bring tokens, to be recorded as a failed attempt. */
export type FailedCall = Extract<Spent, { kind: 'failed' | 'unknown' }>;

/** Raised by the send guard: the request was never handed to the network. */
export class WithheldError extends Error {
  override name = 'WithheldError';
}

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

/**
 * What may be said of an error in `last_error` (which read keys, the console and webhooks see):
 * text this code or oauth4webapi wrote, or a short error code. Anyone else's message may quote
 * what it was given: a secret backend's SDK names accounts and roles, a JSON parser quotes the
 * provider's answer (tokens included).
 */
function sayable(error: Error): string | undefined {
  if (error instanceof NexusError) return error.code;
  if (error instanceof EgressError || error instanceof WithheldError) return error.message;
  if (error instanceof oauth.OperationProcessingError || error instanceof oauth.UnsupportedOperationError)
    return error.message;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && /^[A-Z][A-Z0-9_]{1,63}$/.test(code) ? code : undefined;
}

const OAUTH_ERROR_CODE = /^[A-Za-z0-9_.:-]{1,64}$/;

export function describeUpstreamError(error: unknown): string {
  // The provider's `error` is a code (RFC 6749 §5.2); anything else may echo the request back.
  if (error instanceof oauth.ResponseBodyError)
    return `${error.status} ${OAUTH_ERROR_CODE.test(error.error) ? error.error : 'error'}`;
  const response = responseOf(error);
  if (response !== undefined) return `${response.status} unusable answer`;
  if (!(error instanceof Error)) return 'unknown';
  if (error.name === 'TimeoutError' || error.name === 'AbortError') return 'timeout';
  // Our own error names what failed (`secret_backend_unavailable`), whatever its cause's code.
  if (error instanceof NexusError) return error.code;
  const cause = error.cause instanceof Error ? sayable(error.cause) : undefined;
  return (cause ?? sayable(error) ?? error.name).slice(0, 200);
}

/**
 * Sorts a failed refresh call by what the provider may have done with it (decision 0012). Only an
 * answer, or a call that provably never left, tells us the refresh token was not spent; a timeout
 * or a connection lost after sending may have been processed, and a 2xx we could not use was.
 */
export function classify(error: unknown, sent: boolean, now: number): Exclude<Spent, { kind: 'tokens' }> {
  if (isInvalidGrant(error)) return { kind: 'grant_lost' };
  if (!sent && error instanceof WithheldError) return { kind: 'withheld', reason: error.message, error };
  const reason = describeUpstreamError(error);
  const response = responseOf(error);
  if (response !== undefined) {
    if (response.ok || GATEWAY_STATUSES.has(response.status)) return { kind: 'unknown', reason, error };
    return { kind: 'failed', reason, retryAfterMs: retryAfterMs(response.headers, now), error };
  }
  if (!sent || failedToConnect(error)) return { kind: 'failed', reason, retryAfterMs: undefined, error };
  return { kind: 'unknown', reason, error };
}
