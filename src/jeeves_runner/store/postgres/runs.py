"""Run history (PostgreSQL): one row per run from the moment it starts to its end.

`jobs.last_run_id` is kept by triggers (migration 0001), as in the SQLite backend."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import orjson
import psycopg

from jeeves_runner.models import (
    MissedFires,
    OpenRun,
    PendingRetry,
    RunLogWrite,
    RunResult,
    RunStatus,
    RunTrigger,
)
from jeeves_runner.store.postgres.database import Database
from jeeves_runner.store.postgres.database import output_text as _text
from jeeves_runner.store.postgres.logs import SEQ_END, write_log
from jeeves_runner.store.protocols import RUN_DETAIL_COLUMNS, output_as_text
from jeeves_runner.store.runs_list import RunsListView, runs_body

_CREATE = """
INSERT INTO runs (job_id, status, started_at, trigger, scheduled_for, attempt, retry_of)
VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id
"""
# A scheduled instant is fired once (the unique index runs_one_per_instant): a row that is
# already there means someone else fired it, and nothing is inserted for that job.
_CREATE_SCHEDULED = """
INSERT INTO runs (job_id, status, started_at, trigger, scheduled_for)
SELECT job_id, 'pending', %s, %s, %s FROM unnest(%s::text[]) WITH ORDINALITY AS j (job_id, n)
ORDER BY n
ON CONFLICT DO NOTHING
RETURNING id, job_id
"""
# The retry of a run that just failed, written in the commit that records the failure. It
# stays with the node that ran the failed try (cluster mode: no other node claims it; if that
# node is lost, its claims go back to the pool).
_CREATE_RETRY = """
INSERT INTO runs (job_id, status, started_at, trigger, scheduled_for, attempt, retry_of, node_id)
SELECT job_id, 'pending', %s, 'retry', %s, %s, %s, node_id FROM runs WHERE id = %s
RETURNING id
"""
_PENDING_RETRIES = """
SELECT id, job_id, scheduled_for, attempt, retry_of FROM runs
WHERE status = 'pending' AND trigger = 'retry' AND scheduled_for IS NOT NULL
ORDER BY scheduled_for
"""
# Moves forward only: a mark written late (a fire's rows held up) never takes one back.
_MARK_FIRED = """
INSERT INTO job_fire_marks (job_id, last_instant)
SELECT id, %s FROM jobs WHERE id = ANY(%s::text[])
ON CONFLICT (job_id) DO UPDATE
SET last_instant = GREATEST(job_fire_marks.last_instant, excluded.last_instant)
"""
_FIRE_MARKS = "SELECT job_id, last_instant FROM job_fire_marks"
_INSERT_MISSED = """
INSERT INTO runs (job_id, status, started_at, finished_at, duration_ms, error, trigger,
                  missed_count, missed_first, missed_last)
SELECT id, 'missed', %s, %s, 0, %s, 'schedule', %s, %s, %s FROM jobs WHERE id = %s
RETURNING id
"""
_CREATE_MANY = """
INSERT INTO runs (job_id, status, started_at, trigger)
SELECT job_id, 'pending', %s, %s FROM unnest(%s::text[]) WITH ORDINALITY AS j (job_id, n)
ORDER BY n
RETURNING id
"""
# Only an open run is marked: a mark held up (a database that refused) and written after the
# run's end must not reopen it. A run already `running` (cluster mode marks it before its
# child starts) gets its child's real start.
_MARK_RUNNING = """
UPDATE runs SET status = 'running', started_at = %s
WHERE id = %s AND status IN ('pending', 'running')
"""
_MARK_MANY_RUNNING = """
UPDATE runs SET status = 'running', started_at = m.at
FROM unnest(%s::bigint[], %s::text[]) AS m (id, at)
WHERE runs.id = m.id AND runs.status IN ('pending', 'running')
"""
_SET_MANY_PROCESSES = """
UPDATE runs SET pid = p.pid, pgid = p.pgid, process_started = p.started
FROM unnest(%s::bigint[], %s::integer[], %s::integer[], %s::bigint[]) AS p (id, pid, pgid, started)
WHERE runs.id = p.id
"""
_FINISH = """
UPDATE runs SET status = %s, finished_at = %s, duration_ms = %s, exit_code = %s, stdout = %s,
       stderr = %s, error = %s, tokens = %s, result_meta = %s
