"""Cluster mode's SQL (PostgreSQL): node heartbeats, the leader's plan, the pool of due runs
and the node's own connections for the leader lock and LISTEN.

Exactly once: a scheduled instant of a job has one row (the unique index of migration 0005);
the leader's plan moves each job's planned_through with a compare-and-set, so two nodes that
both believe they lead (a partition, a session the server has not noticed is gone yet) never
both plan one instant, nor both record one gap as missed. Claims take pool rows with
`FOR UPDATE SKIP LOCKED`, so two nodes never take one run.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Collection, Iterator, Sequence
from typing import Any

import psycopg

from jeeves_runner.cluster_model import (
    LOST_AFTER_HEARTBEATS,
    NODE_STOPPED_BEFORE_RUN,
    NODE_STOPPED_DURING_RUN,
    ClaimedRun,
    JobPlan,
    LostNode,
    NodeBeat,
    PlanOutcome,
)
from jeeves_runner.models import OpenRun, PendingRetry, RunStatus, RunTrigger
from jeeves_runner.store.errors import StoreError
from jeeves_runner.store.locations import redact_url
from jeeves_runner.store.postgres.database import Database, connect_args, one_line
from jeeves_runner.store.postgres.database import output_text as _text

CHANNEL = "jeeves_runner_cluster"
# A cluster transaction is a few statements sent back to back: one idle in the middle for this
# long belongs to a node that stopped there.
TX_IDLE_LIMIT_MS = 5000
_TX_LIMIT = f"SET LOCAL idle_in_transaction_session_timeout = {TX_IDLE_LIMIT_MS}"
# Claims of a node stopped or lost this long ago are given to the pool by any node's sweep.
STRANDED_AFTER_S = 60
_NOTIFY_RUNS = f"SELECT pg_notify('{CHANNEL}', 'runs')"
MISSED_NO_LEADER = "No node of the cluster led when this fire was due"

_OLD_BEAT = "SELECT started_at, stopped_at FROM cluster_nodes WHERE id = %s FOR UPDATE"
_BEAT = """
INSERT INTO cluster_nodes (id, host, labels, leader, heartbeat_ms, started_at, last_heartbeat)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (id) DO UPDATE SET
    host = EXCLUDED.host, labels = EXCLUDED.labels, leader = EXCLUDED.leader,
    heartbeat_ms = EXCLUDED.heartbeat_ms, started_at = EXCLUDED.started_at,
    last_heartbeat = EXCLUDED.last_heartbeat, stopped_at = NULL, stop_reason = NULL
"""
# A node that leads says so; the others stop showing as leader (one that died leading).
_NOT_LEADING = "UPDATE cluster_nodes SET leader = false WHERE leader AND id <> %s"
_ADOPT = """
UPDATE runs SET node_id = %s
WHERE id = ANY(%s::bigint[]) AND node_id IS NULL AND status IN ('pending', 'running')
"""
_LEAVE = """
UPDATE cluster_nodes SET leader = false, stopped_at = %s, stop_reason = %s WHERE id = %s
"""
_NODES = """
SELECT n.id, n.host, n.labels, n.leader, n.heartbeat_ms, n.started_at, n.last_heartbeat,
       n.stopped_at, n.stop_reason,
       (SELECT count(*) FROM runs r WHERE r.node_id = n.id AND r.status = 'running') AS running
FROM cluster_nodes n ORDER BY n.id
"""
_LOST = f"""
SELECT id, last_heartbeat FROM cluster_nodes
WHERE stopped_at IS NULL
  AND last_heartbeat::timestamptz
      < %s::timestamptz - make_interval(secs => heartbeat_ms * {LOST_AFTER_HEARTBEATS} / 1000.0)
