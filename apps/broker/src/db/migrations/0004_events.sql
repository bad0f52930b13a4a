-- Connection events and the webhooks that deliver them.

-- One row per connection state change. `details` is a JSON object of caller-safe facts (never a
-- token or key). No foreign key to connections: the event log outlives what it describes.
CREATE TABLE connection_events (
  id TEXT PRIMARY KEY,
  connection_id TEXT NOT NULL,
  workspace_id TEXT NOT NULL,
  provider_id TEXT NOT NULL,
  type TEXT NOT NULL,
  details TEXT NOT NULL,
  created_at BIGINT NOT NULL
);
-- GET /admin/v1/events: newest first, optionally for one connection or one type.
CREATE INDEX connection_events_time ON connection_events (created_at, id);
CREATE INDEX connection_events_connection ON connection_events (connection_id, created_at, id);
CREATE INDEX connection_events_type ON connection_events (type, created_at, id);

-- Operator-configured receivers. `event_types` is a JSON array (empty = every type). `secret` is
-- an envelope ciphertext bound to (webhooks, id, secret), erased when the webhook is deleted.
-- `disabled_at` is the active flag (NULL = active), like the other nullable-timestamp flags.
CREATE TABLE webhooks (
  id TEXT PRIMARY KEY,
  url TEXT NOT NULL,
  description TEXT NOT NULL,
  event_types TEXT NOT NULL,
  secret BLOB,
  disabled_at BIGINT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  deleted_at BIGINT
);
CREATE INDEX webhooks_live ON webhooks (created_at, id) WHERE deleted_at IS NULL;

-- One row per (webhook × event) send, or per redelivery. A worker claims a due row by taking its
-- lease (`lease_owner`, `lease_until`) and pushing `next_attempt_at` to the lease's end, so a row
-- whose worker died becomes due again by itself when the lease runs out.
CREATE TABLE webhook_deliveries (
  id TEXT PRIMARY KEY,
  webhook_id TEXT NOT NULL REFERENCES webhooks (id),
  event_id TEXT NOT NULL REFERENCES connection_events (id),
  status TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  next_attempt_at BIGINT,
  last_attempt_at BIGINT,
  last_status_code INTEGER,
  last_error TEXT,
  delivered_at BIGINT,
  lease_owner TEXT,
  lease_until BIGINT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
-- The delivery worker's queue.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
-- The delivery log of one webhook, newest first.
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, created_at, id);
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id);
