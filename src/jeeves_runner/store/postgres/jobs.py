"""Job definitions (PostgreSQL)."""

from __future__ import annotations

import time
from typing import Any

import orjson
import psycopg

from jeeves_runner.models import Job, JobExistsError, JobType, OverlapPolicy, ScheduleEntry
from jeeves_runner.store.job_values import decoded, insert_values, update_values
from jeeves_runner.store.jobs_list import JobsListView
from jeeves_runner.store.postgres.database import Database

_COLUMNS = (
    "id, name, schedule, script, type, description, enabled, timeout_ms, overlap_policy, "
    "on_failure, on_success, created_at, updated_at, command, args, env, cwd, timezone, tags, "
    "source, source_digest, run_on, retries, retry_delay_ms, retry_backoff, retry_max_delay_ms, "
    "retry_on, catchup, catchup_max, catchup_window_ms, notify, notify_repeat, late_after_ms, "
    "max_duration_ms"
)
# Stored as JSON text (as in SQLite); read back as lists and objects.

_INSERT = f"INSERT INTO jobs ({_COLUMNS}) VALUES ({', '.join(['%s'] * 34)})"
_GET = f"SELECT {_COLUMNS} FROM jobs WHERE id = %s"
_LIST = f"SELECT {_COLUMNS} FROM jobs ORDER BY id"
# One primary-key lookup of runs per job, whatever the size of the history. OFFSET 0 keeps the
# planner from turning the lateral lookup into a join that hashes every run (it does, for a
# history of a few ten thousand runs: 15 ms against 2.4 ms for 1,000 jobs and 50,000 runs).
_LIST_WITH_LAST_RUN = """
SELECT j.id, j.name, j.schedule, j.script, j.type, j.description, j.enabled, j.timeout_ms,
       j.overlap_policy, j.on_failure, j.on_success, j.created_at, j.updated_at,
       j.command, j.args, j.env, j.cwd, j.timezone, j.tags, j.source, j.run_on,
       j.retries, j.retry_delay_ms, j.retry_backoff, j.retry_max_delay_ms, j.retry_on,
       j.catchup, j.catchup_max, j.catchup_window_ms, j.notify, j.notify_repeat,
       j.late_after_ms, j.max_duration_ms,
       r.status AS last_status, r.started_at AS last_run
FROM jobs j LEFT JOIN LATERAL (
    SELECT status, started_at FROM runs WHERE runs.id = j.last_run_id OFFSET 0
) r ON true
ORDER BY j.id
"""
_LIST_SOME_WITH_LAST_RUN = """
SELECT j.id, j.name, j.schedule, j.script, j.type, j.description, j.enabled, j.timeout_ms,
       j.overlap_policy, j.on_failure, j.on_success, j.created_at, j.updated_at,
       j.command, j.args, j.env, j.cwd, j.timezone, j.tags, j.source, j.run_on,
       j.retries, j.retry_delay_ms, j.retry_backoff, j.retry_max_delay_ms, j.retry_on,
       j.catchup, j.catchup_max, j.catchup_window_ms, j.notify, j.notify_repeat,
       j.late_after_ms, j.max_duration_ms,
       r.status AS last_status, r.started_at AS last_run
FROM jobs j LEFT JOIN LATERAL (
    SELECT status, started_at FROM runs WHERE runs.id = j.last_run_id OFFSET 0
) r ON true
WHERE j.id = ANY(%s)
"""
# The change feed (migration 0006): this statement's snapshot, how many jobs there are, and
# which ones were written by a transaction the previous read's snapshot had not seen.
# `list_xid` is stamped by triggers; the row's own `xmin` (made a 64-bit id with the epoch of
# the snapshot) also counts, so rows written with triggers disabled (a data-only restore)
# are seen too. Either test may name a job needlessly (a subtransaction's xmin), never miss
# one. Asked only when the snapshot moved (one cheap statement first).
_XMIN8 = """(CASE WHEN j.xmin::text::bigint <= (x.top & 4294967295)
         THEN ((x.top >> 32) << 32) | j.xmin::text::bigint
         ELSE greatest((((x.top >> 32) - 1) << 32) | j.xmin::text::bigint, 3)
    END)::text::xid8"""
_JOB_ITEM_COLUMNS = """j.id, j.name, j.schedule, j.script, j.type, j.description, j.enabled,
    j.timeout_ms, j.overlap_policy, j.on_failure, j.on_success, j.created_at, j.updated_at,
    j.command, j.args, j.env, j.cwd, j.timezone, j.tags, j.source, j.run_on,
    j.retries, j.retry_delay_ms, j.retry_backoff, j.retry_max_delay_ms, j.retry_on,
    j.catchup, j.catchup_max, j.catchup_window_ms, j.notify, j.notify_repeat,
    j.late_after_ms, j.max_duration_ms,
    r.status AS last_status, r.started_at AS last_run"""
