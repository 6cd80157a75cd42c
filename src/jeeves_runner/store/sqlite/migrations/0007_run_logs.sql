-- Version 7: a run's full log, and the status `cancelled`.

-- SQLite cannot change a CHECK constraint in place: the runs table is built again with
-- `cancelled` allowed, its rows, indexes and triggers carried over. Nothing refers to runs
-- by foreign key yet, so the old table can simply go.
DROP TRIGGER runs_point_job_on_insert;
DROP TRIGGER runs_point_job_on_start;
DROP TRIGGER runs_repoint_job_on_delete;
ALTER TABLE runs RENAME TO runs_before_5;

CREATE TABLE runs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id          TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    status          TEXT NOT NULL
                    CHECK (status IN ('pending', 'running', 'ok', 'error', 'timeout',
                                      'skipped', 'cancelled')),
    started_at      TEXT,
    finished_at     TEXT,
    duration_ms     INTEGER,
    exit_code       INTEGER,
    tokens          INTEGER,
    result_meta     TEXT,
    error           TEXT,
    stdout          TEXT,
    stderr          TEXT,
    trigger         TEXT NOT NULL DEFAULT 'schedule'
                    CHECK (trigger IN ('schedule', 'manual', 'retry')),
    skipped_count   INTEGER,
    last_skipped_at TEXT,
    pid             INTEGER,
    pgid            INTEGER,
    process_started INTEGER
);
INSERT INTO runs (id, job_id, status, started_at, finished_at, duration_ms, exit_code, tokens,
                  result_meta, error, stdout, stderr, trigger, skipped_count, last_skipped_at,
                  pid, pgid, process_started)
SELECT id, job_id, status, started_at, finished_at, duration_ms, exit_code, tokens,
       result_meta, error, stdout, stderr, trigger, skipped_count, last_skipped_at,
       pid, pgid, process_started
FROM runs_before_5;
-- AUTOINCREMENT never reuses an id, not even that of a pruned newest run.
UPDATE sqlite_sequence SET seq = max(seq, (SELECT seq FROM sqlite_sequence WHERE name = 'runs_before_5'))
WHERE name = 'runs';
INSERT INTO sqlite_sequence (name, seq)
SELECT 'runs', seq FROM sqlite_sequence
WHERE name = 'runs_before_5' AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'runs');
DROP TABLE runs_before_5;

CREATE INDEX runs_job_id ON runs (job_id, id);
CREATE INDEX runs_finished_at ON runs (finished_at);
CREATE INDEX runs_unfinished ON runs (status) WHERE status IN ('pending', 'running');
-- "The failures of the last day": runs across jobs by start time (GET /runs?since=).
CREATE INDEX runs_by_start ON runs (started_at);

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

CREATE TRIGGER runs_repoint_job_on_delete AFTER DELETE ON runs
WHEN OLD.id = (SELECT last_run_id FROM jobs WHERE id = OLD.job_id)
BEGIN
    UPDATE jobs SET last_run_id = (
        SELECT max(id) FROM runs
        WHERE job_id = OLD.job_id AND status NOT IN ('pending', 'skipped')
    )
    WHERE id = OLD.job_id;
END;

-- A run's log: chunks of lines of one stream read at one instant, in `seq` order. Kept in
-- the database (not in files beside it), so a backup holds it and any node can serve it;
-- deleted with its run.
CREATE TABLE run_logs (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq    INTEGER NOT NULL,
    stream TEXT NOT NULL CHECK (stream IN ('stdout', 'stderr', 'runner')),
    at     TEXT NOT NULL,
    data   BLOB NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
