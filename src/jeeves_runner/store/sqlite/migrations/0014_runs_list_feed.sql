-- Version 14: a change log for GET /jobs/:id/runs, so a read after a write re-reads only the
-- runs that changed, not the job's whole page (`RunStore.refresh_runs_list`).

-- One row per change to what a run list shows (a run added, deleted, or one of its listed
-- columns written), by any process: triggers keep it, not the runner's code. One writer at a
-- time, so `seq` is the commit order, and a reader that knows position N reads only the rows
-- past it (a range at the end of the table). AUTOINCREMENT: a log emptied by hand does not
-- count again from 1 past a reader's mark.
CREATE TABLE runs_changes (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    run_id INTEGER NOT NULL
);

CREATE TRIGGER runs_changes_on_insert AFTER INSERT ON runs
BEGIN
    INSERT INTO runs_changes (job_id, run_id) VALUES (NEW.job_id, NEW.id);
END;

-- The columns a run list shows; pids, instants, attempts and the like move nothing. A run
-- moved to another job changes both lists.
CREATE TRIGGER runs_changes_on_update AFTER UPDATE OF
    job_id, started_at, finished_at, status, exit_code, stdout, stderr, duration_ms, error,
    trigger, tokens, result_meta, skipped_count, last_skipped_at
ON runs
BEGIN
    INSERT INTO runs_changes (job_id, run_id)
    SELECT OLD.job_id, OLD.id WHERE OLD.job_id IS NOT NEW.job_id;
    INSERT INTO runs_changes (job_id, run_id) VALUES (NEW.job_id, NEW.id);
END;

CREATE TRIGGER runs_changes_on_delete AFTER DELETE ON runs
BEGIN
    INSERT INTO runs_changes (job_id, run_id) VALUES (OLD.job_id, OLD.id);
END;

-- Bounded: every 1,024th change drops those more than 4,096 changes old (never the newest,
-- so `seq` keeps counting up). A reader whose position fell off the log reads afresh.
CREATE TRIGGER runs_changes_trim AFTER INSERT ON runs_changes
WHEN NEW.seq % 1024 = 0
BEGIN
    DELETE FROM runs_changes WHERE seq <= NEW.seq - 4096;
END;
