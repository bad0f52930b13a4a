import * as oauth from 'oauth4webapi';
import { NexusError } from '../../errors/nexus-error.ts';
import { type ConsentReturnCode, consentReturnErrors } from './consent.errors.ts';

/**
 * The steps of `GET /auth/callback` that can fail, in order. oauth4webapi's codes say what kind of
 * check failed (`OAUTH_INVALID_RESPONSE` is thrown for a token answer without `access_token` and
 * for an id_token without `sub` alike); the step says what was being checked. Together they decide
 * the code, never the error's message text.
 */
export type CallbackStep =
  /** Reading the flow's provider, its secret and discovery document; opening the PKCE verifier. */
  | 'setup'
  /** `validateAuthResponse`: the redirect's own parameters (RFC 9207 `iss`, repeats, JARM). */
  | 'authorization_response'
  /** `authorizationCodeGrantRequest`: sending the code to the token endpoint. */
  | 'token_request'
  /** The token endpoint's answer, read without its id_token: status, media type, JSON, fields. */
  | 'token_response'
  /** The same answer's id_token claims (iss, aud, exp, nonce…), once the answer itself passed. */
  | 'id_token'
  /** The id_token's signature, against the key set the provider publishes. */
  | 'id_token_signature';

/** oauth4webapi's error classes; `code` on each is one of its exported `OAUTH_*` constants. */
const OAUTH_ERRORS = [
  oauth.OperationProcessingError,
  oauth.ResponseBodyError,
  oauth.WWWAuthenticateChallengeError,
  oauth.AuthorizationResponseError,
  oauth.UnsupportedOperationError,
] as const;

/**
 * A key set answer that cannot be read (an error status, not JSON, not parsable) says nothing
 * about the id_token: the provider's side failed, as when the token endpoint answers so.
 */
const KEY_SET_ANSWER_UNUSABLE: ReadonlySet<string> = new Set([
  oauth.RESPONSE_IS_NOT_CONFORM,
  oauth.RESPONSE_IS_NOT_JSON,
  oauth.PARSE_ERROR,
]);

/** The code of each step for any of oauth4webapi's errors, unless the step's rule says otherwise. */
const OAUTH_FAILURE_OF_STEP: Readonly<Record<CallbackStep, ConsentReturnCode>> = {
  setup: 'token_exchange_failed',
  authorization_response: 'authorization_failed',
  token_request: 'token_exchange_failed',
  token_response: 'token_exchange_failed',
  id_token: 'id_token_invalid',
  id_token_signature: 'id_token_invalid',
};

/**
 * The `error` a failed callback step sends back to the return URL: always a code of
 * `consentReturnErrors` (documented in docs/errors.md).
 */
export function callbackFailure(step: CallbackStep, error: unknown): ConsentReturnCode {
  // The broker's own refusals (a provider deleted meanwhile, a discovery document or secret that
  // cannot be read) keep their code; an internal failure's code describes the broker's insides and
  // stays in the log.
  if (error instanceof NexusError) return passedOn(error);
  if (isTransportFailure(error)) return 'provider_unavailable';
  const code = oauthErrorCode(error);
  if (code === undefined) return 'token_exchange_failed';
  if (step === 'id_token_signature' && KEY_SET_ANSWER_UNUSABLE.has(code)) return 'token_exchange_failed';
  return OAUTH_FAILURE_OF_STEP[step];
}

/** A broker error's code when it is caller-safe and catalogued for a return_url; otherwise `internal_error`. */
export function passedOn(error: NexusError): ConsentReturnCode {
  if (error.expose && Object.hasOwn(consentReturnErrors, error.code)) return error.code as ConsentReturnCode;
  return 'internal_error';
}

/** The `OAUTH_*` code of one of oauth4webapi's errors, or undefined for any other error. */
function oauthErrorCode(error: unknown): string | undefined {
  if (!OAUTH_ERRORS.some((type) => error instanceof type)) return undefined;
  // An OperationProcessingError may come without a code (a configuration oauth4webapi cannot use).
  return (error as { code?: string }).code ?? 'OAUTH_UNCODED';
}

/**
 * The request never got an answer: `fetch` (and the egress guard, which fails the same way) throws
 * a `TypeError` with a `cause` for a refused, reset or blocked connection, and the request signal's
 * `TimeoutError`/`AbortError` when NEXUS_UPSTREAM_TIMEOUT_SECONDS passed. oauth4webapi's own
 * `TypeError`s carry an `ERR_INVALID_ARG_*` code: a wrong call, not an unreachable provider.
 */
function isTransportFailure(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (error.name === 'TimeoutError' || error.name === 'AbortError') return true;
  const code = (error as { code?: unknown }).code;
  return error instanceof TypeError && !(typeof code === 'string' && code.startsWith('ERR_INVALID_ARG'));
}
