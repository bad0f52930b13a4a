-- Token vault and consent handshake.

-- One row per (workspace × provider) grant. `credentials` is an envelope ciphertext bound to
-- (connections, id, credentials): tokens for OAuth, the captured fields for static providers.
CREATE TABLE connections (
  id TEXT PRIMARY KEY,
  workspace_id TEXT NOT NULL,
  provider_id TEXT NOT NULL REFERENCES providers (id),
  status TEXT NOT NULL,
  scopes TEXT NOT NULL,
  credentials BLOB,
  access_expires_at BIGINT,
  pending_expires_at BIGINT,
  refresh_lease_until BIGINT,
  refresh_lease_owner TEXT,
  last_refreshed_at BIGINT,
  last_error TEXT,
  version INTEGER NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  revoked_at BIGINT
);
-- /v1/resolve: newest active connection of a workspace for a provider.
CREATE INDEX connections_workspace_provider ON connections (workspace_id, provider_id, status, created_at);
-- Housekeeping: pending connections past their expiry.
CREATE INDEX connections_pending_expiry ON connections (pending_expires_at) WHERE status = 'pending';

-- One row per authorization request. The signed `state` carries `id`; the row makes it single-use
-- (`used_at`) and holds the PKCE verifier (envelope ciphertext bound to (consent_flows, id,
-- verifier)), deleted once used.
CREATE TABLE consent_flows (
  id TEXT PRIMARY KEY,
  connection_id TEXT NOT NULL REFERENCES connections (id),
  provider_id TEXT NOT NULL,
  verifier BLOB,
  nonce TEXT,
  redirect_uri TEXT NOT NULL,
  return_url TEXT NOT NULL,
  scopes TEXT NOT NULL,
  expires_at BIGINT NOT NULL,
  used_at BIGINT,
  created_at BIGINT NOT NULL
);
CREATE INDEX consent_flows_expiry ON consent_flows (expires_at);
