-- Version 12: issue 13's policies of a job (retries, catch-up, alerts), the last scheduled
-- instant each job was fired for, and pending retries found by their due time.

ALTER TABLE jobs ADD COLUMN retries INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN retry_delay_ms INTEGER NOT NULL DEFAULT 10000;
ALTER TABLE jobs ADD COLUMN retry_backoff REAL NOT NULL DEFAULT 2.0;
ALTER TABLE jobs ADD COLUMN retry_max_delay_ms INTEGER NOT NULL DEFAULT 600000;
-- JSON array of "error", "timeout" and exit codes as decimal strings.
ALTER TABLE jobs ADD COLUMN retry_on TEXT NOT NULL DEFAULT '["error", "timeout"]';
ALTER TABLE jobs ADD COLUMN catchup TEXT NOT NULL DEFAULT 'skip';
ALTER TABLE jobs ADD COLUMN catchup_max INTEGER NOT NULL DEFAULT 10;
ALTER TABLE jobs ADD COLUMN catchup_window_ms INTEGER NOT NULL DEFAULT 86400000;
ALTER TABLE jobs ADD COLUMN notify TEXT NOT NULL DEFAULT 'change';
ALTER TABLE jobs ADD COLUMN notify_repeat INTEGER NOT NULL DEFAULT 10;
ALTER TABLE jobs ADD COLUMN late_after_ms INTEGER NOT NULL DEFAULT 60000;
ALTER TABLE jobs ADD COLUMN max_duration_ms INTEGER;

-- The last scheduled instant each job was fired (or recorded missed) for: what a start, a
-- resume from suspend or a wall clock stepped forward compares with to find missed fires.
CREATE TABLE job_fire_marks (
    job_id        TEXT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    last_instant  TEXT NOT NULL
);

-- Retries waiting for their time, by due time (a start picks them up).
CREATE INDEX runs_pending_retries ON runs (scheduled_for)
WHERE status = 'pending' AND trigger = 'retry';
