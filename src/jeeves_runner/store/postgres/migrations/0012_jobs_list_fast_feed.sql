-- Version 12: GET /jobs's change feed without a pass over every job.
--
-- A job written by a transaction the previous read's snapshot did not see has a list_xid at
-- or above that snapshot's xmin (every transaction below it had ended): one index range.
CREATE INDEX jobs_list_xid ON jobs (list_xid);

-- Deletes leave no row to find: each one stamps this row with its transaction, so a read
-- learns from one row whether a job may have gone since its snapshot. No row: no delete yet.
CREATE TABLE jobs_list_deletes (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    xid  xid8 NOT NULL
);

CREATE FUNCTION jobs_list_deleted() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO jobs_list_deletes (one, xid) VALUES (1, pg_current_xact_id())
    ON CONFLICT (one) DO UPDATE SET xid = EXCLUDED.xid;
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_list_deleted AFTER DELETE ON jobs
FOR EACH STATEMENT EXECUTE FUNCTION jobs_list_deleted();
