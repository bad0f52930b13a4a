-- Audit retention. Events older than NEXUS_AUDIT_RETENTION_DAYS are written to an export file, then
-- deleted from the oldest end of the chain. `pruned_seq`/`pruned_hash` record the last removed event,
-- so verification starts from its hash and the remaining chain stays verifiable (and the export files
-- verify on their own: each row carries its prev_hash and hash).
ALTER TABLE audit_chain ADD COLUMN pruned_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE audit_chain ADD COLUMN pruned_hash TEXT NOT NULL DEFAULT '0000000000000000000000000000000000000000000000000000000000000000';
