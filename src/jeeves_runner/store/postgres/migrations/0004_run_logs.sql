-- Version 4: a run's full log, and the status `cancelled` (SQLite's version 7). PostgreSQL
-- changes the CHECK constraint in place; rows, indexes and triggers stay as they are.

ALTER TABLE runs DROP CONSTRAINT runs_status_check;
ALTER TABLE runs ADD CONSTRAINT runs_status_check
    CHECK (status IN ('pending', 'running', 'ok', 'error', 'timeout', 'skipped', 'cancelled'));

-- "The failures of the last day": runs across jobs by start time (GET /runs?since=).
CREATE INDEX runs_by_start ON runs (started_at);

-- A run's log: chunks of lines of one stream read at one instant, in `seq` order. Kept in
-- the database (not in files beside it), so a backup holds it and any node can serve it;
-- deleted with its run. `data` is the bytes the child wrote, UTF-8 or not (and NUL too).
CREATE TABLE run_logs (
    run_id BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq    BIGINT NOT NULL,
    stream TEXT NOT NULL CHECK (stream IN ('stdout', 'stderr', 'runner')),
    at     TEXT COLLATE "C" NOT NULL,
    data   BYTEA NOT NULL,
    PRIMARY KEY (run_id, seq)
);
