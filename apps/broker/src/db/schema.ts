import type { Generated } from 'kysely';

/*
 * Row types of every table, kept in step with `migrations/`. Portable column types only:
 * timestamps are epoch milliseconds (BIGINT), JSON is TEXT, flags are nullable timestamps
 * (`revoked_at`, `deleted_at`), bytes are BLOB (BYTEA on PostgreSQL).
 */

export interface MigrationsTable {
  id: string;
  checksum: string;
  applied_at: number;
}

export interface AdminKeysTable {
  id: string;
  name: string;
  key_hash: string;
  created_at: number;
  created_by: string;
  last_used_at: number | null;
  revoked_at: number | null;
  /** 'full', 'read' or 'agent' (migration 0013; auth/principal.ts `AdminScope`). */
  scope: string;
}

export interface ProvidersTable {
  id: string;
  name: string;
  auth_type: string;
  /** JSON of the profile without secrets. */
  profile: string;
  version: number;
  created_at: number;
  updated_at: number;
  deleted_at: number | null;
}

export interface ProviderAliasesTable {
  alias: string;
  provider_id: string;
  created_at: number;
}

export interface SecretStoreTable {
  path: string;
  version: number;
  value: Uint8Array;
  created_at: number;
  updated_at: number;
}

export interface AuditEventsTable {
  seq: number;
  id: string;
  occurred_at: number;
  actor: string;
  action: string;
  resource_type: string;
  resource_id: string | null;
  outcome: string;
  ip: string | null;
  user_agent: string | null;
  request_id: string | null;
  details: string | null;
  prev_hash: string;
  hash: string;
}

export interface AuditChainTable {
  id: number;
  seq: number;
  hash: string;
  /** The last event removed by retention (0 and the genesis hash when none was). */
  pruned_seq: number;
  pruned_hash: string;
}

export interface ConnectionsTable {
  id: string;
  workspace_id: string;
  provider_id: string;
  status: string;
  /** JSON array */
  scopes: string;
  credentials: Uint8Array | null;
  access_expires_at: number | null;
  pending_expires_at: number | null;
  refresh_lease_until: number | null;
  refresh_lease_owner: string | null;
  last_refreshed_at: number | null;
  last_error: string | null;
  version: number;
  created_at: number;
  updated_at: number;
  revoked_at: number | null;
  /** When the background worker should refresh this connection (see migration 0003). */
  refresh_due_at: number | null;
  refresh_failures: number;
  failing_since: number | null;
  /** When the stored access token was obtained (its lifetime bounds refresh; migration 0011). */
  access_issued_at: number | null;
  /** A provider call spending the refresh token is, or was, in flight (database clock; migration 0011). */
  refresh_started_at: number | null;
  /** When the last refresh attempt ended, successful or not (migration 0011). */
  refresh_attempted_at: number | null;
  /** JSON object of strings: the values of the provider's URL placeholders (migration 0014). */
  connection_config: string | null;
}

export interface ConsentFlowsTable {
  id: string;
  connection_id: string;
  provider_id: string;
  verifier: Uint8Array | null;
  nonce: string | null;
  redirect_uri: string;
  return_url: string;
  /** JSON array */
  scopes: string;
  expires_at: number;
  used_at: number | null;
  created_at: number;
}

export interface ConnectionEventsTable {
  id: string;
  connection_id: string;
  workspace_id: string;
  provider_id: string;
  type: string;
  /** JSON object of caller-safe facts; never a secret. */
  details: string;
  created_at: number;
}

export interface WebhooksTable {
  id: string;
  url: string;
  description: string;
  /** JSON array of event types; empty means every type. */
  event_types: string;
  /** Envelope ciphertext bound to (webhooks, id, secret); null once deleted. */
  secret: Uint8Array | null;
  /** The active flag: null while active. */
  disabled_at: number | null;
  created_at: number;
  updated_at: number;
  deleted_at: number | null;
}

export interface WebhookDeliveriesTable {
  id: string;
  webhook_id: string;
  event_id: string;
  /** pending | delivered | failed */
  status: string;
  attempts: number;
  next_attempt_at: number | null;
  last_attempt_at: number | null;
  last_status_code: number | null;
  last_error: string | null;
  delivered_at: number | null;
  lease_owner: string | null;
  lease_until: number | null;
  created_at: number;
  updated_at: number;
}

export interface AgentsTable {
  id: string;
  agent_id: string;
  description: string;
  /** JSON arrays; ["*"] means any. */
  allowed_scopes: string;
  allowed_providers: string;
  allowed_workspaces: string;
  /** JSON list of "<user>/<zone>/<name>" user-secret grants ("*" for the user). */
  allowed_secrets: string;
  jwks: string | null;
  jwks_uri: string | null;
  disabled_at: number | null;
  /** Tokens issued and sessions opened before this (epoch ms) are refused: set at deactivation. */
  tokens_not_before: number | null;
  version: number;
  created_at: number;
  updated_at: number;
  deleted_at: number | null;
}

