-- Agents: machine principals with bounded permissions (issue #6).

-- `allowed_*` are JSON arrays; ["*"] means any. An empty list allows nothing (deny by default).
-- `allowed_providers` holds provider ids. `disabled_at` set = deactivated (refused at once).
CREATE TABLE agents (
  id TEXT PRIMARY KEY,
  agent_id TEXT NOT NULL,
  description TEXT NOT NULL,
  allowed_scopes TEXT NOT NULL,
  allowed_providers TEXT NOT NULL,
  allowed_workspaces TEXT NOT NULL,
  -- private_key_jwt: the agent's public keys (a JWKS document) or where to fetch them.
  jwks TEXT,
  jwks_uri TEXT,
  disabled_at BIGINT,
  version INTEGER NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  deleted_at BIGINT
);
CREATE UNIQUE INDEX agents_live_agent_id ON agents (agent_id) WHERE deleted_at IS NULL;

-- Client secrets: only the SHA-256 of a 256-bit random secret. A rotated-out secret keeps working
-- until `expires_at` (the overlap), then never again.
CREATE TABLE agent_secrets (
  id TEXT PRIMARY KEY,
  agent_uuid TEXT NOT NULL REFERENCES agents (id),
  secret_hash TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  expires_at BIGINT,
  revoked_at BIGINT
);
CREATE INDEX agent_secrets_agent ON agent_secrets (agent_uuid);

-- Client-assertion ids already accepted (private_key_jwt replay protection), until they expire.
CREATE TABLE agent_assertions (
  jti_hash TEXT PRIMARY KEY,
  expires_at BIGINT NOT NULL
);
CREATE INDEX agent_assertions_expiry ON agent_assertions (expires_at);

-- The broker's token-signing keys. The private key is an envelope ciphertext bound to
-- (signing_keys, kid, private_key). The newest live key signs; every key until `retire_at`
-- (set when a newer one replaces it, later than the longest token lifetime) is published.
CREATE TABLE signing_keys (
  kid TEXT PRIMARY KEY,
  alg TEXT NOT NULL,
  private_key BLOB NOT NULL,
  public_jwk TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  retire_at BIGINT
);
