-- Background refresh. `refresh_due_at` is when the worker should refresh an active OAuth
-- connection: its access token's expiry minus a margin and a random jitter, or, after a transient
-- failure, the time of the next attempt (exponential backoff). NULL means nothing to do.
-- `refresh_failures` counts consecutive transient failures; `failing_since` is when they began, so
-- a connection broken past the configured horizon can be expired.
ALTER TABLE connections ADD COLUMN refresh_due_at BIGINT;
ALTER TABLE connections ADD COLUMN refresh_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE connections ADD COLUMN failing_since BIGINT;

-- Connections made before this migration: due five minutes before expiry (the default margin).
UPDATE connections SET refresh_due_at = access_expires_at - 300000
  WHERE status = 'active' AND access_expires_at IS NOT NULL;

-- The worker's claim: the earliest due active connections, without scanning the table.
CREATE INDEX connections_refresh_due ON connections (refresh_due_at) WHERE status = 'active';
-- Counts by state (metrics) and the give-up horizon for attention_required connections.
CREATE INDEX connections_status_updated ON connections (status, updated_at);
-- The give-up horizon for connections whose refresh keeps failing.
CREATE INDEX connections_failing ON connections (failing_since) WHERE failing_since IS NOT NULL;
