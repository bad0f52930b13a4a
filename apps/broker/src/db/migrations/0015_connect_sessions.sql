-- Hosted connect sessions (issue #21, modules/connect): an app asks for one, the user's browser
-- opens its URL, picks a provider, and goes through the ordinary consent flow. Only a SHA-256 of
-- the session token is kept (the token is the capability; a database read does not give it).
-- Single use: `used_at` is set when a provider is picked, `connection_id` names the pending
-- connection that pick started and `auth_url` where it sent the browser (a second click on the same
-- provider while that connection is pending is sent there again, not refused).
CREATE TABLE connect_sessions (
  id TEXT PRIMARY KEY,
  token_hash TEXT NOT NULL UNIQUE,
  workspace_id TEXT NOT NULL,
  -- JSON array of the provider ids offered (checked against the creator's grant at creation).
  providers TEXT NOT NULL,
  return_url TEXT NOT NULL,
  -- JSON object of strings, or NULL: request-connection's connection_config for the pick.
  connection_config TEXT,
  created_by TEXT NOT NULL,
  expires_at BIGINT NOT NULL,
  used_at BIGINT,
  connection_id TEXT,
  auth_url TEXT,
  created_at BIGINT NOT NULL
);
CREATE INDEX connect_sessions_expires ON connect_sessions (expires_at);
