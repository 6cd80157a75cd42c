"""SQLite `jobs.last_run_id`: each job points at its latest run that executed, so GET /jobs is
one primary-key lookup per job whatever the size of the history."""

from __future__ import annotations

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
