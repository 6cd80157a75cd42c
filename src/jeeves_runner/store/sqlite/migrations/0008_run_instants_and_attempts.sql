-- Version 8: what a run stands for — the instant it was due (`scheduled_for`), its try
-- (`attempt`, `retry_of`), fires missed while nothing could run them (status `missed`,
-- collapsed per job and gap: `missed_count`, `missed_first`, `missed_last`) and the node that
-- ran it (`node_id`). One row per (job, scheduled instant) of a scheduled fire, enforced by a
-- unique index, so two schedulers sharing a database can never both fire one instant.
--
-- SQLite cannot change a CHECK constraint in place: the table is built again (the migration
-- runs with foreign keys off, as SQLite's own procedure for this asks, so dropping the old
-- table does not cascade to run_logs; their references resolve to the new table by name).
DROP TRIGGER runs_point_job_on_insert;
DROP TRIGGER runs_point_job_on_start;
DROP TRIGGER runs_repoint_job_on_delete;

CREATE TABLE runs_version_8 (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id          TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    status          TEXT NOT NULL
                    CHECK (status IN ('pending', 'running', 'ok', 'error', 'timeout',
                                      'skipped', 'cancelled', 'missed')),
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
    process_started INTEGER,
    scheduled_for   TEXT,
    attempt         INTEGER NOT NULL DEFAULT 1 CHECK (attempt >= 1),
    retry_of        INTEGER,
    missed_count    INTEGER,
    missed_first    TEXT,
    missed_last     TEXT,
    node_id         TEXT
);
INSERT INTO runs_version_8 (id, job_id, status, started_at, finished_at, duration_ms, exit_code,
                            tokens, result_meta, error, stdout, stderr, trigger, skipped_count,
                            last_skipped_at, pid, pgid, process_started)
SELECT id, job_id, status, started_at, finished_at, duration_ms, exit_code, tokens,
       result_meta, error, stdout, stderr, trigger, skipped_count, last_skipped_at,
       pid, pgid, process_started
FROM runs;
-- AUTOINCREMENT never reuses an id, not even that of a pruned newest run.
UPDATE sqlite_sequence SET seq = max(seq, (SELECT seq FROM sqlite_sequence WHERE name = 'runs'))
WHERE name = 'runs_version_8';
INSERT INTO sqlite_sequence (name, seq)
SELECT 'runs_version_8', seq FROM sqlite_sequence
WHERE name = 'runs' AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'runs_version_8');
DROP TABLE runs;
ALTER TABLE runs_version_8 RENAME TO runs;

CREATE INDEX runs_job_id ON runs (job_id, id);
CREATE INDEX runs_finished_at ON runs (finished_at);
CREATE INDEX runs_unfinished ON runs (status) WHERE status IN ('pending', 'running');
CREATE INDEX runs_by_start ON runs (started_at);
-- A scheduled instant of a job is fired once, whoever fires it.
CREATE UNIQUE INDEX runs_one_per_instant ON runs (job_id, scheduled_for)
WHERE trigger = 'schedule' AND scheduled_for IS NOT NULL;

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
        WHERE job_id = OLD.job_id AND status NOT IN ('pending', 'skipped', 'missed')
    )
    WHERE id = OLD.job_id;
END;
