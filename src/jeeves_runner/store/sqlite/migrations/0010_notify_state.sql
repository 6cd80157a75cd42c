-- Version 10: each job's streak of consecutive failures, for alerts on change (notify:
-- change). Kept in the database so a restart, or another runner on the same data, neither
-- repeats a failure alert nor misses a recovery; deleted with its job.

CREATE TABLE notify_state (
    job_id      TEXT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    failures    INTEGER NOT NULL DEFAULT 0 CHECK (failures >= 0),
    last_status TEXT,
    updated_at  TEXT
);