ORDER BY id
FOR UPDATE SKIP LOCKED
"""
_CLOSE_NODE_RUNNING = """
UPDATE runs SET status = 'error', finished_at = %s, error = %s
WHERE node_id = %s AND status = 'running'
"""
_CLOSE_NODE_PENDING = """
UPDATE runs SET status = 'error', finished_at = %s, error = %s
WHERE node_id = %s AND status = 'pending'
"""
_CLOSE_NODE_PENDING_BUT_RETRIES = """
UPDATE runs SET status = 'error', finished_at = %s, error = %s
WHERE node_id = %s AND status = 'pending'
  AND NOT (trigger = 'retry' AND scheduled_for IS NOT NULL)
"""
_NODE_RETRIES = """
SELECT id, job_id, scheduled_for, attempt, retry_of FROM runs
WHERE node_id = %s AND status = 'pending' AND trigger = 'retry' AND scheduled_for IS NOT NULL
  AND retry_of IS NOT NULL
ORDER BY scheduled_for, id
"""
# The `running` mark a node writes BEFORE it starts a child: only a run still `pending` and
# still this node's (a claim a peer has not given back to the pool; or a manual run of its
# own, which takes the node's id here). A run that is `running` on this node already is
# answered too: the mark was committed but its answer lost (the connection dropped).
_START_RUNS = """
WITH marked AS (
    UPDATE runs SET status = 'running', started_at = %(at)s, node_id = %(node)s
    WHERE id = ANY(%(ids)s::bigint[]) AND status = 'pending'
      AND (node_id = %(node)s OR (node_id IS NULL AND scheduled_for IS NULL))
    RETURNING id
)
SELECT id FROM marked
UNION ALL
SELECT id FROM runs
WHERE id = ANY(%(ids)s::bigint[]) AND status = 'running' AND node_id = %(node)s
"""
# What a lost node had claimed but not started (its retries waiting for their time too):
# back to the pool. Its own manual runs that waited for a slot (no instant: they were never
# in the pool) end with it. Only `pending` rows: a run is marked `running` before its child
# starts (start_runs), so a run that may have started is never given to another node.
_RETURN_TO_POOL = """
UPDATE runs SET node_id = NULL
WHERE node_id = %s AND status = 'pending' AND scheduled_for IS NOT NULL
"""
# The same at a start after a crash, except the node's retries: it takes them up itself.
_RETURN_CLAIMS_TO_POOL = """
UPDATE runs SET node_id = NULL
WHERE node_id = %s AND status = 'pending' AND scheduled_for IS NOT NULL AND trigger <> 'retry'
"""
# Claims still held by a node that has not been up for a minute (it stopped while the
# database refused the return of its claims, or it was lost and a retry of its was written
# after the sweep by a write held up): back to the pool, so none is stranded. Not at once: a
# stopping node records what it drops in its first seconds. The node row is locked: a node
# that starts again (its heartbeat clears stopped_at under the same lock) keeps what it reads.
_RETURN_STOPPED = f"""
UPDATE runs SET node_id = NULL
WHERE status = 'pending' AND scheduled_for IS NOT NULL
  AND node_id IN (
      SELECT id FROM cluster_nodes
      WHERE stopped_at IS NOT NULL
        AND stopped_at::timestamptz < %s::timestamptz - interval '{STRANDED_AFTER_S} seconds'
      FOR UPDATE SKIP LOCKED
  )
"""
# A manual run started on a node that died before its next heartbeat adopted it.
_CLOSE_UNOWNED = """
UPDATE runs SET status = 'error', finished_at = %s,
       error = CASE status WHEN 'running' THEN %s ELSE %s END
WHERE status IN ('pending', 'running') AND node_id IS NULL AND scheduled_for IS NULL
  AND started_at < %s
