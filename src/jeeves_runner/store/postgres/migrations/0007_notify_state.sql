-- Version 7: each job's streak of consecutive failures, for alerts on change (SQLite's
-- version 10). Deleted with its job.

CREATE TABLE notify_state (
    job_id      TEXT COLLATE "C" PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    failures    BIGINT NOT NULL DEFAULT 0 CHECK (failures >= 0),
    last_status TEXT,
    updated_at  TEXT COLLATE "C"
);
