-- Version 4: SQL at scale, and the last-run pointer kept by SQLite itself.

-- Every finished or skipped run has finished_at, so pruning can range-scan
-- runs_finished_at instead of reading coalesce(finished_at, started_at) row by row. Rows
-- an older program (or a hand edit) left without it take their start, else the epoch.
UPDATE runs SET finished_at = coalesce(started_at, '1970-01-01T00:00:00.000Z')
WHERE finished_at IS NULL AND status NOT IN ('pending', 'running');

-- No query reads runs by start time (EXPLAIN QUERY PLAN of every statement in store/sqlite).
DROP INDEX runs_started_at;

-- Items of one collection in write order: listing the newest 10 of 300,000 reads 10 index
-- entries (the rowid every index ends with breaks ties, as the ORDER BY asks), and pruning
-- deletes one index range instead of sorting the whole collection.
CREATE INDEX state_items_order ON state_items (namespace, key, updated_at);

-- jobs.last_run_id points at each job's latest run that executed (never a skip, never a
-- run that was only pending), so GET /jobs is one primary-key lookup per job. Triggers keep
-- it, so runs written by any process (another node, a restore, a script writing SQL) show.
-- A run counts from the moment it is `running`, or when it is written already finished.
-- The pointer only moves forward: an older run written late does not hide a newer one.
CREATE TRIGGER runs_point_job_on_insert AFTER INSERT ON runs
WHEN NEW.status IN ('running', 'ok', 'error', 'timeout')
BEGIN
    UPDATE jobs SET last_run_id = NEW.id
    WHERE id = NEW.job_id AND (last_run_id IS NULL OR last_run_id < NEW.id);
END;

CREATE TRIGGER runs_point_job_on_start AFTER UPDATE OF status ON runs
WHEN NEW.status = 'running' AND OLD.status <> 'running'
BEGIN
    UPDATE jobs SET last_run_id = NEW.id
    WHERE id = NEW.job_id AND (last_run_id IS NULL OR last_run_id < NEW.id);
END;

-- Pruning never deletes a job's last run; anything else that does (a hand edit, a restore)
-- points the job at the latest run that is left.
CREATE TRIGGER runs_repoint_job_on_delete AFTER DELETE ON runs
WHEN OLD.id = (SELECT last_run_id FROM jobs WHERE id = OLD.job_id)
BEGIN
    UPDATE jobs SET last_run_id = (
        SELECT max(id) FROM runs
        WHERE job_id = OLD.job_id AND status NOT IN ('pending', 'skipped')
    )
    WHERE id = OLD.job_id;
END;

-- Runs written before the triggers existed by another process count too.
UPDATE jobs SET last_run_id = (
    SELECT max(r.id) FROM runs r WHERE r.job_id = jobs.id AND r.status NOT IN ('pending', 'skipped')
);
