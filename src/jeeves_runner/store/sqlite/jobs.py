"""Job definitions."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from jeeves_runner.models import (
    Job,
    JobExistsError,
    JobType,
    OverlapPolicy,
    ScheduleEntry,
)
from jeeves_runner.store.job_values import decoded, insert_values, update_values
from jeeves_runner.store.jobs_list import JobsListView
from jeeves_runner.store.sqlite.database import Database

_COLUMNS = (
    "id, name, schedule, script, type, description, enabled, timeout_ms, overlap_policy, "
    "on_failure, on_success, created_at, updated_at, command, args, env, cwd, timezone, tags, "
    "source, source_digest, run_on, retries, retry_delay_ms, retry_backoff, retry_max_delay_ms, "
    "retry_on, catchup, catchup_max, catchup_window_ms, notify, notify_repeat, late_after_ms, "
    "max_duration_ms"
)
# Stored as JSON text; read back as lists and objects.

_INSERT = f"INSERT INTO jobs ({_COLUMNS}) VALUES ({', '.join('?' * 34)})"
_GET = f"SELECT {_COLUMNS} FROM jobs WHERE id = ?"
_LIST = f"SELECT {_COLUMNS} FROM jobs ORDER BY id"
_LIST_WITH_LAST_RUN = """
SELECT j.id, j.name, j.schedule, j.script, j.type, j.description, j.enabled, j.timeout_ms,
       j.overlap_policy, j.on_failure, j.on_success, j.created_at, j.updated_at,
       j.command, j.args, j.env, j.cwd, j.timezone, j.tags, j.source, j.run_on,
       j.retries, j.retry_delay_ms, j.retry_backoff, j.retry_max_delay_ms, j.retry_on,
       j.catchup, j.catchup_max, j.catchup_window_ms, j.notify, j.notify_repeat,
       j.late_after_ms, j.max_duration_ms,
       r.status AS last_status, r.started_at AS last_run
