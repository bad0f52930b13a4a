-- Consent bound to the person who asked (issue #21, decision 0017). A consent that must be
-- confirmed has a row here from its start (`requested_by`: the audit actor of the request, the
-- only caller who may confirm it). At the provider's callback the token answer is held here,
-- sealed (envelope ciphertext bound to (consent_confirmations, id, held)), instead of activating
-- the connection, and the browser goes to the application's verifier page with a single-use
-- `flow_id`, of which only a SHA-256 is kept (`flow_hash`). Confirming uses the row up
-- (`used_at`) and erases what it held in the same statement.
CREATE TABLE consent_confirmations (
  -- The consent flow's id (consent_flows.id).
  id TEXT PRIMARY KEY,
  connection_id TEXT NOT NULL,
  provider_id TEXT NOT NULL,
  workspace_id TEXT NOT NULL,
  requested_by TEXT NOT NULL,
  return_url TEXT NOT NULL,
  flow_hash TEXT UNIQUE,
  held BLOB,
  held_at BIGINT,
  expires_at BIGINT NOT NULL,
  used_at BIGINT,
  created_at BIGINT NOT NULL
);
CREATE INDEX consent_confirmations_expires ON consent_confirmations (expires_at);

-- A connect session created with `verify: true` starts consents that must be confirmed.
ALTER TABLE connect_sessions ADD COLUMN verify INTEGER NOT NULL DEFAULT 0;
