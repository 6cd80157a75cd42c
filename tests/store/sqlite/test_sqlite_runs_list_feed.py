"""SQLite's change log for GET /jobs/:id/runs (migration `runs_list_feed`): plain SQL from
another connection is seen, the log stays bounded, and a view whose mark fell off the log (or
ran ahead of it) reads afresh."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from jeeves_runner.models import Job, RunResult, RunStatus, RunTrigger
from jeeves_runner.store import SqliteStore
from jeeves_runner.store.runs_list import RunsListView

T0 = "2026-03-02T01:00:00.000Z"
T1 = "2026-03-02T01:00:01.000Z"


def setup(store: SqliteStore) -> RunsListView:
    for job_id in ("a", "b"):
        store.jobs.add_job(Job(id=job_id, name=job_id, schedule="* * * * *", script="/x"), T0)
    store.runs.create_run("a", RunTrigger.SCHEDULE, RunStatus.RUNNING, T0)
    view = RunsListView(depth=10)
    assert store.runs.refresh_runs_list(view, "a", 10) == store.runs.list_runs_json("a", 10)
    return view


def test_plain_sql_from_another_connection_is_seen(store: SqliteStore, tmp_db: Path) -> None:
    view = setup(store)
    with closing(sqlite3.connect(tmp_db, isolation_level=None)) as shell:
        shell.execute("UPDATE runs SET status = 'ok', stdout = 'by hand' WHERE id = 1")
        assert b'"stdout":"by hand"' in store.runs.refresh_runs_list(view, "a", 10)
        shell.execute("UPDATE runs SET job_id = 'b' WHERE id = 1")  # moved to another job
        assert store.runs.refresh_runs_list(view, "a", 10) == b'{"runs":[]}'
        assert b'"stdout":"by hand"' in store.runs.refresh_runs_list(view, "b", 10)
        shell.execute("DELETE FROM runs")
        assert store.runs.refresh_runs_list(view, "b", 10) == b'{"runs":[]}'
    assert view.resets == 1


def test_the_log_keeps_the_last_changes_only_and_a_view_left_behind_reads_afresh(
    store: SqliteStore, tmp_db: Path
) -> None:
    view = setup(store)
    for _ in range(3000):  # 6,000 changes: created, then finished
        run_id = store.runs.create_run("b", RunTrigger.MANUAL, RunStatus.RUNNING, T0)
        store.runs.finish_run(run_id, RunResult(status=RunStatus.OK, duration_ms=1), T1)
    with closing(sqlite3.connect(tmp_db)) as shell:
        kept, first, last = shell.execute(
            "SELECT count(*), min(seq), max(seq) FROM runs_changes"
        ).fetchone()
    assert kept <= 4096 + 1024 and last - first + 1 == kept and last >= 6000
    assert store.runs.refresh_runs_list(view, "b", 10) == store.runs.list_runs_json("b", 10)
    assert view.resets == 2  # its mark was trimmed away


def test_a_log_behind_the_view_reads_afresh(store: SqliteStore, tmp_db: Path) -> None:
    """An older copy of the file, or a log emptied by hand: the view does not trust what it
    holds."""
    view = setup(store)
    store.runs.create_run("a", RunTrigger.MANUAL, RunStatus.RUNNING, T0)
    assert store.runs.refresh_runs_list(view, "a", 10) == store.runs.list_runs_json("a", 10)
    with closing(sqlite3.connect(tmp_db, isolation_level=None)) as shell:
        shell.execute("DELETE FROM runs_changes")
        shell.execute("UPDATE runs SET stdout = 'unlogged' WHERE id = 2")
        shell.execute("DELETE FROM runs_changes")  # as if the update was never logged
    assert store.runs.refresh_runs_list(view, "a", 10) == store.runs.list_runs_json("a", 10)
    assert b"unlogged" in store.runs.refresh_runs_list(view, "a", 10)


SCHEDULED = "INSERT INTO runs (job_id, status, started_at, trigger, scheduled_for)"


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param(
            "INSERT OR REPLACE INTO runs (id, job_id, status, started_at, trigger)"
            " VALUES (1, 'b', 'ok', '2026-03-02T01:00:01.000Z', 'manual')",
            id="insert-or-replace-an-id",
        ),
        pytest.param(
            SCHEDULED.replace("INSERT", "INSERT OR REPLACE")
            + " VALUES ('a', 'ok', '2026-03-02T01:00:01.000Z', 'schedule', '"
            + T0
            + "')",
            id="insert-or-replace-an-instant",
        ),
        pytest.param("UPDATE runs SET id = 99 WHERE id = 1", id="update-of-id"),
        pytest.param(
            "UPDATE OR REPLACE runs SET scheduled_for = '" + T0 + "' WHERE id = 3",
            id="update-or-replace-an-instant",
        ),
    ],
)
def test_runs_replaced_or_renumbered_by_plain_sql_leave_their_pages(
    store: SqliteStore, tmp_db: Path, statement: str
) -> None:
    """REPLACE conflict resolution deletes rows without firing delete triggers
    (recursive_triggers is off), and an id may be written by hand: every page still follows."""
    view = setup(store)
    with closing(sqlite3.connect(tmp_db, isolation_level=None)) as shell:
        shell.execute(SCHEDULED + " VALUES ('a', 'ok', ?, 'schedule', ?)", (T0, T0))  # run 2
        shell.execute(SCHEDULED + " VALUES ('a', 'ok', ?, 'schedule', ?)", (T1, T1))  # run 3
        for job_id in ("a", "b"):
            got = store.runs.refresh_runs_list(view, job_id, 10)
            assert got == store.runs.list_runs_json(job_id, 10)
        shell.execute(statement)
        assert shell.execute("SELECT changes()").fetchone()[0] >= 1
    for job_id in ("a", "b"):
        assert store.runs.refresh_runs_list(view, job_id, 10) == store.runs.list_runs_json(
            job_id, 10
        ), job_id


class _WritesBetweenStatements:
    """A connection that lets another connection write before each statement it runs: every
    interleaving of commits with the single-statement snapshots of refresh_runs_list."""

    def __init__(self, conn: sqlite3.Connection, write: Callable[[], None]) -> None:
        self._conn, self._write = conn, write
        self.armed = False

    def execute(self, *args: Any) -> sqlite3.Cursor:
        if self.armed:
            self._write()
        return self._conn.execute(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


@pytest.mark.parametrize("seed", range(4))
def test_commits_between_the_refresh_statements_are_caught_up_by_the_next_read(
    tmp_db: Path, seed: int
) -> None:
    pick = random.Random(seed)
    depth = (1, 2, 4, 7)[seed]
    reader, writer = SqliteStore(tmp_db), SqliteStore(tmp_db)
    with closing(sqlite3.connect(tmp_db, isolation_level=None)) as shell:
        shell.execute("PRAGMA foreign_keys = ON")
        for job_id in "abc":
            writer.jobs.add_job(Job(id=job_id, name=job_id, schedule="* * * * *", script="/x"), T0)
        open_runs: list[int] = []

        def write() -> None:
            roll, job_id = pick.random(), pick.choice("abc")
            ids = [row[0] for row in shell.execute("SELECT id FROM runs")]
            if roll < 0.3:
                status = RunStatus.RUNNING
                open_runs.append(writer.runs.create_run(job_id, RunTrigger.MANUAL, status, T0))
            elif roll < 0.5 and open_runs:
                run_id = open_runs.pop(pick.randrange(len(open_runs)))
                result = RunResult(status=RunStatus.OK, duration_ms=1, stdout=str(roll))
                writer.runs.finish_run(run_id, result, T1)
            elif roll < 0.6 and ids:
                shell.execute("UPDATE runs SET job_id = ? WHERE id = ?", (job_id, pick.choice(ids)))
            elif roll < 0.7 and ids:
                shell.execute("DELETE FROM runs WHERE id = ?", (pick.choice(ids),))
            elif roll < 0.75:
                writer.jobs.delete_job(job_id)
                writer.jobs.add_job(
                    Job(id=job_id, name=job_id, schedule="* * * * *", script="/x"), T0
                )
            elif roll < 0.85 and ids:
                shell.execute(
                    "UPDATE runs SET stderr = ? WHERE id = ?", (str(roll), pick.choice(ids))
                )

        hooked = _WritesBetweenStatements(reader.db.connection(), write)
        reader.db.connection = lambda: hooked  # type: ignore[method-assign, assignment, return-value]
        view = RunsListView(depth=depth)
        limits = sorted({1, min(2, depth), depth})
        try:
            for _ in range(150):
                hooked.armed = pick.random() < 0.5
                reader.runs.refresh_runs_list(view, pick.choice("abc"), pick.choice(limits))
                hooked.armed = False
                for job_id in "abc":
                    for limit in limits:
                        page = reader.runs.refresh_runs_list(view, job_id, limit)
                        assert page == writer.runs.list_runs_json(job_id, limit), (job_id, limit)
        finally:
            reader.close()
            writer.close()