FROM jobs j LEFT JOIN runs r ON r.id = j.last_run_id
ORDER BY j.id
"""
# The whole GET /jobs body built by SQLite itself: for 10,000 jobs this is markedly cheaper
# than making 10,000 Python dicts and encoding them (measured 19 ms against 31 ms). The
# subquery's order is the order SQLite aggregates in.
# One job of GET /jobs as a JSON object, built by SQLite's JSON functions: for 10,000 jobs
# markedly cheaper than making Python dicts and encoding them (19 ms against 31 ms).
_JOB_JSON = """json_object(
        'id', j.id, 'name', j.name, 'schedule', j.schedule, 'script', j.script,
        'type', j.type, 'description', j.description, 'enabled', j.enabled,
        'timeout_ms', j.timeout_ms, 'overlap_policy', j.overlap_policy,
        'on_failure', j.on_failure, 'on_success', j.on_success,
        'created_at', j.created_at, 'updated_at', j.updated_at,
        'command', json(j.command), 'args', json(j.args), 'env', json(j.env), 'cwd', j.cwd,
        'timezone', j.timezone, 'tags', json(j.tags), 'source', j.source,
        'run_on', json(j.run_on),
        'retries', j.retries, 'retry_delay_ms', j.retry_delay_ms,
        'retry_backoff', j.retry_backoff, 'retry_max_delay_ms', j.retry_max_delay_ms,
        'retry_on', json(j.retry_on), 'catchup', j.catchup, 'catchup_max', j.catchup_max,
        'catchup_window_ms', j.catchup_window_ms, 'notify', j.notify,
        'notify_repeat', j.notify_repeat, 'late_after_ms', j.late_after_ms,
        'max_duration_ms', j.max_duration_ms,
        'last_status', r.status, 'last_run', r.started_at
    )"""
# The whole body. The subquery's order is the order SQLite aggregates in.
_LIST_WITH_LAST_RUN_JSON = f"""
SELECT '{{"jobs":' || coalesce(json_group_array(json(job)), '[]') || '}}' FROM (
    SELECT {_JOB_JSON} AS job
    FROM jobs j LEFT JOIN runs r ON r.id = j.last_run_id
    ORDER BY j.id
)
"""
# The change feed (migration 0009): its position, every job's fragment, the jobs past a
# position (one range of jobs_list_seq), and what a view can check its pieces against.
_FEED_POSITION = "SELECT seq FROM jobs_feed"
_FRAGMENTS_ALL = f"""
SELECT j.id, j.list_seq, {_JOB_JSON}
FROM jobs j LEFT JOIN runs r ON r.id = j.last_run_id ORDER BY j.id
"""
_FRAGMENTS_SINCE = f"""
SELECT j.id, j.list_seq, {_JOB_JSON}
FROM jobs j LEFT JOIN runs r ON r.id = j.last_run_id WHERE j.list_seq > ?
"""
_FEED_CHECK = "SELECT count(*), coalesce(sum(list_seq), 0) FROM jobs INDEXED BY jobs_list_seq"
_ORDER = "SELECT id FROM jobs ORDER BY id"
# The dashboard's page: the state each filter names, decided in SQL from the job row and
# the run its last_run_id points at.
_STATE_SQL = {
    "disabled": "j.enabled = 0",
    "running": "j.enabled = 1 AND r.status = 'running'",
    "failing": "j.enabled = 1 AND r.status IN ('error', 'timeout', 'cancelled')",
    "ok": "j.enabled = 1 AND r.status = 'ok'",
    "new": "j.enabled = 1 AND r.id IS NULL",
}
_SEARCH_SQL = """(instr(lower(j.id), ?) > 0 OR instr(lower(j.name), ?) > 0
    OR EXISTS (SELECT 1 FROM json_each(j.tags) t WHERE lower(t.value) = ?))"""
_PAGE_SELECT = """
SELECT j.id, j.name, j.schedule, j.timezone, j.enabled, j.tags, j.source, j.created_at,
       r.status AS last_status, r.started_at AS last_run, r.duration_ms AS last_duration_ms
FROM jobs j LEFT JOIN runs r ON r.id = j.last_run_id
"""
_SET_ENABLED = "UPDATE jobs SET enabled = ?, updated_at = ? WHERE id = ?"
_ENABLED_SCHEDULES = "SELECT id, schedule, updated_at, timezone FROM jobs WHERE enabled = 1"
_COUNT = "SELECT count(*) FROM jobs"
_SOURCES = "SELECT id, source, source_digest FROM jobs"
_FINGERPRINT = "SELECT count(*), coalesce(max(updated_at), '') FROM jobs WHERE enabled = 1"
_DELETE = "DELETE FROM jobs WHERE id = ?"
# A disabled job has no fires to miss: enabled again, it starts from its next fire.
_FORGET_MARK = "DELETE FROM job_fire_marks WHERE job_id = ?"
_UPDATE = """
UPDATE jobs SET name = ?, schedule = ?, script = ?, type = ?, description = ?, enabled = ?,
       timeout_ms = ?, overlap_policy = ?, on_failure = ?, on_success = ?, updated_at = ?,
       command = ?, args = ?, env = ?, cwd = ?, timezone = ?, tags = ?, source = ?,
       source_digest = ?, run_on = ?, retries = ?, retry_delay_ms = ?, retry_backoff = ?,
       retry_max_delay_ms = ?, retry_on = ?, catchup = ?, catchup_max = ?,
       catchup_window_ms = ?, notify = ?, notify_repeat = ?, late_after_ms = ?,
       max_duration_ms = ?
