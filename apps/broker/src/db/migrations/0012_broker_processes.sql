-- Every running broker process (`nexus serve`, `nexus worker`) with the key ids of its rings,
-- kept fresh by a heartbeat and removed on a graceful shutdown (decision 0013). `nexus keys
-- rewrap`, /ready and `nexus doctor` read it to tell whether every live process can open what the
-- others write. Key ids are HMACs of the keys (crypto/keyring.ts), not secret.
CREATE TABLE broker_processes (
  id TEXT PRIMARY KEY,
  host TEXT NOT NULL,
  pid INTEGER NOT NULL,
  role TEXT NOT NULL,
  started_at BIGINT NOT NULL,
  heartbeat_at BIGINT NOT NULL,
  -- JSON arrays of key ids, the primary (the key new ciphertexts use) first; '[]' for no ring.
  encryption_kids TEXT NOT NULL,
  user_secrets_kids TEXT NOT NULL,
  -- 'env', 'file' or 'transit': what an operator has to change to change this process's keys.
  key_source TEXT NOT NULL
);
CREATE INDEX broker_processes_heartbeat ON broker_processes (heartbeat_at);
