"""Run history: one row per run from the moment it starts to its end.

`jobs.last_run_id` (what GET /jobs shows as a job's last run) is kept by triggers
(migration 0004), not here: runs written by any process move it."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Sequence
from typing import Any

from jeeves_runner.models import (
    MissedFires,
    OpenRun,
    PendingRetry,
    RunLogWrite,
    RunResult,
    RunStatus,
    RunTrigger,
)
from jeeves_runner.store.protocols import RUN_DETAIL_COLUMNS
from jeeves_runner.store.runs_list import RunsListView, runs_body
from jeeves_runner.store.sqlite.database import Database
from jeeves_runner.store.sqlite.logs import SEQ_END, write_log

_CREATE = """
INSERT INTO runs (job_id, status, started_at, trigger, scheduled_for, attempt, retry_of)
VALUES (?, ?, ?, ?, ?, ?, ?)
"""
# A scheduled instant is fired once (the unique index runs_one_per_instant): a row that is
# already there means someone else fired it, and nothing is inserted.
_CREATE_SCHEDULED = """
INSERT INTO runs (job_id, status, started_at, trigger, scheduled_for)
VALUES (?, 'pending', ?, ?, ?)
ON CONFLICT DO NOTHING
RETURNING id
"""
# The retry of a run that just failed, written in the commit that records the failure. It
# stays with the node that ran the failed try (cluster mode: no other node claims it; if that
# node is lost, its claims go back to the pool).
_CREATE_RETRY = """
INSERT INTO runs (job_id, status, started_at, trigger, scheduled_for, attempt, retry_of, node_id)
SELECT job_id, 'pending', ?, 'retry', ?, ?, ?, node_id FROM runs WHERE id = ?
"""
_PENDING_RETRIES = """
SELECT id, job_id, scheduled_for, attempt, retry_of FROM runs
WHERE status = 'pending' AND trigger = 'retry' AND scheduled_for IS NOT NULL
ORDER BY scheduled_for
"""
# Moves forward only: a mark written late (a fire's rows held up) never takes one back.
_MARK_FIRED = """
INSERT INTO job_fire_marks (job_id, last_instant) SELECT id, ? FROM jobs WHERE id = ?
ON CONFLICT (job_id) DO UPDATE SET last_instant = max(last_instant, excluded.last_instant)
"""
_FIRE_MARKS = "SELECT job_id, last_instant FROM job_fire_marks"
_INSERT_MISSED = """
INSERT INTO runs (job_id, status, started_at, finished_at, duration_ms, error, trigger,
                  missed_count, missed_first, missed_last)
SELECT id, 'missed', ?, ?, 0, ?, 'schedule', ?, ?, ? FROM jobs WHERE id = ?
RETURNING id
"""
# Only a pending run becomes running: a mark that was held up (a locked database) and
# written after the run's end must not reopen it.
_MARK_RUNNING = (
    "UPDATE runs SET status = 'running', started_at = ? WHERE id = ? AND status = 'pending'"
)
_FINISH = """
UPDATE runs SET status = ?, finished_at = ?, duration_ms = ?, exit_code = ?, stdout = ?,
       stderr = ?, error = ?, tokens = ?, result_meta = ?
WHERE id = ?
"""
_INSERT_SKIP = """
INSERT INTO runs (job_id, status, started_at, finished_at, duration_ms, error, trigger,
                  skipped_count, last_skipped_at)
VALUES (?, 'skipped', ?, ?, 0, ?, ?, ?, ?)
"""
_DISCARD_PENDING = "DELETE FROM runs WHERE id = ? AND status = 'pending'"
_BUMP_SKIP = """
UPDATE runs SET skipped_count = skipped_count + ?, last_skipped_at = ?, finished_at = ?,
       error = ?
WHERE id = ? AND status = 'skipped'
"""
_COLUMNS = """id, job_id, started_at, finished_at, status, exit_code, stdout, stderr,
       duration_ms, error, trigger, tokens, result_meta, skipped_count, last_skipped_at"""
# Statuses are chosen with a JSON array (`[]`: any), so one statement serves every choice;
# `id < ?` pages backwards (SEQ_END: from the newest).
_LIST = f"""
SELECT {_COLUMNS}
FROM runs WHERE job_id = ? AND id < ?
  AND (? = '[]' OR status IN (SELECT value FROM json_each(?)))
