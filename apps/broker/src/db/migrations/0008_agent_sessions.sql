-- Agent sessions (issue #6): a bounded, closable grant of scopes to an agent, optionally for one
-- connection, optionally on behalf of a user (OBO). `obo` is JSON ({user_id, tenant_id,
-- clearance_level, issuer}) or NULL. Closing sets `closed_at`; its session tokens fail
-- introspection from then on.
CREATE TABLE agent_sessions (
  id TEXT PRIMARY KEY,
  agent_uuid TEXT NOT NULL REFERENCES agents (id),
  connection_id TEXT,
  scopes TEXT NOT NULL,
  obo TEXT,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  closed_at BIGINT
);
CREATE INDEX agent_sessions_agent ON agent_sessions (agent_uuid, created_at);
CREATE INDEX agent_sessions_expiry ON agent_sessions (expires_at);

-- Custom (non-OAuth) scopes of this deployment (`crm:read`, `ledger:post`, …). A scope not listed
-- here is a provider scope, granted only with a connection that holds it.
CREATE TABLE custom_scopes (
  name TEXT PRIMARY KEY,
  description TEXT NOT NULL,
  created_at BIGINT NOT NULL
);
