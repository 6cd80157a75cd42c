"""Migration 0008 builds `runs` again (to allow `missed` and add what a run stands for): rows,
ids, the id sequence, the last-run triggers and every run's log survive it; one scheduled
instant of a job can hold one row only."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from jeeves_runner.models import RunResult, RunStatus, RunTrigger
from jeeves_runner.store import SqliteStore
from jeeves_runner.store.sqlite.database import _migration, _split

T0 = "2026-03-02T01:00:00.000Z"


def make_v7_database(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        for number in range(1, 8):  # the schema just before 0008
            for statement in _split(_migration(number)):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
        conn.execute(
            "INSERT INTO jobs (id, name, schedule, script, created_at, updated_at) "
            "VALUES ('a', 'A', '* * * * *', '/x', ?, ?)",
            (T0, T0),
        )
        for run_id, status in ((1, "ok"), (2, "error"), (3, "cancelled"), (4, "ok")):
            conn.execute(
                "INSERT INTO runs (id, job_id, status, started_at, finished_at, stdout, pid) "
                "VALUES (?, 'a', ?, ?, ?, ?, ?)",
                (run_id, status, T0, T0, f"out {run_id}", 100 + run_id),
            )
            conn.execute(
                "INSERT INTO run_logs (run_id, seq, stream, at, data) "
                "VALUES (?, 1, 'stdout', ?, ?)",
                (run_id, T0, f"line of {run_id}\n".encode()),
            )
        conn.execute("DELETE FROM runs WHERE id = 4")  # the newest id is gone, not reusable
    finally:
        conn.close()


def test_runs_and_their_logs_survive_and_missed_is_allowed(tmp_path: Path) -> None:
    path = tmp_path / "data" / "r.sqlite"
    make_v7_database(path)
    store = SqliteStore(path)
    try:
        rows = store.runs.list_runs("a", 10)
        assert [(r["id"], r["status"], r["stdout"]) for r in rows] == [
            (3, "cancelled", "out 3"),
            (2, "error", "out 2"),
            (1, "ok", "out 1"),
        ]
        for run_id in (1, 2, 3):
            (chunk,) = store.logs.read_log(run_id)
            assert chunk.data == f"line of {run_id}\n".encode()
        detail = store.runs.get_run(2)
        assert detail is not None and detail["attempt"] == 1 and detail["scheduled_for"] is None
        new = store.runs.create_run("a", RunTrigger.MANUAL, RunStatus.RUNNING, T0)
        assert new == 5
        store.runs.finish_run(new, RunResult(RunStatus.OK, 1), T0)
        (job,) = store.jobs.list_jobs_with_last_run()
        assert job["last_status"] == "ok"
        conn = store.db.connection()
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        conn.execute(
            "INSERT INTO runs (job_id, status, trigger, missed_count, missed_first, missed_last) "
            "VALUES ('a', 'missed', 'schedule', 3, ?, ?)",
            (T0, T0),
        )
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert "runs_version_8" not in names
        assert {
            "runs_point_job_on_insert",
            "runs_point_job_on_start",
            "runs_repoint_job_on_delete",
            "runs_job_id",
            "runs_finished_at",
            "runs_unfinished",
            "runs_by_start",
            "runs_one_per_instant",
            "run_logs",
        } <= names
        # Deleting a run still takes its log with it (the reference follows the new table).
        conn.execute("DELETE FROM runs WHERE id = 1")
        assert store.logs.read_log(1) == []
    finally:
        store.close()


def test_one_row_per_scheduled_instant_of_a_job(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    make_v7_database(path)
    store = SqliteStore(path)
    try:
        conn = store.db.connection()
        insert = (
            "INSERT INTO runs (job_id, status, trigger, scheduled_for) "
            "VALUES ('a', 'pending', ?, ?)"
        )
        conn.execute(insert, ("schedule", T0))
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute(insert, ("schedule", T0))
        # A retry due at the same instant is another row; so is a manual run.
        conn.execute(insert, ("retry", T0))
        conn.execute(insert, ("manual", T0))
    finally:
        store.close()
