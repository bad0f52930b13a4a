-- Foundation: admin keys, provider registry, internal secret store, audit log.
-- Portable SQL: BLOB is rewritten to BYTEA on PostgreSQL; everything else runs on both.

CREATE TABLE admin_keys (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  key_hash TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  created_by TEXT NOT NULL,
  last_used_at BIGINT,
  revoked_at BIGINT
);
CREATE UNIQUE INDEX admin_keys_live_name ON admin_keys (name) WHERE revoked_at IS NULL;

CREATE TABLE providers (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  auth_type TEXT NOT NULL,
  profile TEXT NOT NULL,
  version INTEGER NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  deleted_at BIGINT
);
-- A name is unique among live providers only: a deleted provider frees its name.
CREATE UNIQUE INDEX providers_live_name ON providers (name) WHERE deleted_at IS NULL;
CREATE INDEX providers_live_auth_type ON providers (auth_type, name) WHERE deleted_at IS NULL;

CREATE TABLE provider_aliases (
  alias TEXT PRIMARY KEY,
  provider_id TEXT NOT NULL REFERENCES providers (id),
  created_at BIGINT NOT NULL
);
CREATE INDEX provider_aliases_provider ON provider_aliases (provider_id);

CREATE TABLE secret_store (
  path TEXT PRIMARY KEY,
  version INTEGER NOT NULL,
  value BLOB NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);

CREATE TABLE audit_events (
  seq BIGINT PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  occurred_at BIGINT NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  resource_type TEXT NOT NULL,
  resource_id TEXT,
  outcome TEXT NOT NULL,
  ip TEXT,
  user_agent TEXT,
  request_id TEXT,
  details TEXT,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL
);
CREATE INDEX audit_events_action ON audit_events (action, seq);
CREATE INDEX audit_events_actor ON audit_events (actor, seq);
CREATE INDEX audit_events_resource ON audit_events (resource_type, resource_id, seq);
CREATE INDEX audit_events_time ON audit_events (occurred_at);

-- The head of the hash chain: one row, locked by every audit batch so appends serialize
-- across replicas.
CREATE TABLE audit_chain (
  id INTEGER PRIMARY KEY,
  seq BIGINT NOT NULL,
  hash TEXT NOT NULL
);
INSERT INTO audit_chain (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
