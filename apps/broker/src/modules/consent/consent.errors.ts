import { defineErrors, defineReturnUrlErrors } from '../../errors/nexus-error.ts';
import { secretErrors } from '../secrets/secrets.errors.ts';

export const consentErrors = defineErrors({
  return_url_not_allowed: {
    status: 400,
    message:
      'return_url is not on the allow-list (ALLOWED_RETURN_DOMAINS); localhost is allowed only in development.',
  },
  capture_not_available: {
    status: 404,
    message:
      'This capture link is not valid: it expired, was already used, or is not for a static-credential provider.',
  },
  invalid_credentials: {
    status: 400,
    message: 'The submitted credentials do not match what this provider needs.',
  },
  credentials_rejected: {
    status: 422,
    message: 'The provider refused these credentials. Check them and submit again; nothing was stored.',
  },
  invalid_connection_config: {
    status: 400,
    message:
      "connection_config does not fit the provider's connection parameters: a name it does not declare, a required value missing, or a value that does not match its pattern. Nothing was created.",
  },
  credentials_unverifiable: {
    status: 502,
    message:
      'The provider could not be reached to check these credentials. Try again shortly; nothing was stored.',
  },
  verifier_not_configured: {
    status: 400,
    message:
      'verify: true needs a verifier page, and the operator has not configured one (NEXUS_CONNECT_VERIFIER_URL). Nothing was created.',
  },
  verification_required: {
    status: 400,
    message:
      'This broker confirms every consent with the application (NEXUS_CONNECT_VERIFIER_REQUIRED): verify: false is refused. Nothing was created.',
  },
  confirm_flow_unknown: {
    status: 404,
    message:
      'No confirmation waits under this flow_id for this caller: it was never issued, or another agent or key started the consent. Nothing changed.',
  },
  confirm_flow_expired: {
    status: 410,
    message:
      'This flow_id expired before it was confirmed (the consent must complete within 10 minutes of request-connection); the pending connection expires with it. Nothing changed.',
  },
  confirm_flow_used: {
    status: 409,
    message: 'This flow_id was already confirmed; its first use decided the outcome. Nothing changed.',
  },
});

/**
 * Secret backend failures end a consent too: reading the provider's client credentials, or storing
 * the connection's. Every secret backend code is listed, so a new one cannot reach a return_url
 * undocumented.
 */
const secretBackendFailures = Object.fromEntries(
  Object.entries(secretErrors).map(([code, spec]) => [
    code,
    {
      message: `The secret backend failed while the broker read the provider's client credentials or stored the connection's: ${spec.message}`,
    },
  ]),
) as { readonly [K in keyof typeof secretErrors]: { readonly message: string } };

/**
 * What `GET /auth/callback` sends to the caller's return_url as `status=failed&error=<code>`
 * (besides the provider's own RFC 6749 codes, passed on). No other code reaches a return_url:
 * callback-failure.ts maps every failure onto one of these.
 */
export const consentReturnErrors = defineReturnUrlErrors({
  state_expired: {
    message:
      'The user came back after the sign-in link expired (10 minutes after request-connection). Start the connection again.',
  },
  state_reused: {
    message:
      'This sign-in link was already used (a reload, the back button); its first use decided the outcome. Start the connection again if that one failed.',
  },
  cancelled: {
    message:
      'The user chose "Cancel and return to the application" on the hosted capture page (or the hosted connect page) instead of connecting. The link is used up, and the pending connection failed with this code.',
  },
  authorization_failed: {
    message:
      "The provider's redirect back could not be accepted: an error that is not a code (RFC 6749 §4.1.2.1), an `iss` that names another issuer or is missing although the provider promised one (RFC 9207), or a repeated `state` or `iss`.",
  },
  not_an_oauth_flow: {
    message:
      'The callback was reached for a static-credential (capture) flow, which has no authorization code. Use the capture link.',
  },
  token_exchange_failed: {
    message:
      "The token endpoint refused the authorization code (e.g. invalid_grant: expired, already used, or issued to another client, or the client's authentication failed) or did not answer with a token response (an error status, HTML or other non-JSON, a body without an access token); or the provider's key set could not be read. The broker log and the audit event have the detail.",
  },
  id_token_invalid: {
    message:
      'The id_token was refused: another issuer, audience or nonce, expired, missing although openid was asked for, malformed, or not signed by a key the provider publishes. Nothing was stored.',
  },
  provider_unavailable: {
    message:
      "The provider's token endpoint (or its key set) could not be reached, refused the connection, or did not answer within NEXUS_UPSTREAM_TIMEOUT_SECONDS. Start the connection again later.",
  },
  learnt_value_invalid: {
    message:
      "A value the provider declares as learnt at consent (params.learnt: Salesforce's instance_url from the token response, Atlassian's cloud id from an API answer read with the new access token) was missing, could not be read (the API call failed or was refused) or did not match its pattern; the tokens were not kept. The audit event says which value and why (never its content).",
  },
  connection_not_pending: {
    message:
      'The connection stopped waiting for consent before the exchange finished (it expired, was revoked or was superseded); the tokens were not kept.',
  },
  provider_not_found: {
    message: 'The provider was deleted while the user was signing in.',
  },
  verifier_unavailable: {
    message:
      'The connection was to be confirmed by the application (verify), but no verifier URL is configured any more (NEXUS_CONNECT_VERIFIER_URL was removed while the user was signing in). The connection failed and the grant was revoked at the provider.',
  },
  user_mismatch: {
    message:
      'The application confirmed the consent (POST /v1/connect/confirm) for another user than the one it asked for: the link was completed by someone else (a forwarded or phished link). The connection failed, and the grant was revoked at the provider (docs/security.md, decision 0017).',
  },
  discovery_failed: {
    message: "The provider's OpenID discovery document could not be fetched or is not valid right now.",
  },
  ...secretBackendFailures,
  internal_error: {
    message: 'An unexpected failure inside the broker; the broker log has the cause.',
  },
});

export type ConsentReturnCode = keyof typeof consentReturnErrors;