"""
_MARK_LOST = """
UPDATE cluster_nodes SET leader = false, stopped_at = %s, stop_reason = %s WHERE id = %s
"""
_NODE_OPEN_RUNS = """
SELECT id, job_id, status, pid, pgid, process_started FROM runs
WHERE node_id = %s AND status IN ('pending', 'running') ORDER BY id
"""
_PLAN_STATE = "SELECT job_id, planned_through FROM cluster_plan"
_PLAN_FIRST = """
INSERT INTO cluster_plan (job_id, planned_through) SELECT id, %s FROM jobs WHERE id = %s
ON CONFLICT (job_id) DO NOTHING
"""
_PLAN_MOVE = """
UPDATE cluster_plan SET planned_through = %s WHERE job_id = %s AND planned_through = %s
"""
_PLAN_RUNS = """
INSERT INTO runs (job_id, status, started_at, trigger, scheduled_for)
SELECT %s, 'pending', t, 'schedule', t FROM unnest(%s::text[]) AS t
ON CONFLICT (job_id, scheduled_for) WHERE trigger = 'schedule' AND scheduled_for IS NOT NULL
DO NOTHING
"""
_PLAN_MISSED = """
INSERT INTO runs (job_id, status, started_at, finished_at, duration_ms, error, trigger,
                  scheduled_for, missed_count, missed_first, missed_last)
VALUES (%s, 'missed', %s, %s, 0, %s, 'schedule', %s, %s, %s, %s)
ON CONFLICT (job_id, scheduled_for) WHERE trigger = 'schedule' AND scheduled_for IS NOT NULL
DO NOTHING
"""
# A job may run on a node that carries every label of its run_on.
_CLAIM = """
UPDATE runs SET node_id = %(node)s
WHERE id IN (
    SELECT r.id FROM runs r JOIN jobs j ON j.id = r.job_id
    WHERE r.status = 'pending' AND r.node_id IS NULL AND r.scheduled_for IS NOT NULL
      AND r.scheduled_for <= %(due)s
      AND NOT EXISTS (
          SELECT 1 FROM json_array_elements_text(j.run_on::json) AS l (label)
          WHERE l.label <> ALL (%(labels)s::text[])
      )
    ORDER BY r.scheduled_for, r.id
    LIMIT %(limit)s
    FOR UPDATE OF r SKIP LOCKED
)
RETURNING id, job_id, trigger, scheduled_for, attempt, retry_of
"""
_CONFIRM = """
SELECT id FROM runs WHERE id = ANY(%s::bigint[]) AND node_id = %s AND status = 'pending'
"""
# Claims the node will not start: `pending` ones, and those it marked `running` just before
# their instant and then did not hand to its dispatcher (only the node knows none of them
# started a child, so only it returns a `running` row).
_UNCLAIM = """
UPDATE runs SET node_id = NULL, status = 'pending', started_at = scheduled_for
WHERE id = ANY(%s::bigint[]) AND node_id = %s AND status IN ('pending', 'running')
  AND finished_at IS NULL AND scheduled_for IS NOT NULL
"""
# Claims whose fire is no fire any more (the job was disabled before the instant): deleted,
# but only while still `pending` and this node's (a claim a peer gave to another node after
# this one froze is that node's to decide: the job may be enabled again by then).
_DROP_CLAIMS = """
DELETE FROM runs
WHERE id = ANY(%s::bigint[]) AND node_id = %s AND status = 'pending' AND finished_at IS NULL
"""
_SKIP_CLAIMED = """
UPDATE runs SET status = 'skipped', finished_at = %s, duration_ms = 0, error = %s,
       skipped_count = 1, last_skipped_at = %s
WHERE id = %s AND node_id = %s AND status IN ('pending', 'running') AND finished_at IS NULL
"""
# The cancel of a claim whose child has not started (it waited for its instant, a slot or its
# turn; or it was marked `running` just before its instant): in place, like a skip. Only a run
# still this node's and open, or a manual run not adopted yet (as _START_RUNS lets through;
# recorded as this node's): a claim a peer gave to another node (after this node froze) is
# that node's to run and record.
_CANCEL_CLAIMED = """
UPDATE runs SET status = 'cancelled', finished_at = %(at)s, duration_ms = 0, error = %(error)s,
       node_id = %(node)s
WHERE id = %(id)s AND status IN ('pending', 'running') AND finished_at IS NULL
  AND (node_id = %(node)s OR (node_id IS NULL AND scheduled_for IS NULL))
"""
_EXPIRE_SCHEDULED = """
UPDATE runs SET status = 'missed', finished_at = %s, duration_ms = 0, error = %s,
       missed_count = 1, missed_first = scheduled_for, missed_last = scheduled_for
