"""Migration 0007 builds `runs` again (to allow `cancelled`): rows, ids, the id sequence and
the last-run triggers survive it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from jeeves_runner.models import RunResult, RunStatus, RunTrigger
from jeeves_runner.store import SqliteStore
from jeeves_runner.store.sqlite.database import _migration, _split

T0 = "2026-03-02T01:00:00.000Z"


def make_v6_database(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for number in range(1, 7):  # the schema just before 0007
            for statement in _split(_migration(number)):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
        conn.execute(
            "INSERT INTO jobs (id, name, schedule, script, created_at, updated_at) "
            "VALUES ('a', 'A', '* * * * *', '/x', ?, ?)",
            (T0, T0),
        )
        for run_id, status in ((1, "ok"), (2, "error"), (3, "skipped"), (4, "ok")):
            conn.execute(
                "INSERT INTO runs (id, job_id, status, started_at, finished_at, stdout, pid) "
                "VALUES (?, 'a', ?, ?, ?, ?, ?)",
                (run_id, status, T0, T0, f"out {run_id}", 100 + run_id),
            )
        conn.execute("DELETE FROM runs WHERE id = 4")  # the newest id is gone, not reusable
    finally:
        conn.close()


def test_runs_survive_and_cancelled_is_allowed(tmp_path: Path) -> None:
    path = tmp_path / "data" / "r.sqlite"
    make_v6_database(path)
    store = SqliteStore(path)
    try:
        rows = store.runs.list_runs("a", 10)
        assert [(r["id"], r["status"], r["stdout"]) for r in rows] == [
            (3, "skipped", "out 3"),
            (2, "error", "out 2"),
            (1, "ok", "out 1"),
        ]
        assert store.runs.open_runs() == []
        (job,) = store.jobs.list_jobs_with_last_run()
        assert job["last_status"] == "error"
        new = store.runs.create_run("a", RunTrigger.MANUAL, RunStatus.RUNNING, T0)
        assert new == 5
        store.runs.finish_run(new, RunResult(RunStatus.CANCELLED, 1, error="by hand"), T0)
        (job,) = store.jobs.list_jobs_with_last_run()
        assert job["last_status"] == "cancelled"
        conn = store.db.connection()
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert "runs_before_5" not in names
        assert {
            "runs_point_job_on_insert",
            "runs_point_job_on_start",
            "runs_repoint_job_on_delete",
            "runs_job_id",
            "runs_finished_at",
            "runs_unfinished",
            "runs_by_start",
            "run_logs",
        } <= names
    finally:
        store.close()
