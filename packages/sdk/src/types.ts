/**
 * Wire types of the Nexus broker, written by hand from its OpenAPI document (`GET /openapi.json`).
 * Field names are the wire's (snake_case, except `authUrl` which the v1 contract fixes).
 */

/** The error body every route answers with (RFC 6749 form on `/oauth/token` uses the same fields). */
export interface ErrorBody {
  /** Stable error code, e.g. `attention_required`. */
  error: string;
  /** Explanation for people; may change between versions. */
  message: string;
  /** Structured details, e.g. `[{path, message}]` for validation errors. */
  details?: unknown;
  /** Identifies the request in the broker logs. */
  request_id: string;
}

export type StrategyType =
  | 'oauth2'
  | 'header'
  | 'headers'
  | 'query_param'
  | 'basic_auth'
  | 'hmac_payload'
  | 'aws_sigv4';

/** How an agent applies a credential upstream (the v1 contract's strategies table). */
export interface Strategy {
  type: StrategyType;
  /** Settings by name; for `headers`, each header name to its value template (`{field}`: a credential field). */
  config: Record<string, string>;
}

export type ConnectionStatus = 'pending' | 'active' | 'attention_required' | 'expired' | 'revoked' | 'failed';

/** `GET /v1/token/{id}`, `POST /v1/refresh/{id}`, `GET /v1/resolve` (operation `getToken`). */
export interface TokenResponse {
  connection_id: string;
  provider_id: string;
  provider_name: string;
  strategy: Strategy;
  /** What the strategy applies; never a refresh token. */
  credentials: Record<string, string>;
  /** When the access token expires (null: unknown or never). */
  expires_at: string | null;
  /** OAuth only, flattened for original clients. */
  access_token?: string;
  token_type?: string;
  expiry?: string | null;
  /** The values the provider's URL placeholders are filled with for this connection; absent when it has none. */
  connection_config?: Record<string, string>;
}

export interface CheckConnectionResponse {
  connection_id: string;
  status: ConnectionStatus;
}

export interface RevokeConnectionResponse {
  connection_id: string;
  status: 'revoked';
  revoked_at: string;
  already_revoked: boolean;
  /** Whether the provider confirmed the RFC 7009 revocation. */
  provider_revoked: boolean;
}

/** `POST /oauth/token` success (client credentials). */
export interface AgentTokenResponse {
  access_token: string;
  token_type: 'Bearer' | 'N_A';
  expires_in: number;
  scope: string;
  issued_token_type?: string;
  session_id?: string;
}

export type AgentSessionStatus = 'active' | 'closed' | 'expired';

export interface AgentSession {
  session_id: string;
  agent_id: string;
  connection_id: string | null;
  scopes_granted: string[];
  custom_scopes: string[];
  provider_scopes: string[];
  status: AgentSessionStatus;
  created_at: string;
  expires_at: string;
  obo: boolean;
  acting_for: string | null;
  tenant_id: string | null;
  clearance_level: string | null;
}

/** `POST /v1/agent-sessions` and `/v1/agent-sessions/obo` (201). */
export interface OpenedAgentSession extends AgentSession {
  /** Broker-signed JWT (typ nexus-session+jwt) for custom scopes. */
  session_token?: string;
  token_type?: 'session';
  /** true: `access_token` is the provider's token narrowed to the session's provider scopes. */
  downscoped?: boolean;
  /** The provider's down-scoped access token (never a refresh token). */
  access_token?: string;
  access_token_type?: string;
  access_token_expires_at?: string | null;
  access_token_scope?: string;
}

export interface AgentSessionInput {
  scopes: string[];
  /** Default 900. */
  ttl_seconds?: number;
  /** The connection whose provider scopes are used. */
  connection_id?: string;
  /** Only with an admin key: the agent to act as. */
  agent_id?: string;
}

export interface OboSessionInput extends AgentSessionInput {
  /** The user's token from a trusted issuer (a JWT). */
  user_token: string;
}

/** `GET /api/v2/secrets/{name}`. */
export interface UserSecretValue {
  name: string;
  zone: string;
  version: number;
  value: string;
}

export interface UserSecret {
  name: string;
  zone: string;
  description: string;
  current_version: number;
  enabled: boolean;
  deleted: boolean;
  created_at: string;
  updated_at: string;
}

export interface UnresolvedSecret {
  name: string;
  reason: 'not_found' | 'disabled';
}

/** `POST /api/v2/secrets/resolve`. */
export interface ResolveSecretsResponse<T = unknown> {
  config: T;
  unresolved: UnresolvedSecret[];
}

export type ProviderAuthType =
  | 'oauth2'
  | 'api_key'
  | 'basic_auth'
  | 'header'
  | 'query_param'
  | 'hmac_payload'
  | 'aws_sigv4';

export type ProviderAuthHeader = 'client_secret_post' | 'client_secret_basic' | 'private_key_jwt';

