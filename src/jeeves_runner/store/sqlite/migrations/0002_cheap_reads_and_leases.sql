-- Version 2: cheap "last run" reads, collapsed skip rows, fast stats, queue leases.

-- Each job points at its latest run that actually executed, so listing jobs is one
-- primary-key lookup per job whatever the size of the history.
ALTER TABLE jobs ADD COLUMN last_run_id INTEGER;
UPDATE jobs SET last_run_id = (
    SELECT max(r.id) FROM runs r WHERE r.job_id = jobs.id AND r.status <> 'skipped'
);

-- Skips during one in-flight run collapse into one row that counts them.
ALTER TABLE runs ADD COLUMN skipped_count INTEGER;
ALTER TABLE runs ADD COLUMN last_skipped_at TEXT;

CREATE INDEX runs_finished_at ON runs (finished_at);
CREATE INDEX runs_unfinished ON runs (status) WHERE status IN ('pending', 'running');

-- A claim is a lease; an item whose consumer died returns to pending after it.
ALTER TABLE queues ADD COLUMN lease_ms INTEGER NOT NULL DEFAULT 300000;
ALTER TABLE queue_items ADD COLUMN lease_expires_at TEXT;
CREATE INDEX queue_items_lease ON queue_items (status, lease_expires_at)
    WHERE status = 'processing';
CREATE INDEX state_expires_at ON state (expires_at) WHERE expires_at IS NOT NULL;