WHERE id = %s
"""
_INSERT_SKIP = """
INSERT INTO runs (job_id, status, started_at, finished_at, duration_ms, error, trigger,
                  skipped_count, last_skipped_at)
VALUES (%s, 'skipped', %s, %s, 0, %s, %s, %s, %s)
RETURNING id
"""
_DISCARD_PENDING = "DELETE FROM runs WHERE id = %s AND status = 'pending'"
_BUMP_SKIP = """
UPDATE runs SET skipped_count = skipped_count + %s, last_skipped_at = %s, finished_at = %s,
       error = %s
WHERE id = %s AND status = 'skipped'
"""
_RUN_COLUMNS = """
id, job_id, started_at, finished_at, status, exit_code, stdout, stderr, duration_ms,
error, trigger, tokens, result_meta, skipped_count, last_skipped_at
"""
# `id < %s` pages backwards (SEQ_END: from the newest); statuses are chosen with an array,
# empty for any, so one statement serves every choice.
_CHOSEN = "(cardinality(%s::text[]) = 0 OR status = ANY(%s::text[]))"
_LIST = f"""
SELECT {_RUN_COLUMNS} FROM runs WHERE job_id = %s AND id < %s AND {_CHOSEN}
ORDER BY id DESC LIMIT %s
"""
_LIST_ALL = f"""
SELECT {_RUN_COLUMNS} FROM runs WHERE id < %s AND {_CHOSEN}
ORDER BY id DESC LIMIT %s
"""
_LIST_SINCE = f"""
SELECT {_RUN_COLUMNS} FROM runs WHERE started_at >= %s AND id < %s AND {_CHOSEN}
ORDER BY id DESC LIMIT %s
"""
# Uses the partial index runs_unfinished.
_COUNT_UNFINISHED = """
SELECT count(*) FROM runs WHERE status IN ('pending', 'running') AND job_id = %s
"""
_GET = f"SELECT {_RUN_COLUMNS}, {RUN_DETAIL_COLUMNS} FROM runs WHERE id = %s"
# A first run and its retries: the row by its id, the retries by the runs_retries index.
_TRIES = """
SELECT id, attempt, status FROM runs WHERE id = %(first)s AND job_id = %(job)s
UNION ALL
SELECT id, attempt, status FROM runs WHERE retry_of = %(first)s AND job_id = %(job)s
ORDER BY id LIMIT %(limit)s
"""
# A retry waiting for its time is not an orphan: the next start runs it at its time.
_CLOSE_ORPHANS = """
UPDATE runs SET status = 'error', finished_at = %s,
       error = CASE status WHEN 'pending' THEN %s ELSE %s END
WHERE status IN ('pending', 'running')
  AND NOT (status = 'pending' AND trigger = 'retry' AND scheduled_for IS NOT NULL)
"""
_SET_PROCESS = "UPDATE runs SET pid = %s, pgid = %s, process_started = %s WHERE id = %s"
_OPEN_RUNS = """
SELECT id, job_id, status, pid, pgid, process_started FROM runs
WHERE status IN ('pending', 'running') ORDER BY id
"""
_CLOSE_RUN = """
UPDATE runs SET status = 'error', finished_at = %s, error = %s
WHERE id = %s AND status IN ('pending', 'running')
"""
_FINISHED_SINCE = "SELECT status, count(*) FROM runs WHERE finished_at >= %s GROUP BY status"
_PRUNE = """
DELETE FROM runs WHERE id IN (
    SELECT r.id FROM runs r
    WHERE r.finished_at < %s AND r.status NOT IN ('running', 'pending')
      -- A job's latest real run is kept whatever its age: GET /jobs shows it, and null
      -- there means "never ran".
      AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.last_run_id = r.id)
    LIMIT %s
)
"""


_RECENT = """
SELECT status, duration_ms FROM runs
WHERE job_id = %s AND status NOT IN ('pending', 'running', 'skipped', 'missed')
ORDER BY id DESC LIMIT %s
"""
_PAGE_RUNS = """
SELECT id, job_id, started_at, finished_at, status, exit_code, duration_ms, error, trigger,
       tokens, skipped_count, last_skipped_at