WHERE status = 'pending' AND node_id IS NULL AND scheduled_for < %s AND trigger = 'schedule'
"""
_EXPIRE_MANUAL = """
UPDATE runs SET status = 'error', finished_at = %s, duration_ms = 0, error = %s
WHERE status = 'pending' AND node_id IS NULL AND scheduled_for < %s AND trigger <> 'schedule'
"""
_REQUEST = """
INSERT INTO runs (job_id, status, started_at, trigger, scheduled_for)
VALUES (%s, 'pending', %s, 'manual', %s) RETURNING id
"""


class PostgresClusterStore:
    """Implements `protocols.ClusterStore`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """A cluster transaction the server ends if its node stops in the middle of it (a
        frozen process, a machine cut off): its row locks (the plan's compare-and-set, a
        node row) would otherwise hold up every peer until the node came back."""
        with self._db.transaction() as conn:
            conn.execute(_TX_LIMIT)
            yield conn

    def beat(self, beat: NodeBeat) -> bool:
        """... and True when a peer had declared this very start of the node lost (its
        runs were closed, its claims returned): it must not start what it had claimed."""
        with self._transaction() as conn:
            old = conn.execute(_OLD_BEAT, (beat.node_id,)).fetchone()
            conn.execute(
                _BEAT,
                (
                    beat.node_id,
                    beat.host,
                    json.dumps(list(beat.labels)),
                    beat.leader,
                    beat.heartbeat_ms,
                    beat.started_at,
                    beat.at,
                ),
            )
            if beat.leader:
                conn.execute(_NOT_LEADING, (beat.node_id,))
            if beat.run_ids:
                conn.execute(_ADOPT, (beat.node_id, list(beat.run_ids)))
        return old is not None and old[0] == beat.started_at and old[1] is not None

    def leave(self, node_id: str, at: str, reason: str) -> None:
        with self._db.connection() as conn:
            conn.execute(_LEAVE, (at, reason, node_id))

    def list_nodes(self) -> list[dict[str, Any]]:
        with self._db.connection() as conn:
            cur = conn.execute(_NODES)
            assert cur.description is not None
            names = [d.name for d in cur.description]
            rows = [dict(zip(names, row, strict=True)) for row in cur]
        for row in rows:
            row["labels"] = json.loads(row["labels"])
            row["running"] = int(row["running"])
        return rows

    def sweep_lost(self, now: str) -> list[LostNode]:
        lost: list[LostNode] = []
        with self._transaction() as conn:
            for node_id, last in conn.execute(_LOST, (now,)).fetchall():
                during = NODE_STOPPED_DURING_RUN.format(node=node_id)
                before = NODE_STOPPED_BEFORE_RUN.format(node=node_id)
                closed = conn.execute(_CLOSE_NODE_RUNNING, (now, during, node_id)).rowcount
                returned = conn.execute(_RETURN_TO_POOL, (node_id,)).rowcount
                closed += conn.execute(_CLOSE_NODE_PENDING, (now, before, node_id)).rowcount
                reason = f"lost: no heartbeat since {last}"
                conn.execute(_MARK_LOST, (now, reason, node_id))
                lost.append(LostNode(node_id, closed, returned))
            stranded = conn.execute(_RETURN_STOPPED, (now,)).rowcount
            if lost or stranded:
                conn.execute(_NOTIFY_RUNS)
        return lost

    def close_unowned(self, now: str, before: str) -> int:
        """Manual runs nobody adopted (their node died within a heartbeat of starting
        them) whose start is older than `before`: closed."""
        with self._db.connection() as conn:
            return conn.execute(
                _CLOSE_UNOWNED,
                (
                    now,
                    "The node that ran it stopped during this run",
                    "The node that took it stopped before this run started",
                    before,
                ),
            ).rowcount

    def close_node_runs(
        self, node_id: str, at: str, during: str, before: str, *, keep_retries: bool = False
    ) -> int:
        back = _RETURN_CLAIMS_TO_POOL if keep_retries else _RETURN_TO_POOL
        close_pending = _CLOSE_NODE_PENDING_BUT_RETRIES if keep_retries else _CLOSE_NODE_PENDING
        with self._transaction() as conn:
            closed = conn.execute(_CLOSE_NODE_RUNNING, (at, _text(during), node_id)).rowcount
            if conn.execute(back, (node_id,)).rowcount:
                conn.execute(_NOTIFY_RUNS)
            return closed + conn.execute(close_pending, (at, _text(before), node_id)).rowcount

    def node_retries(self, node_id: str) -> list[PendingRetry]:
        with self._db.connection() as conn:
            rows = conn.execute(_NODE_RETRIES, (node_id,)).fetchall()
        return [PendingRetry(int(r[0]), str(r[1]), str(r[2]), int(r[3]), int(r[4])) for r in rows]

    def start_runs(self, node_id: str, run_ids: Collection[int], at: str) -> set[int]:
        if not run_ids:
            return set()
        params = {"ids": list(run_ids), "node": node_id, "at": at}
        with self._db.connection() as conn:
            return {int(r[0]) for r in conn.execute(_START_RUNS, params)}

    def depose_stale_leader(self, now: str, idle_s: float) -> int | None:
        with self._db.connection() as conn:
            row = conn.execute(_DEPOSE, {"now": now, "idle": idle_s}).fetchone()
        return int(row[0]) if row is not None else None

    def node_open_runs(self, node_id: str) -> list[OpenRun]:
        with self._db.connection() as conn:
            rows = conn.execute(_NODE_OPEN_RUNS, (node_id,)).fetchall()
        return [
            OpenRun(
                id=int(row[0]),
                job_id=str(row[1]),
                status=RunStatus(row[2]),
                pid=row[3],
                pgid=row[4],
                process_started=row[5],
            )
            for row in rows
        ]

    def plan_state(self) -> dict[str, str]:
        with self._db.connection() as conn:
            return {str(job): str(at) for job, at in conn.execute(_PLAN_STATE)}

    def write_plans(self, plans: Sequence[JobPlan], at: str) -> PlanOutcome:
        outcome = PlanOutcome()
        if not plans:
            return outcome
        with self._transaction() as conn:
            for plan in plans:
                if plan.previous is None:
                    moved = conn.execute(_PLAN_FIRST, (plan.through, plan.job_id)).rowcount
                else:
                    moved = conn.execute(
                        _PLAN_MOVE, (plan.through, plan.job_id, plan.previous)
                    ).rowcount
                if not moved:
                    outcome.refused.append(plan.job_id)
                    continue
                if plan.run_at:
                    outcome.inserted += conn.execute(
                        _PLAN_RUNS, (plan.job_id, list(plan.run_at))
                    ).rowcount
                gap = plan.missed
                if gap is not None:
                    outcome.missed += conn.execute(
                        _PLAN_MISSED,
                        (
                            plan.job_id,
                            gap.first,
                            at,
                            MISSED_NO_LEADER,
                            gap.first,
                            gap.count,
                            gap.first,
                            gap.last,
                        ),
                    ).rowcount
            if outcome.inserted:
                conn.execute(_NOTIFY_RUNS)
        return outcome

    def claim_runs(
        self, node_id: str, labels: Collection[str], due_before: str, limit: int
    ) -> list[ClaimedRun]:
        if limit <= 0:
            return []
        params = {"node": node_id, "due": due_before, "labels": list(labels), "limit": limit}
        with self._db.connection() as conn:
            rows = conn.execute(_CLAIM, params).fetchall()
        claimed = [
            ClaimedRun(int(r[0]), str(r[1]), RunTrigger(r[2]), r[3], int(r[4]), r[5]) for r in rows
        ]
        return sorted(claimed, key=lambda c: (c.scheduled_for or "", c.run_id))

    def confirm_claims(self, node_id: str, run_ids: Collection[int]) -> set[int]:
        """Which of these runs are still this node's to start (a peer that declared the
        node lost has given them to others)."""
        with self._db.connection() as conn:
            return {int(r[0]) for r in conn.execute(_CONFIRM, (list(run_ids), node_id))}

    def unclaim(self, node_id: str, run_ids: Collection[int]) -> int:
        if not run_ids:
            return 0
        with self._transaction() as conn:
            count = conn.execute(_UNCLAIM, (list(run_ids), node_id)).rowcount
            if count:
                conn.execute(_NOTIFY_RUNS)
        return count

    def drop_claims(self, node_id: str, run_ids: Collection[int]) -> int:
        if not run_ids:
            return 0
        with self._db.connection() as conn:
            return conn.execute(_DROP_CLAIMS, (list(run_ids), node_id)).rowcount

    def skip_claimed(self, run_id: int, at: str, reason: str, node_id: str) -> bool:
        with self._db.connection() as conn:
            params = (at, _text(reason), at, run_id, node_id)
            return conn.execute(_SKIP_CLAIMED, params).rowcount == 1

    def cancel_claimed(self, run_id: int, at: str, reason: str, node_id: str) -> bool:
        with self._db.connection() as conn:
            params = {"at": at, "error": _text(reason), "node": node_id, "id": run_id}
            return conn.execute(_CANCEL_CLAIMED, params).rowcount == 1

    def expire_pool(self, before: str, at: str, reason: str) -> int:
        with self._transaction() as conn:
            count = conn.execute(_EXPIRE_SCHEDULED, (at, _text(reason), before)).rowcount
            return count + conn.execute(_EXPIRE_MANUAL, (at, _text(reason), before)).rowcount

    def request_run(self, job_id: str, at: str) -> int:
        with self._transaction() as conn:
            row = conn.execute(_REQUEST, (job_id, at, at)).fetchone()
            conn.execute(_NOTIFY_RUNS)
        assert row is not None
        return int(row[0])