/** The body of `POST /providers` and `PUT /providers/{id}` (`{profile: ...}`). */
export interface ProviderProfileInput {
  /** Unique among live providers and aliases; `^[a-z0-9-]+$`. */
  name: string;
  /** Default `oauth2`. */
  auth_type?: ProviderAuthType;
  /** Default `client_secret_post`. */
  auth_header?: ProviderAuthHeader;
  client_id?: string | null;
  /** Write-only: stored encrypted, never returned. */
  client_secret?: string | null;
  auth_url?: string | null;
  token_url?: string | null;
  issuer?: string | null;
  enable_discovery?: boolean;
  scopes?: string[];
  /** `skip_scope_on_auth`, `credential_schema`, `auth_strategy`, `revocation_endpoint`, … */
  params?: Record<string, unknown>;
  api_base_url?: string | null;
  user_info_endpoint?: string | null;
  description?: string | null;
  category?: string | null;
  /**
   * A provider catalogue key (`GET /catalog`): the profile is that entry's expansion, the fields
   * given here winning (`params` merged key by key). Create and replace only; 400
   * `unknown_template` for a key the catalogue does not have.
   */
  template?: string;
}

/** `PATCH /providers/{id}`: any subset; null clears a field. A `template` is applied by create or replace only. */
export type ProviderProfilePatch = Partial<Omit<ProviderProfileInput, 'template'>>;

export interface Provider {
  id: string;
  name: string;
  auth_type: ProviderAuthType;
  auth_header: ProviderAuthHeader;
  client_id?: string;
  /** Whether a client secret is stored (its value is never returned). */
  has_client_secret: boolean;
  auth_url?: string;
  token_url?: string;
  issuer?: string;
  enable_discovery: boolean;
  scopes: string[];
  params: Record<string, unknown>;
  api_base_url?: string;
  user_info_endpoint?: string;
  description?: string;
  category?: string;
  aliases: string[];
  /** Increases on every change; send it back as `ifMatch`. */
  version: number;
  created_at: string;
  updated_at: string;
}

export interface ProviderSummary {
  id: string;
  name: string;
}

export interface ProviderMetadataEntry {
  id: string;
  api_base_url: string;
  user_info_endpoint: string;
  scopes: string[];
  description: string;
  category: string;
}

/** Providers grouped by auth type, then by name. */
export type ProviderMetadata = Record<string, Record<string, ProviderMetadataEntry>>;

export interface CreatedResponse {
  id: string;
  message: string;
}

export interface Agent {
  id: string;
  agent_id: string;
  description: string;
  allowed_scopes: string[];
  /** Provider ids, or `*`. */
  allowed_providers: string[];
  allowed_workspaces: string[];
  allowed_secrets: string[];
  active: boolean;
  jwks_uri: string | null;
  has_jwks: boolean;
  secrets: { id: string; created_at: string; expires_at: string | null }[];
  version: number;
  created_at: string;
  updated_at: string;
}

/** `POST /admin/v1/agents` (201): the client secret is returned once. */
export interface CreatedAgent extends Agent {
  client_secret?: string;
}

export interface CreateAgentInput {
  agent_id: string;
  description?: string;
  /** Scopes the agent may request (provider or custom). */
  allowed_scopes: string[];
  /** Provider names, aliases or ids; `["*"]` for any; default none. */
  allowed_providers?: string[];
  /** Workspaces (users); `["*"]` for any; default none. */
  allowed_workspaces?: string[];
  /** `"<user>/<zone>/<name>"` grants. */
  allowed_secrets?: string[];
  active?: boolean;
  jwks?: { keys: Record<string, unknown>[] };
  jwks_uri?: string;
  /** Issue a client secret (default true). */
  generate_secret?: boolean;
}

export interface UpdateAgentInput {
  description?: string;
  allowed_scopes?: string[];
  allowed_providers?: string[];
  allowed_workspaces?: string[];
  allowed_secrets?: string[];
  active?: boolean;
  jwks?: { keys: Record<string, unknown>[] } | null;
  jwks_uri?: string | null;
}

export interface RotatedAgentSecret {
  secret_id: string;
  client_secret: string;
  previous_expire_at: string;
}

export interface AuditEvent {
  seq: number;
  id: string;
  occurred_at: string;
  actor: string;
  event_type: string;
  resource_type: string;
  resource_id: string | null;
  outcome: string;
  ip: string | null;
  user_agent: string | null;
  request_id: string | null;
  details: Record<string, unknown> | null;
}

export interface AuditQuery {
  event_type?: string;
  actor?: string;
  resource?: string;
  /** ISO 8601 timestamp. */
  since?: string;
  until?: string;
  limit?: number;
  cursor?: string;
}

export interface AuditPage {
  events: AuditEvent[];
  next_cursor: string | null;
}

export interface MessageResponse {
  message: string;
}
