-- Version 6: a change feed for GET /jobs, so a read re-renders only the jobs that changed.

-- Each job remembers the (top-level) transaction that last changed what GET /jobs shows of
-- it. A reader keeps the snapshot of its previous read and asks for the jobs whose
-- transaction that snapshot did not see: commits land in any order on a cluster, and a
-- snapshot says exactly which ones a read saw, where a counter would not (a transaction that
-- took number 10 can commit after one that took 11). No shared row is written: each writer
-- stamps only the job row it changes anyway.
ALTER TABLE jobs ADD COLUMN list_xid xid8 NOT NULL DEFAULT pg_current_xact_id();

CREATE FUNCTION jobs_list_stamp() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    NEW.list_xid := pg_current_xact_id();
    RETURN NEW;
END;
$$;

CREATE TRIGGER jobs_list_stamp BEFORE INSERT OR UPDATE ON jobs
FOR EACH ROW EXECUTE FUNCTION jobs_list_stamp();

-- The run a job points at changed what GET /jobs shows of it (its status or start): the job
-- row is stamped again. Output tails, pids and the like move nothing.
CREATE FUNCTION runs_touch_job_list() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    UPDATE jobs SET list_xid = pg_current_xact_id()
    WHERE id IN (OLD.job_id, NEW.job_id) AND last_run_id IN (OLD.id, NEW.id);
    RETURN NULL;
END;
$$;

CREATE TRIGGER runs_touch_job_list AFTER UPDATE OF status, started_at, job_id ON runs
FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status
                   OR OLD.started_at IS DISTINCT FROM NEW.started_at
                   OR OLD.job_id IS DISTINCT FROM NEW.job_id)
EXECUTE FUNCTION runs_touch_job_list();
