/**
 * The error codes an authorization server may send back to the redirect URI (RFC 6749 §4.1.2.1,
 * OpenID Connect Core §3.1.2.6): the user or the provider refused. The consent callback passes
 * these on to the app as they are (any other becomes `authorization_failed`), and the original's
 * audit format logs them as `oauth_error`.
 */
export const AUTHORIZATION_ERRORS: ReadonlySet<string> = new Set([
  'invalid_request',
  'unauthorized_client',
  'access_denied',
  'unsupported_response_type',
  'invalid_scope',
  'server_error',
  'temporarily_unavailable',
  'interaction_required',
  'login_required',
  'account_selection_required',
  'consent_required',
  'invalid_request_uri',
  'invalid_request_object',
  'request_not_supported',
  'request_uri_not_supported',
  'registration_not_supported',
]);
