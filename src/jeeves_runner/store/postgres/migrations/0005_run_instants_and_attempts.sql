-- Version 5: what a run stands for (SQLite's version 8) — the instant it was due
-- (`scheduled_for`), its try (`attempt`, `retry_of`), fires missed while nothing could run
-- them (status `missed`, collapsed per job and gap: `missed_count`, `missed_first`,
-- `missed_last`) and the node that ran it (`node_id`). One row per (job, scheduled instant)
-- of a scheduled fire, enforced by a unique index: two nodes that both believe they lead can
-- never both fire one instant.

ALTER TABLE runs DROP CONSTRAINT runs_status_check;
ALTER TABLE runs ADD CONSTRAINT runs_status_check
    CHECK (status IN ('pending', 'running', 'ok', 'error', 'timeout', 'skipped', 'cancelled',
                      'missed'));

ALTER TABLE runs ADD COLUMN scheduled_for TEXT COLLATE "C";
ALTER TABLE runs ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1 CHECK (attempt >= 1);
ALTER TABLE runs ADD COLUMN retry_of BIGINT;
ALTER TABLE runs ADD COLUMN missed_count BIGINT;
ALTER TABLE runs ADD COLUMN missed_first TEXT COLLATE "C";
ALTER TABLE runs ADD COLUMN missed_last TEXT COLLATE "C";
ALTER TABLE runs ADD COLUMN node_id TEXT;

CREATE UNIQUE INDEX runs_one_per_instant ON runs (job_id, scheduled_for)
WHERE trigger = 'schedule' AND scheduled_for IS NOT NULL;

CREATE OR REPLACE FUNCTION runs_repoint_job() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    UPDATE jobs SET last_run_id = (
        SELECT max(id) FROM runs
        WHERE job_id = OLD.job_id AND status NOT IN ('pending', 'skipped', 'missed')
    )
    WHERE id = OLD.job_id AND last_run_id = OLD.id;
    RETURN NULL;
END;
$$;
