-- Admin key scopes (issue #18): what a key may call (http/auth.ts `requiredScope`). 'full' is
-- every route, what every key could do before this migration; 'read' the admin API's reads, never
-- a credential; 'agent' the agent-facing API only. No CHECK constraint: the service refuses to
-- authenticate a key whose scope it does not know, so a scope added later needs no table rebuild.
ALTER TABLE admin_keys ADD COLUMN scope TEXT NOT NULL DEFAULT 'full';