# One round trip: the snapshot and job count on every row, and the changed jobs as GET /jobs
# shows them (one row of NULL job columns when none changed).
_FEED = f"""
WITH x AS (
    SELECT s AS now, pg_snapshot_xmax(s)::text::bigint AS top, %s::pg_snapshot AS prev
    FROM pg_current_snapshot() AS s
), changed AS (
    SELECT j.* FROM jobs j, x
    WHERE NOT pg_visible_in_snapshot(j.list_xid, x.prev)
       OR NOT pg_visible_in_snapshot({_XMIN8}, x.prev)
)
SELECT x.now::text, (SELECT count(*) FROM jobs), {_JOB_ITEM_COLUMNS}
FROM x LEFT JOIN changed j ON true LEFT JOIN LATERAL (
    SELECT status, started_at FROM runs WHERE runs.id = j.last_run_id OFFSET 0
) r ON true
"""
# The feed between two sweeps (migration 0012): the jobs stamped by a transaction the
# previous snapshot did not see, found through the list_xid index (at or above its xmin), and
# whether a delete ended since. Rows written with triggers disabled (no stamp) are found by the
# next sweep, `_FEED`, at most `JobsListView.sweep_every_s` later.
_FEED_FAST = f"""
WITH x AS (SELECT pg_current_snapshot() AS now, %s::pg_snapshot AS prev)
SELECT x.now::text,
       coalesce((SELECT NOT pg_visible_in_snapshot(d.xid, x.prev) FROM jobs_list_deletes d),
                false),
       {_JOB_ITEM_COLUMNS}
FROM x LEFT JOIN jobs j
  ON j.list_xid >= pg_snapshot_xmin(x.prev) AND NOT pg_visible_in_snapshot(j.list_xid, x.prev)
LEFT JOIN LATERAL (
    SELECT status, started_at FROM runs WHERE runs.id = j.last_run_id OFFSET 0
) r ON true
"""
_SNAPSHOT = "SELECT pg_current_snapshot()::text"
_ORDER = "SELECT id FROM jobs ORDER BY id"
_SET_ENABLED = "UPDATE jobs SET enabled = %s, updated_at = %s WHERE id = %s"
_ENABLED_SCHEDULES = (
    "SELECT id, schedule, updated_at, timezone FROM jobs WHERE enabled = 1 ORDER BY id"
)
_COUNT = "SELECT count(*) FROM jobs"
_SOURCES = "SELECT id, source, source_digest FROM jobs"
_FINGERPRINT = "SELECT count(*), coalesce(max(updated_at), '') FROM jobs WHERE enabled = 1"
_DELETE = "DELETE FROM jobs WHERE id = %s"
_LOCK_RUNS = "SELECT id FROM runs WHERE job_id = %s ORDER BY id FOR UPDATE"
# A disabled job has no fires to miss: enabled again, it starts from its next fire.
_FORGET_MARK = "DELETE FROM job_fire_marks WHERE job_id = %s"
_UPDATE = """
UPDATE jobs SET name = %s, schedule = %s, script = %s, type = %s, description = %s,
       enabled = %s, timeout_ms = %s, overlap_policy = %s, on_failure = %s, on_success = %s,
       updated_at = %s, command = %s, args = %s, env = %s, cwd = %s, timezone = %s, tags = %s,
       source = %s, source_digest = %s, run_on = %s, retries = %s, retry_delay_ms = %s,
       retry_backoff = %s, retry_max_delay_ms = %s, retry_on = %s, catchup = %s,
       catchup_max = %s, catchup_window_ms = %s, notify = %s, notify_repeat = %s,
       late_after_ms = %s, max_duration_ms = %s
WHERE id = %s
"""


def _job(row: tuple[Any, ...]) -> Job:
    return Job(
        id=row[0],
        name=row[1],
        schedule=row[2],
        script=row[3],
        type=JobType(row[4]),
        description=row[5],
        enabled=bool(row[6]),
        timeout_ms=row[7],
        overlap_policy=OverlapPolicy(row[8]),
        on_failure=row[9],
        on_success=row[10],
        created_at=row[11],
        updated_at=row[12],
        command=tuple(orjson.loads(row[13])) if row[13] is not None else None,
        args=tuple(orjson.loads(row[14])),
        env=orjson.loads(row[15]),
        cwd=row[16],
        timezone=row[17],
        tags=tuple(orjson.loads(row[18])),
        source=row[19],
        source_digest=row[20],
        run_on=tuple(orjson.loads(row[21])),
        retries=row[22],
        retry_delay_ms=row[23],
        retry_backoff=float(row[24]),
        retry_max_delay_ms=row[25],
        retry_on=tuple(orjson.loads(row[26])),
        catchup=row[27],
        catchup_max=row[28],
        catchup_window_ms=row[29],
        notify=row[30],
        notify_repeat=row[31],
        late_after_ms=row[32],
        max_duration_ms=row[33],
    )


