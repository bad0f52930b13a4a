-- Refresh you can trust (decision 0012).
--
-- `access_issued_at`: when the stored access token was obtained. With `access_expires_at` it gives
-- the token's lifetime, which bounds how early the worker and the read path may refresh it.
ALTER TABLE connections ADD COLUMN access_issued_at BIGINT;
-- `refresh_started_at`: a call to the provider that spends the stored refresh token is in flight,
-- or was when its process died or its answer was lost (database clock). Set under the lease just
-- before the call, cleared only once the outcome is known. The next lease holder that finds it set
-- cannot know whether the provider already rotated the token.
ALTER TABLE connections ADD COLUMN refresh_started_at BIGINT;
-- `refresh_attempted_at`: when the last refresh attempt ended, successful or not: the floor between
-- two attempts on one connection, whoever makes them.
ALTER TABLE connections ADD COLUMN refresh_attempted_at BIGINT;

UPDATE connections SET access_issued_at = COALESCE(last_refreshed_at, updated_at)
  WHERE access_expires_at IS NOT NULL;

-- Connections scheduled under the old rule (due a fixed margin before expiry, even when that was
-- before the token was issued) are moved to half their token's lifetime at the earliest.
UPDATE connections
  SET refresh_due_at = access_issued_at + (access_expires_at - access_issued_at) / 2
  WHERE status = 'active'
    AND refresh_failures = 0
    AND refresh_due_at IS NOT NULL
    AND access_expires_at > access_issued_at
    AND refresh_due_at < access_issued_at + (access_expires_at - access_issued_at) / 2;
