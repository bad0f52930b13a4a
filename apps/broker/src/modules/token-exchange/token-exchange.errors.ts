import { defineErrors } from '../../errors/nexus-error.ts';

/**
 * Codes only token exchange, on-behalf-of and sessions raise. The OAuth codes they share with the
 * token endpoint (`invalid_client`, `invalid_scope`) stay in agents.errors.ts, which they import.
 */
export const tokenExchangeErrors = defineErrors({
  // RFC 8693 §2.2.2: a token exchange for an audience or resource this broker does not issue for.
  invalid_target: {
    status: 400,
    message:
      'The token cannot be issued for that audience or resource: name this broker (its issuer), or one connection in the grant as urn:nexus:connection: followed by its id.',
  },
  invalid_grant: {
    status: 400,
    message:
      "The user's token was refused (untrusted issuer, bad signature, expired, wrong audience…); see details.reason.",
  },
  session_not_found: { status: 404, message: 'No agent session with that id is visible to this credential.' },
});