_STATE_SQL = {
    "disabled": "j.enabled = 0",
    "running": "j.enabled = 1 AND r.status = 'running'",
    "failing": "j.enabled = 1 AND r.status IN ('error', 'timeout', 'cancelled')",
    "ok": "j.enabled = 1 AND r.status = 'ok'",
    "new": "j.enabled = 1 AND r.id IS NULL",
}
_SEARCH_SQL = """(strpos(lower(j.id), %s) > 0 OR strpos(lower(j.name), %s) > 0
    OR EXISTS (SELECT 1 FROM json_array_elements_text(j.tags::json) t WHERE lower(t) = %s))"""
_PAGE_FROM = " FROM jobs j LEFT JOIN runs r ON r.id = j.last_run_id"
_PAGE_SELECT = (
    "SELECT j.id, j.name, j.schedule, j.timezone, j.enabled, j.tags, j.source, j.created_at,"
    " r.status AS last_status, r.started_at AS last_run, r.duration_ms AS last_duration_ms"
    + _PAGE_FROM
)


def _dicts(cur: psycopg.Cursor[Any]) -> list[dict[str, Any]]:
    assert cur.description is not None
    names = [d.name for d in cur.description]
    return [decoded(dict(zip(names, row, strict=True))) for row in cur]


def _fragment_rows(cur: psycopg.Cursor[Any]) -> list[tuple[str, int, bytes]]:
    """(id, 0, the job's JSON object): the bytes orjson writes for it inside the list."""
    return [(job["id"], 0, orjson.dumps(job)) for job in _dicts(cur)]


class PostgresJobStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add_job(self, job: Job, now: str) -> Job:
        try:
            with self._db.connection() as conn:
                conn.execute(_INSERT, insert_values(job, now))
        except psycopg.errors.UniqueViolation:
            raise JobExistsError(job.id) from None
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
        """Add, replace and delete jobs (with their runs) in one transaction: all or nothing.
        An id to add that exists raises JobExistsError and nothing is written."""
        try:
            with self._db.transaction() as conn, conn.cursor() as cur:
                # executemany sends each list in one pipeline, not one round trip per job.
                if add:
                    cur.executemany(_INSERT, [insert_values(job, now) for job in add])
                if update:
                    cur.executemany(_UPDATE, [update_values(job, now) for job in update])
                    disabled = [(job.id,) for job in update if not job.enabled]
                    if disabled:
                        cur.executemany(_FORGET_MARK, disabled)
                if delete:
                    cur.executemany(_DELETE, [(job_id,) for job_id in delete])
        except psycopg.errors.UniqueViolation:
            existing = {j.id for j in self.list_jobs()}
            clash = next((j.id for j in add if j.id in existing), add[0].id if add else "?")
            raise JobExistsError(clash) from None

    def delete_job(self, job_id: str) -> bool:
        """The job's runs are locked before the job row: a run being finished holds its run
        and then, through the run triggers, the job row; taking them the other way round
        (the job row, then the runs through the cascade) could deadlock with it."""
        with self._db.transaction() as conn:
            conn.execute(_LOCK_RUNS, (job_id,))
            return conn.execute(_DELETE, (job_id,)).rowcount == 1

    def job_sources(self) -> dict[str, tuple[str | None, str | None]]:
        """Every job id with the file it came from and that file's digest when applied
        (None, None for a job added through the CLI or the API). Cheap: no job is built."""
        with self._db.connection() as conn:
            return {row[0]: (row[1], row[2]) for row in conn.execute(_SOURCES)}

    def get_job(self, job_id: str) -> Job | None:
        with self._db.connection() as conn:
            row = conn.execute(_GET, (job_id,)).fetchone()
        return _job(row) if row else None

    def list_jobs(self) -> list[Job]:
        with self._db.connection() as conn:
            return [_job(r) for r in conn.execute(_LIST)]

    def list_jobs_with_last_run(self) -> list[dict[str, Any]]:
        """Jobs as the API shows them, each with its latest executed run's status and start."""
        with self._db.connection() as conn:
            return _dicts(conn.execute(_LIST_WITH_LAST_RUN))

    def jobs_list_json(self) -> bytes:
        """`{"jobs": [...]}` exactly as list_jobs_with_last_run() would encode, as bytes.
        Encoded here, not by the server: PostgreSQL's json_agg over 1,000 jobs costs 5.4 ms,
        the rows and orjson together 2.4 ms."""
        return orjson.dumps({"jobs": self.list_jobs_with_last_run()})

    def refresh_jobs_list(self, view: JobsListView) -> bytes:
        """See the Protocol. The view's mark is the snapshot of its last read, taken before
        anything else is read, so a change committed while a refresh reads is named again
        by the next one. With nothing ended since the mark, one cheap statement; else one
        more that returns the changed jobs themselves. A job new to the view, or a count that
        does not match the view's (a job deleted), reads the order again."""
        with self._db.connection() as conn:
            if not isinstance(view.mark, str):
                row = conn.execute(_SNAPSHOT).fetchone()
                assert row is not None
                view.load(row[0], _fragment_rows(conn.execute(_LIST_WITH_LAST_RUN)))
                view.swept_at, view.swept_mark = time.monotonic(), row[0]
                return view.assemble()
            now = conn.execute(_SNAPSHOT).fetchone()
            sweep = (
                not isinstance(view.swept_mark, str)
                or view.swept_at is None
                or time.monotonic() - view.swept_at >= view.sweep_every_s
            )
            if (
                now is not None
                and now[0] == view.mark
                and view.body is not None
                and (not sweep or view.swept_mark == view.mark)
            ):
                # No transaction ended since: nothing can have changed (and nothing a pass
                # could find since the last one is left).
                return view.body
            found, names, count = [], [], -1
            if not sweep:
                cur = conn.execute(_FEED_FAST, (view.mark,))
                assert cur.description is not None
                found = cur.fetchall()  # at least one row: x has one
                sweep = bool(found[0][1])  # a job was deleted: count them, as a sweep does
                names = [d.name for d in cur.description][2:]
            if sweep:
                # Every job changed since the last pass (a superset of those since the mark).
                cur = conn.execute(
                    _FEED, (view.swept_mark if isinstance(view.swept_mark, str) else view.mark,)
                )
                assert cur.description is not None
                names = [d.name for d in cur.description][2:]
                found = cur.fetchall()  # at least one row: x has one
                count = found[0][1]
                view.swept_at, view.swept_mark = time.monotonic(), found[0][0]
            position = found[0][0]
            rows = []
            for row in found:
                if row[2] is not None:
                    item = decoded(dict(zip(names, row[2:], strict=True)))
                    rows.append((str(item["id"]), 0, orjson.dumps(item)))
            added = view.update(rows)
            if added or (sweep and count != view.held()):
                order = [str(row[0]) for row in conn.execute(_ORDER)]
                known = set(view.index) | {row[0] for row in added}
                missing = [job_id for job_id in order if job_id not in known]
                if missing:
                    added += _fragment_rows(conn.execute(_LIST_SOME_WITH_LAST_RUN, (missing,)))
                view.reorder(order, added)
            view.mark = position
            return view.assemble()

    def get_job_row(self, job_id: str) -> dict[str, Any] | None:
        with self._db.connection() as conn:
            rows = _dicts(conn.execute(_GET, (job_id,)))
        return rows[0] if rows else None

    def set_enabled(self, job_id: str, enabled: bool, now: str) -> bool:
        with self._db.transaction() as conn:
            found = conn.execute(_SET_ENABLED, (int(enabled), now, job_id)).rowcount == 1
            if not enabled:
                conn.execute(_FORGET_MARK, (job_id,))
            return found

    def enabled_schedules(self) -> list[ScheduleEntry]:
        with self._db.connection() as conn:
            return [ScheduleEntry(r[0], r[1], r[2], r[3]) for r in conn.execute(_ENABLED_SCHEDULES)]

    def schedule_fingerprint(self) -> tuple[int, str]:
        """Changes whenever the set of enabled jobs or one of them changes (every write
        through the store bumps updated_at), at the cost of one aggregate query."""
        with self._db.connection() as conn:
            row = conn.execute(_FINGERPRINT).fetchone()
        assert row is not None
        return int(row[0]), str(row[1])

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
        with self._db.connection() as conn:
            counted = conn.execute(f"SELECT count(*){_PAGE_FROM}{clause}", params).fetchone()
            assert counted is not None
            cur = conn.execute(
                f'{_PAGE_SELECT}{clause} ORDER BY j.id COLLATE "C" LIMIT %s OFFSET %s',
                [*params, limit, offset],
            )
            rows = _dicts(cur)
        return int(counted[0]), rows  # tags decoded by _dicts

    def count_jobs(self) -> int:
        with self._db.connection() as conn:
            row = conn.execute(_COUNT).fetchone()
        assert row is not None
        return int(row[0])
