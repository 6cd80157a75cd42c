-- Version 9: cluster mode (README, "Cluster mode"). Several runners on one schema: the nodes
-- that take part, how far the leader has planned each job, and the pool of due runs.

-- One row per node id: written by its heartbeat; `stopped_at` set when it stopped cleanly or a
-- peer found it silent for 3 heartbeats (and closed its runs).
CREATE TABLE cluster_nodes (
    id             TEXT COLLATE "C" PRIMARY KEY,
    host           TEXT NOT NULL,
    labels         TEXT NOT NULL DEFAULT '[]',
    leader         BOOLEAN NOT NULL DEFAULT false,
    heartbeat_ms   INTEGER NOT NULL CHECK (heartbeat_ms > 0),
    started_at     TEXT COLLATE "C" NOT NULL,
    last_heartbeat TEXT COLLATE "C" NOT NULL,
    stopped_at     TEXT COLLATE "C",
    stop_reason    TEXT
);

-- The last scheduled instant the leader inserted (or recorded as missed) per job: a new leader
-- plans from here, so a fire due while no node led is never silently gone. Written with a
-- compare-and-set, so two nodes that both believe they lead cannot both plan one instant.
CREATE TABLE cluster_plan (
    job_id          TEXT COLLATE "C" PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    planned_through TEXT COLLATE "C" NOT NULL
);

-- The pool: due runs no node has claimed yet (claims take the oldest first).
CREATE INDEX runs_pool ON runs (scheduled_for, id) WHERE status = 'pending' AND node_id IS NULL;
-- A node's own runs (what a peer closes when the node is lost).
CREATE INDEX runs_open_by_node ON runs (node_id) WHERE status IN ('pending', 'running');

-- A disabled job's fires are not missed: its plan starts afresh when it is enabled again.
CREATE FUNCTION cluster_plan_forget() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    DELETE FROM cluster_plan WHERE job_id = NEW.id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_disabled_forget_plan AFTER UPDATE OF enabled ON jobs
FOR EACH ROW WHEN (NEW.enabled = 0 AND OLD.enabled <> 0)
EXECUTE FUNCTION cluster_plan_forget();

-- Every node LISTENs: a job change (from any node, the CLI or a job file) wakes the leader at
-- once instead of at its next poll. Not on `last_run_id`, which every run start moves.
CREATE FUNCTION cluster_jobs_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('jeeves_runner_cluster', 'jobs');
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_notify_cluster
AFTER INSERT OR DELETE OR UPDATE OF schedule, timezone, enabled, run_on, updated_at ON jobs
FOR EACH STATEMENT EXECUTE FUNCTION cluster_jobs_changed();
