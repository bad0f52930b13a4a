-- Agent tokens issued before `tokens_not_before` (epoch ms) are refused, and sessions opened before
-- it are inactive: deactivating an agent sets it, so that reactivating the agent does not bring
-- back the access tokens and sessions it had when it was deactivated (2026-12-07 review).
ALTER TABLE agents ADD COLUMN tokens_not_before BIGINT;
