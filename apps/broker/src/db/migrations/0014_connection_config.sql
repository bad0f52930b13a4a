-- Per-connection parameters (issue #20, decision 0015): the values a connection fills its
-- provider's `{name}` URL placeholders with, as a JSON object of strings: those given to
-- request-connection's `connection_config` (or their defaults), and those learnt from the token
-- response at consent. Not secrets (they are returned in connection views). NULL: none.
ALTER TABLE connections ADD COLUMN connection_config TEXT;
