-- Trusted issuers of user tokens for on-behalf-of (issue #6): the developer's own identity
-- provider(s). A user's access token is verified locally against the issuer's keys, found at
-- `jwks_uri` or through OpenID discovery (`use_discovery` = 1), never at an unlisted address.

-- `algorithms` is a JSON array of asymmetric JWS algorithms (never "none", never HS*).
-- The *_claim columns name the token claims that carry the user id, tenant, permissions
-- (a JSON array, or a space-separated string such as `scope`) and clearance level.
CREATE TABLE trusted_issuers (
  id TEXT PRIMARY KEY,
  issuer TEXT NOT NULL,
  jwks_uri TEXT,
  use_discovery INTEGER NOT NULL,
  audience TEXT NOT NULL,
  algorithms TEXT NOT NULL,
  user_id_claim TEXT NOT NULL,
  tenant_claim TEXT,
  permissions_claim TEXT NOT NULL,
  clearance_claim TEXT,
  version INTEGER NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  deleted_at BIGINT
);
CREATE UNIQUE INDEX trusted_issuers_live_issuer ON trusted_issuers (issuer) WHERE deleted_at IS NULL;
