-- Explicit grants of user secrets to an agent (issue #7): a JSON list of "<user>/<zone>/<name>",
-- `*` allowed for the user. Without a grant an agent reads a user's secrets only while acting for
-- that user (an on-behalf-of session).
ALTER TABLE agents ADD COLUMN allowed_secrets TEXT NOT NULL DEFAULT '[]';
