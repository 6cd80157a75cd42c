-- Version 9: a change feed for GET /jobs, so a read re-renders only the jobs that changed.

-- A counter moved by every change to what GET /jobs shows (a job added, edited or deleted;
-- the run a job's last_run_id points at moved, started or ended), by any process: triggers
-- keep it, not the runner's code. One writer at a time holds it, so the counter's order is
-- the commit order.
CREATE TABLE jobs_feed (
    only INTEGER PRIMARY KEY CHECK (only = 1),
    seq  INTEGER NOT NULL
);
INSERT INTO jobs_feed (only, seq) VALUES (1, 1);

-- Each job's value of the counter when it last changed: a reader that knows position N reads
-- only the jobs past it (`list_seq > N`, one index range).
ALTER TABLE jobs ADD COLUMN list_seq INTEGER NOT NULL DEFAULT 1;
CREATE INDEX jobs_list_seq ON jobs (list_seq);

CREATE TRIGGER jobs_feed_on_insert AFTER INSERT ON jobs
BEGIN
    UPDATE jobs_feed SET seq = seq + 1;
    UPDATE jobs SET list_seq = (SELECT seq FROM jobs_feed) WHERE rowid = NEW.rowid;
END;

-- Any update moves the job, except the one this trigger makes itself (it sets list_seq to
-- the counter's new value, which no other writer does), so it never depends on
-- recursive_triggers being off.
CREATE TRIGGER jobs_feed_on_update AFTER UPDATE ON jobs
WHEN OLD.list_seq = NEW.list_seq OR NEW.list_seq IS NOT (SELECT seq FROM jobs_feed)
BEGIN
    UPDATE jobs_feed SET seq = seq + 1;
    UPDATE jobs SET list_seq = (SELECT seq FROM jobs_feed) WHERE rowid = NEW.rowid;
END;

CREATE TRIGGER jobs_feed_on_delete AFTER DELETE ON jobs
BEGIN
    UPDATE jobs_feed SET seq = seq + 1;
END;

-- The run a job points at changed what GET /jobs shows of it (its status or start): the job
-- is touched, which moves it through jobs_feed_on_update. Output tails, pids and the like
-- are not shown there and move nothing.
CREATE TRIGGER runs_touch_job_list AFTER UPDATE OF status, started_at, job_id ON runs
WHEN OLD.status IS NOT NEW.status OR OLD.started_at IS NOT NEW.started_at
     OR OLD.job_id IS NOT NEW.job_id
BEGIN
    UPDATE jobs SET list_seq = list_seq
    WHERE id IN (OLD.job_id, NEW.job_id) AND last_run_id IN (OLD.id, NEW.id);
END;
