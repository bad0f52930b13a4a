/**
 * The consent side of the agent API: starting a connection (request-connection, hosted connect
 * sessions) and confirming who completed it (`POST /v1/connect/confirm`).
 */

/** Body of `POST /v1/request-connection`: name the provider by `provider_name` or `provider_id`. */
export interface RequestConnectionInput {
  /** The user (workspace) the connection belongs to. */
  user_id: string;
  /** Provider name or alias. */
  provider_name?: string;
  /** Provider id (a name or alias is accepted too). */
  provider_id?: string;
  /** Scopes to request; the provider's defaults when empty. */
  scopes?: string[];
  /** Where the user is sent back; must be on the broker's ALLOWED_RETURN_DOMAINS. */
  return_url: string;
  /**
   * Values of the provider's per-connection parameters (a Zendesk `subdomain`, a Microsoft
   * `tenant`), checked against their patterns; the broker answers 400 `invalid_connection_config`
   * to a name the provider does not declare, a missing value or one that does not match.
   */
  connection_config?: Record<string, string>;
  /**
   * Have your application confirm the user before the connection activates: after the provider's
   * callback the browser goes to the broker's verifier page (NEXUS_CONNECT_VERIFIER_URL) with a
   * single-use `flow_id`, and your server calls `confirmConnection`. Absent: the operator's default.
   * 400 `verifier_not_configured` when the broker has no verifier.
   */
  verify?: boolean;
}

/** `POST /v1/connect-sessions`: a hosted connect page for one user. */
export interface ConnectSessionInput {
  /** The user (workspace) the connection will belong to. */
  user_id: string;
  /** Provider ids, names or aliases to offer (1 to 50); absent: every provider the caller may connect. */
  providers?: string[];
  /** Where the user goes back to; must be on the broker's ALLOWED_RETURN_DOMAINS. */
  return_url: string;
  /** As in `RequestConnectionInput`. */
  connection_config?: Record<string, string>;
  /** As in `RequestConnectionInput`. */
  verify?: boolean;
}

export interface ConnectSession {
  id: string;
  /** Open it in the user's browser (or a popup, with `@nexus-broker/connect`); it works once, until `expires_at`. */
  url: string;
  /** The capability inside `url` (the broker stores it hashed; shown only here). */
  token: string;
  expires_at: string;
  /** What the page offers. */
  providers: { id: string; name: string }[];
}

/** `POST /v1/connect/confirm`: the outcome, and where to send the browser. */
export interface ConfirmConnectionResponse {
  status: 'active' | 'failed';
  connection_id: string;
  /** `user_mismatch` or `connection_not_pending` when `status` is `failed`. */
  error?: string;
  /** On failure: whether the provider accepted the revocation of the grant. */
  provider_revoked?: boolean;
  /** The return URL with the outcome, or null if it is no longer allowed. */
  redirect_url: string | null;
}

export interface RequestConnectionResponse {
  /** Send the user here. */
  authUrl: string;
  state: string;
  scopes: string[];
  provider_id: string;
  connection_id: string;
}