ORDER BY id DESC LIMIT ?
"""
# list_runs as the API's JSON body, built by SQLite: 50 runs as one text value cost less
# than 50 Python dicts encoded by orjson. The subquery's order is the aggregate's.


def _run_object(table: str = "") -> str:
    """One run as the lists show it (`table`: the prefix of its columns in a join)."""
    t = table
    return f"""json_object(
    'id', {t}id, 'job_id', {t}job_id, 'started_at', {t}started_at,
    'finished_at', {t}finished_at, 'status', {t}status, 'exit_code', {t}exit_code,
    'stdout', coalesce({t}stdout, ''), 'stderr', coalesce({t}stderr, ''),
    'duration_ms', {t}duration_ms, 'error', {t}error, 'trigger', {t}trigger,
    'tokens', {t}tokens, 'result_meta', {t}result_meta, 'skipped_count', {t}skipped_count,
    'last_skipped_at', {t}last_skipped_at
)"""


_RUN_OBJECT = _run_object()
_LIST_JSON = f"""
SELECT '{{"runs":' || coalesce(json_group_array({_RUN_OBJECT}), '[]') || '}}'
FROM ({_LIST})
"""
# refresh_runs_list: the change log's position, the changes past a mark, a job's newest runs
# as fragments, and the runs that changed as they are now.
_CHANGES_POSITION = "SELECT coalesce(max(seq), 0) FROM runs_changes"
# The changes past a mark, each with its run as it is now when the run is the asked job's:
# one statement (one snapshot), so the common case, a page read again after its own job
# changed, needs no transaction around several.
_CHANGES_SINCE = f"""
SELECT c.seq, c.job_id, c.run_id, r.job_id,
       CASE WHEN c.job_id = ? AND r.id IS NOT NULL THEN {_run_object("r.")} END
FROM runs_changes AS c LEFT JOIN runs AS r ON r.id = c.run_id
WHERE c.seq > ? ORDER BY c.seq
"""
_NEWEST_PIECES = f"""
SELECT id, {_RUN_OBJECT} FROM runs WHERE job_id = ? ORDER BY id DESC LIMIT ?
"""
_PIECES_OF = f"""
SELECT id, job_id, {_RUN_OBJECT} FROM runs WHERE id IN (SELECT value FROM json_each(?))
"""
_PIECE_OF = f"SELECT id, job_id, {_RUN_OBJECT} FROM runs WHERE id = ?"
_LIST_ALL = f"""
SELECT {_COLUMNS}
FROM runs WHERE id < ? AND (? = '[]' OR status IN (SELECT value FROM json_each(?)))
ORDER BY id DESC LIMIT ?
"""
_LIST_SINCE = f"""
SELECT {_COLUMNS}
FROM runs INDEXED BY runs_by_start WHERE started_at >= ? AND id < ?
  AND (? = '[]' OR status IN (SELECT value FROM json_each(?)))
ORDER BY id DESC LIMIT ?
"""
# A first run and its retries: the row by its id, the retries by the runs_retries index.
_TRIES = """
SELECT id, attempt, status FROM runs WHERE id = :first AND job_id = :job
UNION ALL
SELECT id, attempt, status FROM runs WHERE retry_of = :first AND job_id = :job
ORDER BY id LIMIT :limit
"""
_GET = f"""
SELECT {_COLUMNS}, {RUN_DETAIL_COLUMNS}
FROM runs WHERE id = ?
"""
# Each job's latest runs that executed, walked down the (job_id, id) index per job.
_RECENT = """
SELECT status, duration_ms FROM runs
WHERE job_id = ? AND status NOT IN ('pending', 'running', 'skipped', 'missed')
ORDER BY id DESC LIMIT ?
"""
_PAGE_COLUMNS = """
SELECT id, job_id, started_at, finished_at, status, exit_code, duration_ms, error, trigger,
       tokens, skipped_count, last_skipped_at
