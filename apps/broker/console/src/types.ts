/** The shapes the console reads from the admin API (the OpenAPI document at /openapi.json). */
export const CONNECTION_STATUSES = [
  'active',
  'pending',
  'attention_required',
  'expired',
  'revoked',
  'failed',
] as const;

export interface Connection {
  id: string;
  workspace_id: string;
  provider_id: string;
  provider_name: string;
  status: (typeof CONNECTION_STATUSES)[number];
  scopes: string[];
  access_expires_at: string | null;
  last_refreshed_at: string | null;
  last_error: string | null;
  created_at: string;
  updated_at: string;
}
export interface ConnectionList {
  connections: Connection[];
  next_cursor: string | null;
}
export interface ConnectionEvent {
  id: string;
  type: string;
  connection_id: string;
  workspace_id: string;
  provider_id: string;
  details: Record<string, unknown>;
  created_at: string;
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
  request_id: string | null;
  details: Record<string, unknown> | null;
}
export interface Webhook {
  id: string;
  url: string;
  description: string;
  events: string[];
  active: boolean;
  created_at: string;
}
export interface WebhookDelivery {
  id: string;
  webhook_id: string;
  event_id: string;
  event_type: string;
  status: 'pending' | 'delivered' | 'failed';
  attempts: number;
  last_attempt_at: string | null;
  last_status_code: number | null;
  last_error: string | null;
  created_at: string;
}
export interface Agent {
  id: string;
  agent_id: string;
  description: string;
  allowed_scopes: string[];
  allowed_providers: string[];
  allowed_workspaces: string[];
  allowed_secrets: string[];
  active: boolean;
  secrets: { id: string; created_at: string; expires_at: string | null }[];
  version: number;
  created_at: string;
}
export interface AdminKey {
  id: string;
  name: string;
  scope: 'full' | 'read' | 'agent';
  created_at: string;
  created_by: string;
  last_used_at: string | null;
  revoked_at: string | null;
}
export interface AuditVerification {
  ok: boolean;
  checked: number;
  from_seq: number;
  to_seq: number;
  complete: boolean;
  next_from_seq: number | null;
  head_seq: number;
  head_hash: string;
  pruned_through: number;
  broken_at: number | null;
  reason: string | null;
}
export interface AgentSession {
  session_id: string;
  agent_id: string;
  connection_id: string | null;
  scopes_granted: string[];
  status: 'active' | 'closed' | 'expired';
  created_at: string;
  expires_at: string;
  obo: boolean;
  acting_for: string | null;
  tenant_id: string | null;
}
export interface Provider {
  id: string;
  name: string;
  auth_type?: string;
  issuer?: string | null;
  auth_url?: string | null;
  token_url?: string | null;
  client_id?: string | null;
  has_client_secret?: boolean;
  scopes?: string[] | null;
  api_base_url?: string | null;
  description?: string | null;
  version?: number;
}
