"""SQLite `jobs.last_run_id`: each job points at its latest run that executed, so GET /jobs is
one primary-key lookup per job whatever the size of the history."""

from __future__ import annotations

import sqlite3

import pytest

from jeeves_runner.models import Job, RunResult, RunStatus, RunTrigger
from jeeves_runner.store import SqliteStore

T0 = "2026-03-02T01:00:00.000Z"
T1 = "2026-03-02T01:00:01.000Z"
T2 = "2026-03-02T01:00:02.000Z"
T3 = "2026-03-02T01:00:03.000Z"


@pytest.fixture
def jobs(store: SqliteStore) -> SqliteStore:
    for job_id in ("a", "b"):
        store.jobs.add_job(Job(id=job_id, name=job_id, schedule="* * * * *", script="/x"), T0)
    return store


def last_run_id(store: SqliteStore, job_id: str) -> int | None:
    row = store.db.connection().execute("SELECT last_run_id FROM jobs WHERE id = ?", (job_id,))
    value = row.fetchone()[0]
    return None if value is None else int(value)


def test_a_running_run_is_pointed_at_and_a_pending_one_only_once_it_runs(
    jobs: SqliteStore,
) -> None:
    first = jobs.runs.create_run("a", RunTrigger.SCHEDULE, RunStatus.RUNNING, T0)
    assert last_run_id(jobs, "a") == first
    pending_a = jobs.runs.create_run("a", RunTrigger.SCHEDULE, RunStatus.PENDING, T1)
    pending_b = jobs.runs.create_run("b", RunTrigger.RETRY, RunStatus.PENDING, T1)
    assert last_run_id(jobs, "a") == first
    assert last_run_id(jobs, "b") is None
    jobs.runs.mark_running([(pending_a, "a", T2), (pending_b, "b", T3)])
    assert last_run_id(jobs, "a") == pending_a
    assert last_run_id(jobs, "b") == pending_b


def test_a_run_marked_by_its_finish_is_pointed_at(jobs: SqliteStore) -> None:
    quick = jobs.runs.create_run("a", RunTrigger.SCHEDULE, RunStatus.PENDING, T1)
    result = RunResult(status=RunStatus.ERROR, duration_ms=3, exit_code=1, error="Exit code 1")
    jobs.runs.finish_run(quick, result, T3, started=("a", T2))
    assert last_run_id(jobs, "a") == quick


def test_skips_are_never_pointed_at(jobs: SqliteStore) -> None:
    running = jobs.runs.create_run("a", RunTrigger.SCHEDULE, RunStatus.RUNNING, T0)
    jobs.runs.record_skip("a", T1, "busy", RunTrigger.SCHEDULE, None)
    assert last_run_id(jobs, "a") == running


# --- kept by triggers: runs written by any process show ------------------------------------


def other_process(store: SqliteStore) -> sqlite3.Connection:
    """A connection of our own, as another node, a restore or a script writing SQL has."""
    conn = sqlite3.connect(store.path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def shown(store: SqliteStore, job_id: str) -> tuple[object, object]:
    (row,) = [j for j in store.jobs.list_jobs_with_last_run() if j["id"] == job_id]
    return row["last_status"], row["last_run"]


def test_runs_written_by_another_process_show_in_the_job_list(jobs: SqliteStore) -> None:
    conn = other_process(jobs)
    try:
        conn.execute(
            "INSERT INTO runs (job_id, status, started_at, finished_at) VALUES ('a', 'ok', ?, ?)",
            (T1, T2),
        )
        assert shown(jobs, "a") == ("ok", T1)
        assert jobs.jobs.jobs_list_json().count(b'"last_status":"ok"') == 1
        cur = conn.execute(
            "INSERT INTO runs (job_id, status, started_at) VALUES ('b', 'pending', ?)", (T1,)
        )
        assert shown(jobs, "b") == (None, None)  # pending: not run yet
        conn.execute(
            "UPDATE runs SET status = 'running', started_at = ? WHERE id = ?", (T3, cur.lastrowid)
        )
        assert shown(jobs, "b") == ("running", T3)
    finally:
        conn.close()


def test_an_older_run_written_late_does_not_hide_a_newer_one(jobs: SqliteStore) -> None:
    newer = jobs.runs.create_run("a", RunTrigger.SCHEDULE, RunStatus.RUNNING, T2)
    conn = other_process(jobs)
    try:
        # a restore writing an old row with an explicit, lower id
        conn.execute(
            "INSERT INTO runs (id, job_id, status, started_at, finished_at)"
            " VALUES (?, 'a', 'error', ?, ?)",
            (newer - 1 if newer > 1 else 0, T0, T1),
        )
    finally:
        conn.close()
    assert last_run_id(jobs, "a") == newer


def test_runs_closed_without_having_run_never_become_the_last_run(jobs: SqliteStore) -> None:
    ran = jobs.runs.create_run("a", RunTrigger.SCHEDULE, RunStatus.RUNNING, T0)
    jobs.runs.finish_run(ran, RunResult(status=RunStatus.OK, duration_ms=1), T1)
    never = jobs.runs.create_run("a", RunTrigger.SCHEDULE, RunStatus.PENDING, T2)
    jobs.runs.close_orphaned_runs(T3, "stopped", "never started")
    assert jobs.runs.get_run(never)["status"] == "error"  # type: ignore[index]
    other = jobs.runs.create_run("b", RunTrigger.SCHEDULE, RunStatus.PENDING, T2)
    assert jobs.runs.close_run(other, T3, "never started") is True
    assert last_run_id(jobs, "a") == ran
    assert last_run_id(jobs, "b") is None


def test_deleting_the_last_run_points_the_job_at_the_latest_left(jobs: SqliteStore) -> None:
    first = jobs.runs.create_run("a", RunTrigger.SCHEDULE, RunStatus.RUNNING, T0)
    jobs.runs.record_skip("a", T1, "busy", RunTrigger.SCHEDULE, None)
    second = jobs.runs.create_run("a", RunTrigger.SCHEDULE, RunStatus.RUNNING, T2)
    conn = other_process(jobs)
    try:
        conn.execute("DELETE FROM runs WHERE id = ?", (second,))
        assert last_run_id(jobs, "a") == first
        conn.execute("DELETE FROM runs WHERE id = ?", (first,))
        assert last_run_id(jobs, "a") is None  # only the skip is left
    finally:
        conn.close()