FROM runs WHERE job_id = ?"""
# Uses the partial index runs_unfinished.
_COUNT_UNFINISHED = """
SELECT count(*) FROM runs WHERE status IN ('pending', 'running') AND job_id = ?
"""
# A retry waiting for its time is not an orphan: the next start runs it at its time.
_CLOSE_ORPHANS = """
UPDATE runs SET status = 'error', finished_at = ?,
       error = CASE status WHEN 'pending' THEN ? ELSE ? END
WHERE status IN ('pending', 'running')
  AND NOT (status = 'pending' AND trigger = 'retry' AND scheduled_for IS NOT NULL)
"""
_SET_PROCESS = "UPDATE runs SET pid = ?, pgid = ?, process_started = ? WHERE id = ?"
_OPEN_RUNS = """
SELECT id, job_id, status, pid, pgid, process_started FROM runs
WHERE status IN ('pending', 'running') ORDER BY id
"""
_CLOSE_RUN = """
UPDATE runs SET status = 'error', finished_at = ?, error = ?
WHERE id = ? AND status IN ('pending', 'running')
"""
_FINISHED_SINCE = """
SELECT status, count(*) FROM runs WHERE finished_at >= ? GROUP BY status
"""
_PRUNE = """
DELETE FROM runs WHERE id IN (
    SELECT id FROM runs
    WHERE finished_at < ? AND status NOT IN ('running', 'pending')
      -- A job's latest real run is kept whatever its age: GET /jobs shows it, and null
      -- there means "never ran".
      AND id NOT IN (SELECT last_run_id FROM jobs WHERE last_run_id IS NOT NULL)
    LIMIT ?
)
"""


class SqliteRunStore:
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
        with self._db.transaction() as conn:
            cur = conn.execute(
                _CREATE,
                (job_id, status.value, at, trigger.value, scheduled_for, attempt, retry_of),
            )
        return int(cur.lastrowid or 0)

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
        ids: list[int | None] = []
        if not job_ids and not (marked and scheduled_for):
            return ids
        with self._db.transaction() as conn:
            for job_id in job_ids:
                if scheduled_for is None:
                    cur = conn.execute(
                        _CREATE, (job_id, RunStatus.PENDING.value, at, trigger.value, None, 1, None)
                    )
                    ids.append(int(cur.lastrowid or 0))
                    continue
                row = conn.execute(
                    _CREATE_SCHEDULED, (job_id, at, trigger.value, scheduled_for)
                ).fetchone()
                ids.append(int(row[0]) if row is not None else None)
            if scheduled_for is not None:
                for job_id in marked:
                    conn.execute(_MARK_FIRED, (scheduled_for, job_id))
        return ids

    def fire_marks(self) -> dict[str, str]:
        """Each job's last scheduled instant that was fired or recorded missed."""
        return {str(r[0]): str(r[1]) for r in self._db.connection().execute(_FIRE_MARKS)}

    def record_missed(self, gaps: Sequence[MissedFires], at: str) -> list[int | None]:
        """One `missed` row per gap, and each job's last fired instant moved to the gap's
        last, in one commit. None for a job that no longer exists."""
        ids: list[int | None] = []
        with self._db.transaction() as conn:
            for gap in gaps:
                row = conn.execute(
                    _INSERT_MISSED,
                    (gap.first, at, gap.reason, gap.count, gap.first, gap.last, gap.job_id),
                ).fetchone()
                ids.append(int(row[0]) if row is not None else None)
                conn.execute(_MARK_FIRED, (gap.last, gap.job_id))
        return ids

    def pending_retries(self) -> list[PendingRetry]:
        """Every retry waiting for its time, earliest due first."""
        rows = self._db.connection().execute(_PENDING_RETRIES).fetchall()
        return [PendingRetry(int(r[0]), str(r[1]), str(r[2]), int(r[3]), int(r[4])) for r in rows]

    def mark_running(
        self,
        started: list[tuple[int, str, str]],
        processes: Sequence[tuple[int, int, int, int | None]] = (),
    ) -> None:
        """(run id, job id, started_at) for runs whose children have started, and (run id,
        pid, pgid, process start ticks) of their processes; one commit."""
        with self._db.transaction() as conn:
            for run_id, _job_id, at in started:
                conn.execute(_MARK_RUNNING, (at, run_id))
            for run_id, pid, pgid, process_started in processes:
                conn.execute(_SET_PROCESS, (pid, pgid, process_started, run_id))

    def discard_pending(self, run_id: int) -> None:
        """Drop a row made ahead of a fire that, in the end, did not run."""
        with self._db.transaction() as conn:
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
        retry_id: int | None = None
        with self._db.transaction() as conn:
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
                    result.stdout,
                    result.stderr,
                    result.error,
                    result.tokens,
                    result.result_meta,
                    run_id,
                ),
            )
            if retry is not None:
                due, attempt, first = retry
                cur = conn.execute(_CREATE_RETRY, (due, due, attempt, first, run_id))
                retry_id = int(cur.lastrowid or 0) if cur.rowcount == 1 else None
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
            if into is not None:
                cur = conn.execute(_BUMP_SKIP, (count, at, at, reason, into))
                if cur.rowcount == 1:
                    return into
            cur = conn.execute(_INSERT_SKIP, (job_id, at, at, reason, trigger.value, count, at))
            return int(cur.lastrowid or 0)

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
        chosen = _statuses_json(statuses)
        params = (job_id, _below(before), chosen, chosen, limit)
        return _dicts(self._db.connection().execute(_LIST, params))

    def list_runs_json(
        self,
        job_id: str,
        limit: int,
        *,
        statuses: Collection[RunStatus] = (),
        before: int | None = None,
    ) -> bytes:
        chosen = _statuses_json(statuses)
        params = (job_id, _below(before), chosen, chosen, limit)
        row = self._db.connection().execute(_LIST_JSON, params).fetchone()
        return str(row[0]).encode("utf-8")

    def refresh_runs_list(self, view: RunsListView, job_id: str, limit: int) -> bytes:
        """See the Protocol. Nothing is read while the connection sees no commit; otherwise
        the changes past the view's mark, with the asked job's changed runs (one statement),
        and the changed runs of the other jobs the view holds. Each statement is its own
        snapshot: a run is always put in place as it is at least as late as its change, and
        put in place again when a later change comes (only the newest state stays)."""
        conn = self._db.connection()
        # Before the snapshot: a commit in between makes the next call look again.
        # data_version moves with other connections' commits, total_changes with this one's.
        seen = (int(conn.execute("PRAGMA data_version").fetchone()[0]), conn.total_changes)
        if seen == view.seen and (body := view.body(job_id, limit)) is not None:
            return body
        mark = view.mark if isinstance(view.mark, int) else None
        changes = [] if mark is None else conn.execute(_CHANGES_SINCE, (job_id, mark)).fetchall()
        if changes and mark is not None and changes[0][0] == mark + 1:
            touched = view.held_runs((row[1], row[2]) for row in changes)
            if touched:
                # The asked job's runs came with the changes; other jobs' are read now (a
                # later snapshot: a run put in place newer than the mark is put in place
                # again, as it is then, when the log gets there).
                current = {
                    int(row[2]): (str(row[3]), str(row[4]).encode("utf-8"))
                    for row in changes
                    if row[4] is not None
                }
                others = {r for j, runs in touched.items() if j != job_id for r in runs}
                if others:
                    current.update(_current_pieces(conn, others))
                view.apply(touched, current)
            view.mark = changes[-1][0]
        elif changes:  # the log was trimmed past the mark
            view.reset(changes[-1][0])
        else:
            # Nothing past the mark: the position says whether the view still holds (a file
            # restored from an older copy counts fewer changes than the view has seen).
            position = int(conn.execute(_CHANGES_POSITION).fetchone()[0])
            if position != mark:
                view.reset(position)
        view.seen = seen
        body = view.body(job_id, limit)
        if body is None:
            rows = [
                (int(r[0]), str(r[1]).encode("utf-8"))
                for r in conn.execute(_NEWEST_PIECES, (job_id, view.depth))
            ]
            view.put(job_id, rows)
            # Not kept when too large: answered as read.
            body = view.body(job_id, limit) or runs_body([r[1] for r in rows[:limit]])
        return body

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
        chosen = _statuses_json(statuses)
        conn = self._db.connection()
        if since is None:
            cur = conn.execute(_LIST_ALL, (_below(before), chosen, chosen, limit))
        else:
            cur = conn.execute(_LIST_SINCE, (since, _below(before), chosen, chosen, limit))
        return _dicts(cur)

    def recent_runs(self, job_ids: list[str], per_job: int) -> dict[str, list[tuple[str, int]]]:
        conn = self._db.connection()
        recent: dict[str, list[tuple[str, int]]] = {}
        for job_id in job_ids:
            rows = conn.execute(_RECENT, (job_id, per_job)).fetchall()
            recent[job_id] = [(str(r[0]), int(r[1] or 0)) for r in reversed(rows)]
        return recent

    def page_runs(
        self, job_id: str, statuses: list[str], before: int | None, limit: int
    ) -> list[dict[str, Any]]:
        sql = _PAGE_COLUMNS
        params: list[Any] = [job_id]
        if statuses:
            sql += f" AND status IN ({', '.join('?' * len(statuses))})"
            params += statuses
        if before is not None:
            sql += " AND id < ?"
            params.append(before)
        cur = self._db.connection().execute(sql + " ORDER BY id DESC LIMIT ?", [*params, limit])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur]

    def count_unfinished(self, job_id: str) -> int:
        """Runs of the job that are pending or running."""
        return int(self._db.connection().execute(_COUNT_UNFINISHED, (job_id,)).fetchone()[0])

    def tries_of(self, job_id: str, first_id: int, limit: int) -> list[dict[str, Any]]:
        params = {"job": job_id, "first": first_id, "limit": limit}
        cur = self._db.connection().execute(_TRIES, params)
        return [{"id": row[0], "attempt": row[1], "status": row[2]} for row in cur]

    def get_run(self, run_id: int) -> dict[str, Any] | None:
        cur = self._db.connection().execute(_GET, (run_id,))
        row = cur.fetchone()
        if row is None:
            return None
        return dict(zip([d[0] for d in cur.description], row, strict=True))

    def close_orphaned_runs(self, at: str, message: str, never_started: str | None = None) -> int:
        """Close runs a stopped runner left open: `running` ones with `message`, `pending`
        ones (which never started) with `never_started` (default: `message`)."""
        with self._db.transaction() as conn:
            params = (at, never_started or message, message)
            return conn.execute(_CLOSE_ORPHANS, params).rowcount

    def set_process(self, run_id: int, pid: int, pgid: int, process_started: int | None) -> None:
        """Record the process a run started: its PID, its process group and its start time
        (clock ticks since boot; None where the system does not tell)."""
        with self._db.transaction() as conn:
            conn.execute(_SET_PROCESS, (pid, pgid, process_started, run_id))

    def open_runs(self) -> list[OpenRun]:
        """Every run still `pending` or `running`, oldest first, with its recorded process."""
        rows = self._db.connection().execute(_OPEN_RUNS).fetchall()
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
        with self._db.transaction() as conn:
            return conn.execute(_CLOSE_RUN, (at, error, run_id)).rowcount == 1

    def finished_since(self, since: str) -> dict[str, int]:
        rows = self._db.connection().execute(_FINISHED_SINCE, (since,))
        return {str(status): int(count) for status, count in rows}

    def prune_runs(self, before: str, batch: int = 5000) -> int:
        """Delete finished runs older than `before`, in batches so a large prune does not
        hold the write lock for long. Never deletes a running run."""
        total = 0
        while True:
            with self._db.transaction() as conn:
                deleted = conn.execute(_PRUNE, (before, batch)).rowcount
            total += deleted
            if deleted < batch:
                return total


def _current_pieces(conn: sqlite3.Connection, run_ids: set[int]) -> dict[int, tuple[str, bytes]]:
    """The runs that still exist of these, as the lists show them: id → (job id, fragment)."""
    if len(run_ids) == 1:
        cur = conn.execute(_PIECE_OF, (next(iter(run_ids)),))
    else:
        cur = conn.execute(_PIECES_OF, (json.dumps(sorted(run_ids)),))
    return {int(r[0]): (str(r[1]), str(r[2]).encode("utf-8")) for r in cur}


def _statuses_json(statuses: Collection[RunStatus]) -> str:
    return "[" + ", ".join(f'"{s.value}"' for s in statuses) + "]"


def _below(before: int | None) -> int:
    return SEQ_END if before is None else before


def _dicts(cur: Any) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur]