FROM runs
WHERE job_id = %s AND (cardinality(%s::text[]) = 0 OR status = ANY(%s::text[]))
  AND id < %s
ORDER BY id DESC LIMIT %s
"""


def _dicts(cur: psycopg.Cursor[Any]) -> list[dict[str, Any]]:
    assert cur.description is not None
    names = [d.name for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur]


def _id(cur: psycopg.Cursor[Any]) -> int:
    row = cur.fetchone()
    assert row is not None
    return int(row[0])


class PostgresRunStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def create_run(
        self,
        job_id: str,
        trigger: RunTrigger,
        status: RunStatus,
        at: str,
        *,
        scheduled_for: str | None = None,
        attempt: int = 1,
        retry_of: int | None = None,
    ) -> int:
        """A new run row. `pending` rows are made ahead of the fire so the child can be
        given its JR_RUN_ID without a database write on the critical path."""
        params = (job_id, status.value, at, trigger.value, scheduled_for, attempt, retry_of)
        with self._db.connection() as conn:
            return _id(conn.execute(_CREATE, params))

    def create_pending_runs(
        self,
        job_ids: list[str],
        trigger: RunTrigger,
        at: str,
        *,
        scheduled_for: str | None = None,
        marked: Collection[str] = (),
    ) -> list[int | None]:
        """Pending rows for several jobs in one commit (a fire of many jobs at one instant).
        With `scheduled_for`, the rows stand for that instant, and a job whose instant
        already has its row (someone else fired it) gets None; the jobs in `marked` have
        that instant stored as their last fired one, in the same commit."""
        if scheduled_for is None:
            if not job_ids:
                return []
            with self._db.connection() as conn:
                # One statement; ids are handed out in row order, so they pair with job_ids.
                rows = conn.execute(_CREATE_MANY, (at, trigger.value, job_ids)).fetchall()
            ids: list[int | None] = [*sorted(int(row[0]) for row in rows)]
            return ids
        if not job_ids and not marked:
            return []
        with self._db.transaction() as conn:
            made: dict[str, int] = {}
            if job_ids:
                params = (at, trigger.value, scheduled_for, job_ids)
                made = {str(r[1]): int(r[0]) for r in conn.execute(_CREATE_SCHEDULED, params)}
            if marked:
                conn.execute(_MARK_FIRED, (scheduled_for, list(marked)))
        return [made.get(job_id) for job_id in job_ids]

    def fire_marks(self) -> dict[str, str]:
        """Each job's last scheduled instant that was fired or recorded missed."""
        with self._db.connection() as conn:
            return {str(r[0]): str(r[1]) for r in conn.execute(_FIRE_MARKS)}

    def record_missed(self, gaps: Sequence[MissedFires], at: str) -> list[int | None]:
        """One `missed` row per gap, and each job's last fired instant moved to the gap's
        last, in one commit. None for a job that no longer exists."""
        ids: list[int | None] = []
        with self._db.transaction() as conn:
            for gap in gaps:
                row = conn.execute(
                    _INSERT_MISSED,
                    (gap.first, at, _text(gap.reason), gap.count, gap.first, gap.last, gap.job_id),
                ).fetchone()
                ids.append(int(row[0]) if row is not None else None)
                conn.execute(_MARK_FIRED, (gap.last, [gap.job_id]))
        return ids

    def pending_retries(self) -> list[PendingRetry]:
        """Every retry waiting for its time, earliest due first."""
        with self._db.connection() as conn:
            rows = conn.execute(_PENDING_RETRIES).fetchall()
        return [PendingRetry(int(r[0]), str(r[1]), str(r[2]), int(r[3]), int(r[4])) for r in rows]

    def mark_running(
        self,
        started: list[tuple[int, str, str]],
        processes: Sequence[tuple[int, int, int, int | None]] = (),
    ) -> None:
        """(run id, job id, started_at) for runs whose children have started, and (run id,
        pid, pgid, process start ticks) of their processes (as `set_process`); one commit."""
        if not started and not processes:
            return
        # One statement per list; both in one transaction when there are both.
        with self._db.transaction() if started and processes else self._db.connection() as conn:
            if started:
                ids = [run_id for run_id, _job, _at in started]
                instants = [at for _id, _job, at in started]
                conn.execute(_MARK_MANY_RUNNING, (ids, instants))
            if processes:
                columns = [list(column) for column in zip(*processes, strict=True)]
                conn.execute(_SET_MANY_PROCESSES, columns)

    def discard_pending(self, run_id: int) -> None:
        """Drop a row made ahead of a fire that, in the end, did not run."""
        with self._db.connection() as conn:
            conn.execute(_DISCARD_PENDING, (run_id,))

    def finish_run(
        self,
        run_id: int,
        result: RunResult,
        finished_at: str,
        started: tuple[str, str] | None = None,
        log: RunLogWrite | None = None,
        retry: tuple[str, int, int] | None = None,
    ) -> int | None:
        """Record a run's end. `started` (job id, started_at) also marks it as having run,
        in the same commit, for a run that ended before its `running` mark was written;
        `log` is the rest of its log, written in that commit too. `retry` (due instant,
        attempt, first run's id): the run's retry as a `pending` row, in that commit too;
        its id is returned."""
        # One statement is its own transaction; a run that also needs its start, the rest
        # of its log or its retry written takes them all in one.
        alone = started is None and log is None and retry is None
        retry_id: int | None = None
        with self._db.connection() if alone else self._db.transaction() as conn:
            if log is not None:
                write_log(conn, log)
            if started is not None:
                conn.execute(_MARK_RUNNING, (started[1], run_id))
            conn.execute(
                _FINISH,
                (
                    result.status.value,
                    finished_at,
                    result.duration_ms,
                    result.exit_code,
                    _text(result.stdout),
                    _text(result.stderr),
                    _text(result.error),
                    result.tokens,
                    _text(result.result_meta),
                    run_id,
                ),
            )
            if retry is not None:
                due, attempt, first = retry
                row = conn.execute(_CREATE_RETRY, (due, due, attempt, first, run_id)).fetchone()
                retry_id = int(row[0]) if row is not None else None
        return retry_id

    def record_skip(
        self,
        job_id: str,
        at: str,
        reason: str,
        trigger: RunTrigger,
        into: int | None,
        count: int = 1,
    ) -> int:
        """Record `count` fires skipped, the last at `at`. Skips during one in-flight run
        collapse into the row `into` (returned by the first skip), which counts them."""
        with self._db.transaction() as conn:
            if (
                into is not None
                and conn.execute(_BUMP_SKIP, (count, at, at, _text(reason), into)).rowcount
            ):
                return into
            return _id(
                conn.execute(
                    _INSERT_SKIP, (job_id, at, at, _text(reason), trigger.value, count, at)
                )
            )

    def list_runs(
        self,
        job_id: str,
        limit: int,
        *,
        statuses: Collection[RunStatus] = (),
        before: int | None = None,
    ) -> list[dict[str, Any]]:
        """A job's runs, newest first: only those in `statuses` (any when empty), only those
        with an id below `before` (the next page)."""
        chosen = [s.value for s in statuses]
        with self._db.connection() as conn:
            return _dicts(conn.execute(_LIST, (job_id, _below(before), chosen, chosen, limit)))

    def list_runs_json(
        self,
        job_id: str,
        limit: int,
        *,
        statuses: Collection[RunStatus] = (),
        before: int | None = None,
    ) -> bytes:
        runs = self.list_runs(job_id, limit, statuses=statuses, before=before)
        return orjson.dumps({"runs": [output_as_text(run) for run in runs]})

    def refresh_runs_list(self, view: RunsListView, job_id: str, limit: int) -> bytes:
        """See the Protocol. No change log of runs here: the view is emptied whenever the
        server's snapshot moved (any commit), and a job's page is read afresh then."""
        seen = self._db.data_version()
        if seen == view.seen and (body := view.body(job_id, limit)) is not None:
            return body
        if seen != view.seen:
            view.reset(seen)
            view.seen = seen
        runs = self.list_runs(job_id, view.depth)
        rows = [(int(run["id"]), orjson.dumps(output_as_text(run))) for run in runs]
        view.put(job_id, rows)
        # Not kept when too large: answered as read.
        return view.body(job_id, limit) or runs_body([row[1] for row in rows[:limit]])

    def list_all_runs(
        self,
        limit: int,
        *,
        statuses: Collection[RunStatus] = (),
        since: str | None = None,
        before: int | None = None,
    ) -> list[dict[str, Any]]:
        """Runs of every job, newest first, filtered as list_runs() does; with `since`, only
        runs that started (or, pending, were due) at or after that instant."""
        chosen = [s.value for s in statuses]
        with self._db.connection() as conn:
            if since is None:
                cur = conn.execute(_LIST_ALL, (_below(before), chosen, chosen, limit))
            else:
                cur = conn.execute(_LIST_SINCE, (since, _below(before), chosen, chosen, limit))
            return _dicts(cur)

    def recent_runs(self, job_ids: list[str], per_job: int) -> dict[str, list[tuple[str, int]]]:
        recent: dict[str, list[tuple[str, int]]] = {}
        with self._db.connection() as conn:
            for job_id in job_ids:
                rows = conn.execute(_RECENT, (job_id, per_job)).fetchall()
                recent[job_id] = [(str(r[0]), int(r[1] or 0)) for r in reversed(rows)]
        return recent

    def page_runs(
        self, job_id: str, statuses: list[str], before: int | None, limit: int
    ) -> list[dict[str, Any]]:
        with self._db.connection() as conn:
            cur = conn.execute(
                _PAGE_RUNS, (job_id, list(statuses), list(statuses), _below(before), limit)
            )
            return _dicts(cur)

    def count_unfinished(self, job_id: str) -> int:
        """Runs of the job that are `pending` or `running` (in flight, or left open by a
        runner that stopped)."""
        with self._db.connection() as conn:
            row = conn.execute(_COUNT_UNFINISHED, (job_id,)).fetchone()
        assert row is not None
        return int(row[0])

    def tries_of(self, job_id: str, first_id: int, limit: int) -> list[dict[str, Any]]:
        with self._db.connection() as conn:
            rows = conn.execute(_TRIES, {"job": job_id, "first": first_id, "limit": limit})
            return [{"id": r[0], "attempt": r[1], "status": r[2]} for r in rows]

    def get_run(self, run_id: int) -> dict[str, Any] | None:
        with self._db.connection() as conn:
            rows = _dicts(conn.execute(_GET, (run_id,)))
        return rows[0] if rows else None

    def close_orphaned_runs(self, at: str, message: str, never_started: str | None = None) -> int:
        """Close runs a stopped runner left open: `running` ones with `message`, `pending`
        ones (which never started) with `never_started` (default: `message`)."""
        with self._db.connection() as conn:
            params = (at, _text(never_started or message), _text(message))
            return conn.execute(_CLOSE_ORPHANS, params).rowcount

    def set_process(self, run_id: int, pid: int, pgid: int, process_started: int | None) -> None:
        """Record the process a run started: its PID, its process group and its start time
        (clock ticks since boot; None where the system does not tell)."""
        with self._db.connection() as conn:
            conn.execute(_SET_PROCESS, (pid, pgid, process_started, run_id))

    def open_runs(self) -> list[OpenRun]:
        """Every run still `pending` or `running`, oldest first, with its recorded process."""
        with self._db.connection() as conn:
            rows = conn.execute(_OPEN_RUNS).fetchall()
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

    def close_run(self, run_id: int, at: str, error: str) -> bool:
        """Close one open run as `error` with `error` as its message. False when the run is
        unknown or no longer open (someone else closed it first)."""
        with self._db.connection() as conn:
            return conn.execute(_CLOSE_RUN, (at, _text(error), run_id)).rowcount == 1

    def finished_since(self, since: str) -> dict[str, int]:
        with self._db.connection() as conn:
            rows = conn.execute(_FINISHED_SINCE, (since,)).fetchall()
        return {str(status): int(count) for status, count in rows}

    def prune_runs(self, before: str, batch: int = 5000) -> int:
        """Delete finished runs older than `before`, in batches so a large prune does not
        hold its locks for long. Never deletes a running run."""
        total = 0
        while True:
            with self._db.connection() as conn:
                deleted = conn.execute(_PRUNE, (before, batch)).rowcount
            total += deleted
            if deleted < batch:
                return total


def _below(before: int | None) -> int:
    return SEQ_END if before is None else before
