-- `nexus_connections{status}` counted every connection on every scrape (an index scan of the whole
-- table: ~100 ms at a million connections, on the broker's own thread with SQLite). The counts
-- are now kept as they change: triggers append one row per change of a connection's status to
-- connection_count_deltas (appends never wait on each other), and folding adds those rows into
-- connection_counts and deletes them (ConnectionsStore.foldStatusCounts: at each scrape and each
-- housekeeping pass). A scrape reads a few rows, whatever the number of connections.
CREATE TABLE connection_count_deltas (
  status TEXT NOT NULL,
  delta BIGINT NOT NULL
);
CREATE TABLE connection_counts (
  status TEXT PRIMARY KEY,
  n BIGINT NOT NULL
);
-- The triggers first: on PostgreSQL, creating one locks out writes to connections until this
-- migration commits, so the count below misses no connection and counts none twice.
-- postgres only
-- Each function keeps the search path it was created with (the broker's schema): a session with
-- another one (an operator's psql naming the schema) still writes its deltas beside its table.
CREATE FUNCTION connection_counts_added() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  INSERT INTO connection_count_deltas (status, delta) SELECT status, COUNT(*) FROM added GROUP BY status;
  RETURN NULL;
END $$;
CREATE FUNCTION connection_counts_removed() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  INSERT INTO connection_count_deltas (status, delta) SELECT status, -COUNT(*) FROM removed GROUP BY status;
  RETURN NULL;
END $$;
CREATE FUNCTION connection_counts_moved() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  INSERT INTO connection_count_deltas (status, delta) VALUES (OLD.status, -1), (NEW.status, 1);
  RETURN NULL;
END $$;
-- Per statement, from its transition table: a bulk insert or delete appends one row per status.
CREATE TRIGGER connections_counted_insert AFTER INSERT ON connections
  REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION connection_counts_added();
CREATE TRIGGER connections_counted_delete AFTER DELETE ON connections
  REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION connection_counts_removed();
-- Per row, and only when the status changes (a refresh that keeps it `active` costs nothing).
CREATE TRIGGER connections_counted_status AFTER UPDATE OF status ON connections
  FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION connection_counts_moved();
-- end
-- sqlite only
CREATE TRIGGER connections_counted_insert AFTER INSERT ON connections BEGIN
  INSERT INTO connection_count_deltas (status, delta) VALUES (NEW.status, 1);
END;
CREATE TRIGGER connections_counted_delete AFTER DELETE ON connections BEGIN
  INSERT INTO connection_count_deltas (status, delta) VALUES (OLD.status, -1);
END;
CREATE TRIGGER connections_counted_status AFTER UPDATE OF status ON connections
  WHEN OLD.status IS NOT NEW.status BEGIN
  INSERT INTO connection_count_deltas (status, delta) VALUES (OLD.status, -1), (NEW.status, 1);
END;
-- end
INSERT INTO connection_counts (status, n) SELECT status, COUNT(*) FROM connections GROUP BY status;