export interface AgentSecretsTable {
  id: string;
  agent_uuid: string;
  secret_hash: string;
  created_at: number;
  expires_at: number | null;
  revoked_at: number | null;
}

export interface AgentAssertionsTable {
  jti_hash: string;
  expires_at: number;
}

export interface AgentSessionsTable {
  id: string;
  agent_uuid: string;
  connection_id: string | null;
  /** JSON array */
  scopes: string;
  /** JSON {user_id, tenant_id, clearance_level, issuer} for on-behalf-of sessions */
  obo: string | null;
  created_at: number;
  expires_at: number;
  closed_at: number | null;
}

export interface CustomScopesTable {
  name: string;
  description: string;
  created_at: number;
}

export interface UserSecretsTable {
  id: string;
  user_id: string;
  zone: string;
  name: string;
  description: string;
  current_version: number;
  disabled_at: number | null;
  deleted_at: number | null;
  created_at: number;
  updated_at: number;
}

export interface UserSecretVersionsTable {
  secret_id: string;
  version: number;
  created_at: number;
  created_by: string;
}

export interface SigningKeysTable {
  kid: string;
  alg: string;
  private_key: Uint8Array;
  public_jwk: string;
  created_at: number;
  retire_at: number | null;
}

export interface TrustedIssuersTable {
  id: string;
  issuer: string;
  jwks_uri: string | null;
  /** 1 = find the JWKS through the issuer's OpenID discovery document. */
  use_discovery: number;
  audience: string;
  /** JSON array of allowed JWS algorithms (asymmetric only). */
  algorithms: string;
  user_id_claim: string;
  tenant_claim: string | null;
  permissions_claim: string;
  clearance_claim: string | null;
  version: number;
  created_at: number;
  updated_at: number;
  deleted_at: number | null;
}

/** A running `nexus serve` or `nexus worker` and its key rings (migration 0012, decision 0013). */
export interface BrokerProcessesTable {
  id: string;
  host: string;
  pid: number;
  role: string;
  started_at: number;
  heartbeat_at: number;
  /** JSON array of key ids, primary first. */
  encryption_kids: string;
  /** JSON array of key ids, primary first; `[]` when the process has no user-secrets ring. */
  user_secrets_kids: string;
  key_source: string;
}

/** A hosted connect session (migration 0015, modules/connect); only the token's hash is kept. */
export interface ConnectSessionsTable {
  id: string;
  token_hash: string;
  workspace_id: string;
  /** JSON array of provider ids. */
  providers: string;
  return_url: string;
  /** JSON object of strings, or null. */
  connection_config: string | null;
  created_by: string;
  expires_at: number;
  used_at: number | null;
  connection_id: string | null;
  /** Where the pick sent the browser (the authorization URL or the capture page). */
  auth_url: string | null;
  created_at: number;
  /** 1: the session's consent must be confirmed by the app (migration 0016, decision 0017). */
  verify: number;
}

/** A consent that must be confirmed by the app that asked (migration 0016, decision 0017). */
export interface ConsentConfirmationsTable {
  /** The consent flow's id. */
  id: string;
  connection_id: string;
  provider_id: string;
  workspace_id: string;
  /** The audit actor of the request: the only caller that may confirm. */
  requested_by: string;
  return_url: string;
  /** SHA-256 (hex) of the `flow_id` given to the verifier page; null until the callback. */
  flow_hash: string | null;
  /** The sealed credentials waiting for the confirmation; erased when it is used. */
  held: Uint8Array | null;
  held_at: number | null;
  expires_at: number;
  used_at: number | null;
  created_at: number;
}

export interface DB {
  connections: ConnectionsTable;
  consent_flows: ConsentFlowsTable;
  nexus_migrations: MigrationsTable;
  admin_keys: AdminKeysTable;
  providers: ProvidersTable;
  provider_aliases: ProviderAliasesTable;
  secret_store: SecretStoreTable;
  audit_events: AuditEventsTable;
  audit_chain: AuditChainTable;
  agents: AgentsTable;
  agent_secrets: AgentSecretsTable;
  agent_assertions: AgentAssertionsTable;
  signing_keys: SigningKeysTable;
  user_secrets: UserSecretsTable;
  user_secret_versions: UserSecretVersionsTable;
  trusted_issuers: TrustedIssuersTable;
  agent_sessions: AgentSessionsTable;
  custom_scopes: CustomScopesTable;
  connection_events: ConnectionEventsTable;
  webhooks: WebhooksTable;
  webhook_deliveries: WebhookDeliveriesTable;
  broker_processes: BrokerProcessesTable;
  connect_sessions: ConnectSessionsTable;
  consent_confirmations: ConsentConfirmationsTable;
  connection_counts: ConnectionCountsTable;
  connection_count_deltas: ConnectionCountDeltasTable;
}

/** Connections by status, kept by triggers (migration 0018) and folded from the deltas below. */
export interface ConnectionCountsTable {
  status: string;
  n: number | string;
}

/** One row per change of a connection's status (or per status of a bulk insert or delete). */
export interface ConnectionCountDeltasTable {
  status: string;
  delta: number | string;
}

export type { Generated };