# The leader lock: jeeves-runner's cluster class id and the same per-schema key as the
# runner lock (runner_lock.py), so clusters on other schemas lead on their own.
_LEADER_CLASS = 0x4A53
_KEY = "hashtext(current_database() || '.' || current_schema())"
_TRY_LEAD = f"SELECT pg_try_advisory_lock({_LEADER_CLASS}, {_KEY})"
_UNLOCK = f"SELECT pg_advisory_unlock({_LEADER_CLASS}, {_KEY})"
# A leader that froze (SIGSTOP, a VM paused) or was cut off keeps its session, and the lock
# with it, until the server notices (TCP keepalives: many seconds; never, for a frozen process
# on a live machine). Its session is ended by a peer when both say it is gone: the session
# holding the lock has run nothing for `idle` seconds (a live leader asks the lock every
# POLL_S; server clock), and no node that is up has written a heartbeat as leader within 3
# of its heartbeats. pg_locks shows the two-key lock as classid = key 1, objid = key 2 (as
# unsigned), objsubid = 2.
_DEPOSE = f"""
WITH stale AS MATERIALIZED (
    SELECT h.pid FROM (
        SELECT l.pid FROM pg_locks l
        WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND l.classid = {_LEADER_CLASS}::oid
          AND l.objid = (({_KEY})::bigint & 4294967295)::oid
    ) h
    JOIN pg_stat_activity a ON a.pid = h.pid
    WHERE h.pid <> pg_backend_pid()
      AND a.state = 'idle'
      AND a.state_change < now() - make_interval(secs => %(idle)s)
      AND NOT EXISTS (
          SELECT 1 FROM cluster_nodes n
          WHERE n.leader AND n.stopped_at IS NULL
            AND n.last_heartbeat::timestamptz >= %(now)s::timestamptz
                - make_interval(secs => n.heartbeat_ms * {LOST_AFTER_HEARTBEATS} / 1000.0)
      )
)
SELECT pid FROM stale WHERE pg_terminate_backend(pid)
"""
# The lock connection's TCP keepalives, both ends: a leader whose machine is cut off loses
# its session (and the lock) within about idle + interval x count seconds, and a leader
# whose server went away finds out as fast.
KEEPALIVE_IDLE_S = 5
KEEPALIVE_INTERVAL_S = 2
KEEPALIVE_COUNT = 3