WHERE id = ?
"""


def _job(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"],
        name=row["name"],
        schedule=row["schedule"],
        script=row["script"],
        type=JobType(row["type"]),
        description=row["description"],
        enabled=bool(row["enabled"]),
        timeout_ms=row["timeout_ms"],
        overlap_policy=OverlapPolicy(row["overlap_policy"]),
        on_failure=row["on_failure"],
        on_success=row["on_success"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        command=tuple(json.loads(row["command"])) if row["command"] is not None else None,
        args=tuple(json.loads(row["args"])),
        env=json.loads(row["env"]),
        cwd=row["cwd"],
        timezone=row["timezone"],
        tags=tuple(json.loads(row["tags"])),
        source=row["source"],
        source_digest=row["source_digest"],
        run_on=tuple(json.loads(row["run_on"])),
        retries=row["retries"],
        retry_delay_ms=row["retry_delay_ms"],
        retry_backoff=float(row["retry_backoff"]),
        retry_max_delay_ms=row["retry_max_delay_ms"],
        retry_on=tuple(json.loads(row["retry_on"])),
        catchup=row["catchup"],
        catchup_max=row["catchup_max"],
        catchup_window_ms=row["catchup_window_ms"],
        notify=row["notify"],
        notify_repeat=row["notify_repeat"],
        late_after_ms=row["late_after_ms"],
        max_duration_ms=row["max_duration_ms"],
    )


def _fragment_rows(cur: sqlite3.Cursor) -> list[tuple[str, int, bytes]]:
    return [(str(r[0]), int(r[1]), str(r[2]).encode("utf-8")) for r in cur]


class SqliteJobStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add_job(self, job: Job, now: str) -> Job:
        try:
            with self._db.transaction() as conn:
                conn.execute(_INSERT, insert_values(job, now))
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" in str(exc) or "PRIMARY KEY" in str(exc):
                raise JobExistsError(job.id) from None
            raise
        stored = self.get_job(job.id)
        assert stored is not None
        return stored

    def update_job(self, job: Job, now: str) -> bool:
        with self._db.transaction() as conn:
            cur = conn.execute(_UPDATE, update_values(job, now))
            if not job.enabled:
                conn.execute(_FORGET_MARK, (job.id,))
        return cur.rowcount == 1

    def apply_jobs(self, add: list[Job], update: list[Job], delete: list[str], now: str) -> None:
        try:
            with self._db.transaction() as conn:
                conn.executemany(_INSERT, [insert_values(job, now) for job in add])
                conn.executemany(_UPDATE, [update_values(job, now) for job in update])
                conn.executemany(_FORGET_MARK, [(job.id,) for job in update if not job.enabled])
                conn.executemany(_DELETE, [(job_id,) for job_id in delete])
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" in str(exc) or "PRIMARY KEY" in str(exc):
                existing = {j.id for j in self.list_jobs()}
                clash = next((j.id for j in add if j.id in existing), add[0].id if add else "?")
                raise JobExistsError(clash) from None
            raise

    def delete_job(self, job_id: str) -> bool:
        with self._db.transaction() as conn:
            return conn.execute(_DELETE, (job_id,)).rowcount == 1

    def job_sources(self) -> dict[str, tuple[str | None, str | None]]:
        rows = self._db.connection().execute(_SOURCES)
        return {row[0]: (row[1], row[2]) for row in rows}

    def get_job(self, job_id: str) -> Job | None:
        row = self._db.connection().execute(_GET, (job_id,)).fetchone()
        return _job(row) if row else None

    def list_jobs(self) -> list[Job]:
        return [_job(r) for r in self._db.connection().execute(_LIST)]

    def list_jobs_with_last_run(self) -> list[dict[str, Any]]:
        """Jobs as the API shows them, each with its latest executed run's status and start."""
        cur = self._db.connection().execute(_LIST_WITH_LAST_RUN)
        names = [d[0] for d in cur.description]
        return [decoded(dict(zip(names, row, strict=True))) for row in cur]

    def jobs_list_json(self) -> bytes:
        """`{"jobs": [...]}` exactly as list_jobs_with_last_run() would encode, as bytes."""
        row = self._db.connection().execute(_LIST_WITH_LAST_RUN_JSON).fetchone()
        return str(row[0]).encode("utf-8")

    def refresh_jobs_list(self, view: JobsListView) -> bytes:
        """See the Protocol. One read transaction (one snapshot): the feed's position, and
        only when it moved, the jobs past the view's mark. A view that no longer adds up
        (count and sum of versions: a job was deleted, or the file was replaced by an older
        copy whose counter ran behind ours) reads every job again."""
        conn = self._db.connection()
        conn.execute("BEGIN")
        try:
            position = int(conn.execute(_FEED_POSITION).fetchone()[0])
            mark = view.mark
            if mark == position and view.body is not None:
                return view.body
            if not isinstance(mark, int) or position < mark:
                view.load(position, _fragment_rows(conn.execute(_FRAGMENTS_ALL)))
                return view.assemble()
            changed = _fragment_rows(conn.execute(_FRAGMENTS_SINCE, (mark,)))
            added = view.update(changed)
            if added:
                view.reorder([str(row[0]) for row in conn.execute(_ORDER)], added)
            # Every move of the counter since the mark is one job's change: each job read
            # changed once and nothing else happened (no delete, which moves the counter and
            # leaves no row), so the view adds up without counting (an index walk over every
            # job, a third of a refresh's time).
            if not added and position - mark == len(changed):
                view.mark = position
                return view.assemble()
            count, total = conn.execute(_FEED_CHECK).fetchone()
            if count != view.held() or total != view.total:
                view.load(position, _fragment_rows(conn.execute(_FRAGMENTS_ALL)))
            else:
                view.mark = position
            return view.assemble()
        finally:
            conn.execute("COMMIT")

    def get_job_row(self, job_id: str) -> dict[str, Any] | None:
        cur = self._db.connection().execute(_GET, (job_id,))
        row = cur.fetchone()
        if row is None:
            return None
        return decoded(dict(zip([d[0] for d in cur.description], row, strict=True)))

    def set_enabled(self, job_id: str, enabled: bool, now: str) -> bool:
        with self._db.transaction() as conn:
            cur = conn.execute(_SET_ENABLED, (int(enabled), now, job_id))
            if not enabled:
                conn.execute(_FORGET_MARK, (job_id,))
        return cur.rowcount == 1

    def enabled_schedules(self) -> list[ScheduleEntry]:
        return [
            ScheduleEntry(r[0], r[1], r[2], r[3])
            for r in self._db.connection().execute(_ENABLED_SCHEDULES)
        ]

    def schedule_fingerprint(self) -> tuple[int, str]:
        """Changes whenever the set of enabled jobs or one of them changes (every write
        through the store bumps updated_at), at the cost of one aggregate query."""
        row = self._db.connection().execute(_FINGERPRINT).fetchone()
        return int(row[0]), str(row[1])

    def count_jobs(self) -> int:
        return int(self._db.connection().execute(_COUNT).fetchone()[0])

    def page_jobs(
        self, search: str | None, status: str | None, offset: int, limit: int
    ) -> tuple[int, list[dict[str, Any]]]:
        where: list[str] = []
        params: list[Any] = []
        if search:
            needle = search.lower()
            where.append(_SEARCH_SQL)
            params += [needle, needle, needle]
        if status is not None:
            if status not in _STATE_SQL:
                raise ValueError(f"unknown job state {status!r}")
            where.append(_STATE_SQL[status])
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        conn = self._db.connection()
        if where:
            count_sql = (
                f"SELECT count(*) FROM jobs j LEFT JOIN runs r ON r.id = j.last_run_id{clause}"
            )
            total = int(conn.execute(count_sql, params).fetchone()[0])
        else:
            total = int(conn.execute(_COUNT).fetchone()[0])
        cur = conn.execute(
            f"{_PAGE_SELECT}{clause} ORDER BY j.id LIMIT ? OFFSET ?", [*params, limit, offset]
        )
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, row, strict=True)) for row in cur]
        for row in rows:
            row["tags"] = json.loads(row["tags"])
        return total, rows
