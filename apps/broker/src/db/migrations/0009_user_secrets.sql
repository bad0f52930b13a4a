-- User secrets (issue #7): identified by (user, zone, name). Values live in the configured secret
-- backend, one path per version, sealed with the user-secrets key ring and bound to
-- (user_secret_versions, <secret id>:<version>, value); these tables hold metadata only.
CREATE TABLE user_secrets (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL,
  zone TEXT NOT NULL,
  name TEXT NOT NULL,
  description TEXT NOT NULL,
  current_version INTEGER NOT NULL,
  disabled_at BIGINT,
  deleted_at BIGINT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX user_secrets_identity ON user_secrets (user_id, zone, name);

CREATE TABLE user_secret_versions (
  secret_id TEXT NOT NULL REFERENCES user_secrets (id),
  version INTEGER NOT NULL,
  created_at BIGINT NOT NULL,
  created_by TEXT NOT NULL,
  PRIMARY KEY (secret_id, version)
);
