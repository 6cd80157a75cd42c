-- Version 15: the runs change log (version 14) misses two writes done by hand, each of which
-- left a job's runs page stale (a run shown that was gone or moved, one missing):
-- - a row deleted by REPLACE conflict resolution (`INSERT OR REPLACE`, `UPDATE OR REPLACE`)
--   fires no delete trigger while recursive_triggers is off (SQLite's default);
-- - an update of `id` was not one of the columns logged.
-- The runner itself writes neither; plain SQL from a shell or a job script may.

DROP TRIGGER runs_changes_on_update;

-- Every run a list shows moves with its id too.
CREATE TRIGGER runs_changes_on_update AFTER UPDATE OF
    id, job_id, started_at, finished_at, status, exit_code, stdout, stderr, duration_ms, error,
    trigger, tokens, result_meta, skipped_count, last_skipped_at
ON runs
BEGIN
    INSERT INTO runs_changes (job_id, run_id)
    SELECT OLD.job_id, OLD.id WHERE OLD.job_id IS NOT NEW.job_id OR OLD.id IS NOT NEW.id;
    INSERT INTO runs_changes (job_id, run_id) VALUES (NEW.job_id, NEW.id);
END;

-- The rows a REPLACE may delete: the one with the new row's id, and the one with its
-- scheduled instant (the unique index runs_one_per_instant). Logged before the insert; when
-- nothing is replaced after all (no conflict, DO NOTHING, IGNORE), the run is only read
-- again, as it is. An id SQLite picks itself is -1 here: no row has it.
CREATE TRIGGER runs_changes_before_insert BEFORE INSERT ON runs
BEGIN
    INSERT INTO runs_changes (job_id, run_id)
    SELECT job_id, id FROM runs WHERE id = NEW.id;
    INSERT INTO runs_changes (job_id, run_id)
    SELECT job_id, id FROM runs
    WHERE NEW.trigger = 'schedule' AND NEW.scheduled_for IS NOT NULL
      AND job_id = NEW.job_id AND scheduled_for = NEW.scheduled_for AND trigger = 'schedule';
END;

-- An update that takes another run's id or scheduled instant with OR REPLACE deletes that
-- run without a trigger too.
CREATE TRIGGER runs_changes_before_update BEFORE UPDATE OF id, job_id, scheduled_for, trigger
ON runs
BEGIN
    INSERT INTO runs_changes (job_id, run_id)
    SELECT job_id, id FROM runs WHERE id = NEW.id AND NEW.id IS NOT OLD.id;
    INSERT INTO runs_changes (job_id, run_id)
    SELECT job_id, id FROM runs
    WHERE NEW.trigger = 'schedule' AND NEW.scheduled_for IS NOT NULL
      AND job_id = NEW.job_id AND scheduled_for = NEW.scheduled_for AND trigger = 'schedule'
      AND id IS NOT OLD.id;
END;