class PostgresClusterLink:
    """Implements `protocols.ClusterLink`: two connections of the node's own, outside the
    pool. Each is used by one thread at a time (the coordinator's leader and listen loops)."""

    def __init__(self, url: str, node_id: str) -> None:
        self.url = url
        self.location = redact_url(url)
        self.node_id = node_id
        self._lock_conn: psycopg.Connection[Any] | None = None
        self._listen_conn: psycopg.Connection[Any] | None = None
        self._leading = False
        self.term = 0  # how many times this link took the lock

    def _connect(self, role: str) -> psycopg.Connection[Any]:
        params = connect_args(self.url)
        params["application_name"] = (
            f"jeeves-runner node {self.node_id} {role} {socket.gethostname()} pid {os.getpid()}"
        )[:63]
        if role == "lead":
            params.setdefault("keepalives", 1)
            params.setdefault("keepalives_idle", KEEPALIVE_IDLE_S)
            params.setdefault("keepalives_interval", KEEPALIVE_INTERVAL_S)
            params.setdefault("keepalives_count", KEEPALIVE_COUNT)
        try:
            conn = psycopg.connect(autocommit=True, **params)
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot connect to PostgreSQL at {self.location}: {one_line(exc)}"
            ) from None
        if role == "lead":
            # The server's end (ignored on a Unix socket).
            try:
                conn.execute(
                    f"SET tcp_keepalives_idle = {KEEPALIVE_IDLE_S};"
                    f" SET tcp_keepalives_interval = {KEEPALIVE_INTERVAL_S};"
                    f" SET tcp_keepalives_count = {KEEPALIVE_COUNT}"
                )
            except psycopg.Error as exc:
                conn.close()
                raise StoreError(f"PostgreSQL at {self.location}: {one_line(exc)}") from None
        return conn

    def still_leads(self) -> bool:
        conn = self._lock_conn
        if conn is None or not self._leading:
            return False
        try:
            conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            # The session ended, and leadership with it (another node may lead now).
            self._drop_lock_conn()
            return False

    def try_lead(self) -> bool:
        if self._leading:
            return self.still_leads()
        conn = self._lock_conn
        if conn is None:
            conn = self._lock_conn = self._connect("lead")
        try:
            row = conn.execute(_TRY_LEAD).fetchone()
        except psycopg.Error as exc:
            self._drop_lock_conn()
            raise StoreError(f"PostgreSQL at {self.location}: {one_line(exc)}") from None
        self._leading = bool(row and row[0])
        if self._leading:
            self.term += 1
        return self._leading

    def _drop_lock_conn(self) -> None:
        self._leading = False
        if self._lock_conn is not None:
            self._lock_conn.close()
            self._lock_conn = None

    def resign(self) -> None:
        # Unlocked before the close: the server ends a closed session a moment later, and
        # the next leader should not wait for that.
        if self._lock_conn is not None and self._leading:
            with contextlib.suppress(psycopg.Error):
                self._lock_conn.execute(_UNLOCK)
        self._drop_lock_conn()

    def wait_notice(self, timeout_s: float) -> set[str]:
        conn = self._listen_conn
        if conn is None:
            conn = self._connect("listen")
            try:
                conn.execute(f"LISTEN {CHANNEL}")
            except psycopg.Error as exc:
                conn.close()
                raise StoreError(f"PostgreSQL at {self.location}: {one_line(exc)}") from None
            self._listen_conn = conn
            # What was sent while nobody listened is unknown: the caller looks at once.
            return {"runs", "jobs"}
        seen: set[str] = set()
        try:
            for notice in conn.notifies(timeout=timeout_s, stop_after=1):
                seen.add(notice.payload)
        except psycopg.Error:
            conn.close()
            self._listen_conn = None
            return {"runs", "jobs"}
        return seen

    def close(self) -> None:
        self._drop_lock_conn()
        if self._listen_conn is not None:
            self._listen_conn.close()
            self._listen_conn = None
